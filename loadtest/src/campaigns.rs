//! Campaign files: the generated campaigns of `shardbid_testkit::traffic::campaign`,
//! read into shardbid's own campaign types and written with serde, so the file format
//! can never drift from what the server reads (a field the server does not know fails
//! here, not in the server).

use std::io::Write;

use shardbid::targeting::campaign::{Campaign, CampaignSet};
use shardbid_testkit::traffic::campaign as generated;

/// Campaign `j` of a file of `count` campaigns for `seed`.
pub fn campaign(seed: u64, j: usize, count: usize) -> Campaign {
    serde_json::from_value(generated::campaign(seed, j, count))
        .expect("generated campaigns are in shardbid's campaign format")
}

/// `count` campaigns for `seed`.
pub fn generate(count: usize, seed: u64) -> CampaignSet {
    CampaignSet {
        campaigns: (0..count).map(|j| campaign(seed, j, count)).collect(),
        ..CampaignSet::default()
    }
}

/// Writes the JSON of `generate(count, seed)` to `out` one campaign at a time, so that
/// files of millions of campaigns need no more memory than one campaign.
pub fn write_json(out: &mut impl Write, count: usize, seed: u64) -> std::io::Result<()> {
    out.write_all(b"{\"campaigns\":[")?;
    for j in 0..count {
        if j > 0 {
            out.write_all(b",")?;
        }
        serde_json::to_writer(&mut *out, &campaign(seed, j, count))?;
    }
    out.write_all(b"]}")?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_file_is_exactly_the_serialised_set() {
        for n in [0, 1, 30] {
            let mut out = Vec::new();
            write_json(&mut out, n, 4).unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&generate(n, 4)).unwrap()
            );
        }
    }
}
