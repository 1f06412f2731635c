//! A corpus of request bodies on disk: `req-000001.json`, `req-000002.json`, ... one
//! JSON body per file, usable by any HTTP load tool.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::request::{self, Intent, Mix, NoBidKind};

/// What a generated corpus holds.
#[derive(Debug, Clone, Default)]
pub struct CorpusStats {
    pub count: usize,
    /// Requests built to bid.
    pub bid: usize,
    /// Requests built to get no bid, by reason, in [`NoBidKind::WEIGHTS`] order.
    pub no_bid: [usize; 6],
    pub total_bytes: usize,
    pub min_bytes: usize,
    pub max_bytes: usize,
}

impl CorpusStats {
    /// Counts one generated request.
    pub fn add(&mut self, intent: Intent, len: usize) {
        if self.count == 0 || len < self.min_bytes {
            self.min_bytes = len;
        }
        self.max_bytes = self.max_bytes.max(len);
        self.count += 1;
        self.total_bytes += len;
        match intent {
            Intent::Bid => self.bid += 1,
            Intent::NoBid(kind) => {
                if let Some(i) = NoBidKind::WEIGHTS.iter().position(|(_, k)| *k == kind) {
                    self.no_bid[i] += 1;
                }
            }
        }
    }

    /// Share of requests built to bid.
    pub fn bid_share(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.bid as f64 / self.count as f64
        }
    }

    /// A human-readable description of the mix.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} requests, {} bytes (min {}, mean {}, max {})\nbuilt to bid: {} ({:.1}%)\n",
            self.count,
            self.total_bytes,
            self.min_bytes,
            self.total_bytes / self.count.max(1),
            self.max_bytes,
            self.bid,
            100.0 * self.bid_share()
        );
        for (i, (_, kind)) in NoBidKind::WEIGHTS.iter().enumerate() {
            s.push_str(&format!(
                "built to get no bid, {}: {}\n",
                kind.label(),
                self.no_bid[i]
            ));
        }
        s
    }
}

/// The file name of request `i` (0-based) in a corpus of `count`.
pub fn file_name(i: usize, count: usize) -> String {
    let width = count.to_string().len().max(6);
    format!("req-{:0width$}.json", i + 1)
}

/// Writes `count` requests of the stream `seed` into `dir` (created if missing).
pub fn write(dir: &Path, count: usize, seed: u64, mix: &Mix) -> Result<CorpusStats> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut stats = CorpusStats::default();
    for i in 0..count {
        let g = request::generate(seed, i as u64, mix);
        let path = dir.join(file_name(i, count));
        let mut f =
            fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        f.write_all(g.body.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        stats.add(g.intent, g.body.len());
    }
    Ok(stats)
}

/// Generates `count` bodies in memory.
pub fn generate(count: usize, seed: u64, mix: &Mix) -> (Vec<Vec<u8>>, CorpusStats) {
    let mut stats = CorpusStats::default();
    let bodies = (0..count)
        .map(|i| {
            let g = request::generate(seed, i as u64, mix);
            stats.add(g.intent, g.body.len());
            g.body.into_bytes()
        })
        .collect();
    (bodies, stats)
}

/// Reads every `*.json` file of `dir`, in file-name order.
pub fn read(dir: &Path) -> Result<Vec<Vec<u8>>> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("cannot read corpus folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json") && p.is_file())
        .collect();
    paths.sort();
    if paths.is_empty() {
        bail!("corpus folder {} holds no *.json file", dir.display());
    }
    paths
        .iter()
        .map(|p| fs::read(p).with_context(|| format!("cannot read {}", p.display())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_corpus_reads_back_in_order() {
        let dir = std::env::temp_dir().join(format!("shardbid-load-corpus-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let stats = write(&dir, 12, 9, &Mix::default()).unwrap();
        assert_eq!(stats.count, 12);
        assert_eq!(stats.bid + stats.no_bid.iter().sum::<usize>(), 12);
        assert!(dir.join("req-000001.json").is_file());
        assert!(dir.join("req-000012.json").is_file());
        let bodies = read(&dir).unwrap();
        let (mem, _) = generate(12, 9, &Mix::default());
        assert_eq!(bodies, mem);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn file_names_sort_numerically() {
        assert_eq!(file_name(0, 10), "req-000001.json");
        assert_eq!(file_name(1_234_566, 2_000_000), "req-1234567.json");
        assert!(file_name(8, 2_000_000) < file_name(10, 2_000_000));
    }
}
