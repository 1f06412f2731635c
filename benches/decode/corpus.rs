//! A deterministic generator of realistic bid requests: 1-3 KB, banner and video imps,
//! deals, site or app, a full device and user, and the fields a bidder ignores (`ua`,
//! `ip`, `ext` objects, supply chain, consent strings). Some numbers come as strings and
//! some URLs with escaped slashes, as exchanges send them.

use std::fmt::Write;

/// SplitMix64: small, fast, and the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'s>(&mut self, from: &[&'s str]) -> &'s str {
        from[self.below(from.len() as u64) as usize]
    }
    fn hex(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(b"0123456789abcdef"[self.below(16) as usize]))
            .collect()
    }
}

const SIZES: [(u32, u32); 6] = [
    (300, 250),
    (728, 90),
    (320, 50),
    (160, 600),
    (300, 600),
    (970, 250),
];
const CATS: [&str; 8] = [
    "IAB1", "IAB2-1", "IAB3", "IAB7-39", "IAB8-5", "IAB9-9", "IAB25", "IAB26",
];
const DOMAINS: [&str; 6] = [
    "news.example",
    "sports.example",
    "weather.example",
    "recipes.example",
    "cars.example",
    "games.example",
];
const UAS: [&str; 3] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.43 Mobile Safari/537.36",
];
const GEOS: [(&str, &str, &str); 4] = [
    ("USA", "CA", "San Francisco"),
    ("USA", "NY", "New York"),
    ("GBR", "ENG", "London"),
    ("DEU", "BE", "Berlin"),
];

/// `n` bodies from `seed`.
pub fn generate(n: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = Rng(seed);
    (0..n).map(|_| request(&mut rng).into_bytes()).collect()
}

fn request(r: &mut Rng) -> String {
    let mut s = String::with_capacity(3072);
    let _ = write!(s, r#"{{"id":"{}-{}","imp":["#, r.hex(8), r.hex(12));
    let imps = 1 + r.below(3);
    for i in 0..imps {
        if i > 0 {
            s.push(',');
        }
        imp(r, &mut s, i + 1);
    }
    s.push(']');
    if r.chance(70) {
        site(r, &mut s);
    } else {
        app(r, &mut s);
    }
    device(r, &mut s);
    user(r, &mut s);
    let _ = write!(
        s,
        r#","at":{},"tmax":{}"#,
        1 + r.below(2),
        if r.chance(20) {
            r#""120""#.to_string()
        } else {
            (80 + r.below(5) * 10).to_string()
        }
    );
    s.push_str(r#","cur":["USD"]"#);
    let _ = write!(
        s,
        r#","bcat":["{}","{}","{}"],"badv":["{}","competitor.example"]"#,
        r.pick(&CATS),
        r.pick(&CATS),
        r.pick(&CATS),
        r.pick(&DOMAINS)
    );
    let _ = write!(
        s,
        r#","source":{{"fd":1,"tid":"{}","ext":{{"schain":{{"ver":"1.0","complete":1,"nodes":[{{"asi":"exchange.example","sid":"{}","hp":1}}]}}}}}}"#,
        r.hex(32),
        r.hex(6)
    );
    let _ = write!(
        s,
        r#","regs":{{"coppa":0,"ext":{{"gdpr":{},"us_privacy":"1YNN"}}}}"#,
        r.below(2)
    );
    s.push_str(r#","ext":{"prebid":{"channel":{"name":"web","version":"7.54"},"debug":false}}}"#);
    s
}

fn floor(r: &mut Rng) -> String {
    let cents = 5 + r.below(500);
    let f = format!("{}.{:02}", cents / 100, cents % 100);
    if r.chance(15) {
        format!("\"{f}\"")
    } else {
        f
    }
}

fn imp(r: &mut Rng, s: &mut String, n: u64) {
    let _ = write!(
        s,
        r#"{{"id":"{n}","tagid":"slot-{}","bidfloor":{},"bidfloorcur":"USD","secure":1,"#,
        r.hex(6),
        floor(r)
    );
    if r.chance(75) {
        let (w, h) = SIZES[r.below(SIZES.len() as u64) as usize];
        let (w2, h2) = SIZES[r.below(SIZES.len() as u64) as usize];
        let _ = write!(
            s,
            r#""banner":{{"w":{w},"h":{h},"format":[{{"w":{w},"h":{h}}},{{"w":{w2},"h":{h2}}}],"pos":{},"battr":[1,3,8],"api":[3,5],"topframe":1}}"#,
            r.below(4)
        );
    } else {
        let _ = write!(
            s,
            r#""video":{{"mimes":["video/mp4","video/webm","application/javascript"],"minduration":{},"maxduration":{},"protocols":[2,3,5,6],"w":640,"h":480,"startdelay":0,"placement":1,"linearity":1,"skip":1,"playbackmethod":[1,3],"api":[1,2],"battr":[13,14]}}"#,
            5 * r.below(2),
            15 + 15 * r.below(3)
        );
    }
    if r.chance(25) {
        let _ = write!(
            s,
            r#","pmp":{{"private_auction":{},"deals":[{{"id":"deal-{}","bidfloor":{},"bidfloorcur":"USD","at":1,"wseat":["seat-{}"]}}]}}"#,
            r.below(2),
            r.hex(6),
            floor(r),
            r.below(9)
        );
    }
    let _ = write!(
        s,
        r#","ext":{{"gpid":"/1234/{}/slot","data":{{"pbadslot":"slot-{}"}}}}}}"#,
        r.pick(&DOMAINS),
        r.hex(4)
    );
}

fn publisher(r: &mut Rng, s: &mut String, domain: &str) {
    let _ = write!(
        s,
        r#","publisher":{{"id":"pub-{}","name":"{domain} media","domain":"{domain}","ext":{{}}}}"#,
        r.hex(5)
    );
}

fn site(r: &mut Rng, s: &mut String) {
    let d = r.pick(&DOMAINS);
    let _ = write!(
        s,
        r#","site":{{"id":"site-{}","name":"{d}","domain":"{d}","cat":["{}","{}"],"page":"https:\/\/{d}\/articles\/{}.html","ref":"https://search.example/?q={}","mobile":1,"privacypolicy":1"#,
        r.hex(6),
        r.pick(&CATS),
        r.pick(&CATS),
        r.hex(10),
        r.hex(8)
    );
    publisher(r, s, d);
    let _ = write!(
        s,
        r#","content":{{"language":"en","keywords":"a,b,c","cat":["{}"]}}}}"#,
        r.pick(&CATS)
    );
}

fn app(r: &mut Rng, s: &mut String) {
    let d = r.pick(&DOMAINS);
    let _ = write!(
        s,
        r#","app":{{"id":"app-{}","name":"{d} app","bundle":"com.example.{}","domain":"{d}","storeurl":"https:\/\/play.example\/store\/apps\/details?id=com.example","cat":["{}"],"ver":"3.2.1","paid":0"#,
        r.hex(6),
        r.hex(6),
        r.pick(&CATS)
    );
    publisher(r, s, d);
    s.push('}');
}

fn device(r: &mut Rng, s: &mut String) {
    let (country, region, city) = GEOS[r.below(GEOS.len() as u64) as usize];
    let _ = write!(
        s,
        r#","device":{{"ua":"{}","ip":"{}.{}.{}.0","geo":{{"lat":{}.{},"lon":-{}.{},"country":"{country}","region":"{region}","city":"{city}","zip":"{}","type":2,"utcoffset":-420}},"dnt":0,"lmt":0,"devicetype":{},"make":"Apple","model":"iPhone","os":"{}","osv":"17.2","h":844,"w":390,"language":"en","carrier":"carrier","connectiontype":{},"ifa":"{}-{}-{}","js":1}}"#,
        r.pick(&UAS),
        r.below(223) + 1,
        r.below(256),
        r.below(256),
        r.below(90),
        r.below(10000),
        r.below(180),
        r.below(10000),
        10000 + r.below(89999),
        if r.chance(50) {
            r#""4""#.to_string()
        } else {
            (1 + r.below(7)).to_string()
        },
        r.pick(&["iOS", "Android", "Windows"]),
        r.below(7),
        r.hex(8),
        r.hex(4),
        r.hex(12)
    );
}

fn user(r: &mut Rng, s: &mut String) {
    let _ = write!(
        s,
        r#","user":{{"id":"{}","buyeruid":"{}","yob":{},"gender":"F","data":[{{"id":"dp-{}","name":"provider","segment":["#,
        r.hex(24),
        r.hex(20),
        1950 + r.below(55),
        r.below(9)
    );
    let segs = 1 + r.below(6);
    for i in 0..segs {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, r#"{{"id":"seg-{}","name":"segment {i}"}}"#, r.below(400));
    }
    let _ = write!(
        s,
        r#"]}}],"ext":{{"consent":"CP{}AAAA.YAAAAAAAAAA","eids":[{{"source":"id.example","uids":[{{"id":"{}","atype":1}}]}}]}}}}"#,
        r.hex(60),
        r.hex(32)
    );
}
