//! A self-contained SVG chart of a run: the latency percentile curve (log scale of
//! "nines", as HdrHistogram plots do) and the per-second time series (responses per
//! second and p99 latency).

use std::fmt::Write;

use hdrhistogram::Histogram;

use crate::engine::SecondPoint;

const W: f64 = 960.0;
const H: f64 = 760.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 80.0;
const PLOT_W: f64 = W - LEFT - RIGHT;
const TOP1: f64 = 70.0;
const PLOT_H: f64 = 260.0;
const TOP2: f64 = TOP1 + PLOT_H + 110.0;
/// Highest "nines" shown: 99.999%.
const MAX_NINES: f64 = 5.0;

/// A round number at least `v` (1, 2, 2.5 or 5 times a power of ten).
pub fn nice_ceil(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * p >= v * 0.999_999 {
            return m * p;
        }
    }
    10.0 * p
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn polyline(out: &mut String, points: &[(f64, f64)], color: &str, dash: bool) {
    if points.is_empty() {
        return;
    }
    let _ = write!(
        out,
        "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"{} points=\"",
        if dash {
            " stroke-dasharray=\"6 4\""
        } else {
            ""
        }
    );
    for (x, y) in points {
        let _ = write!(out, "{x:.1},{y:.1} ");
    }
    out.push_str("\"/>\n");
}

fn text(out: &mut String, x: f64, y: f64, anchor: &str, size: u32, s: &str) {
    let _ = writeln!(
        out,
        "<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"{anchor}\" font-size=\"{size}\">{}</text>",
        esc(s)
    );
}

fn frame(out: &mut String, top: f64) {
    let _ = writeln!(out, "<rect x=\"{LEFT}\" y=\"{top}\" width=\"{PLOT_W}\" height=\"{PLOT_H}\" fill=\"none\" stroke=\"#444\"/>");
}

fn hgrid(out: &mut String, top: f64, max: f64, unit: &str, right: bool) {
    for k in 0..=4 {
        let v = max * k as f64 / 4.0;
        let y = top + PLOT_H - PLOT_H * k as f64 / 4.0;
        if !right {
            let _ = writeln!(
                out,
                "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>",
                LEFT + PLOT_W
            );
        }
        let label = if v >= 100.0 || v == 0.0 {
            format!("{v:.0}{unit}")
        } else {
            format!("{v:.3}")
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_string()
                + unit
        };
        if right {
            text(out, LEFT + PLOT_W + 6.0, y + 4.0, "start", 11, &label);
        } else {
            text(out, LEFT - 6.0, y + 4.0, "end", 11, &label);
        }
    }
}

/// The curve of latency (ms) by percentile for `h` (microseconds), as screen points.
fn percentile_curve(h: &Histogram<u64>, y_max_ms: f64) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    // Beyond 1/count the histogram has nothing more to say.
    let max_nines = (h.len() as f64).log10().clamp(1.0, MAX_NINES);
    (0..=250)
        .map(|i| MAX_NINES * i as f64 / 250.0)
        .filter(|&n| n <= max_nines)
        .map(|n| {
            let q = 1.0 - 10f64.powf(-n);
            let ms = h.value_at_quantile(q) as f64 / 1000.0;
            (
                LEFT + PLOT_W * n / MAX_NINES,
                TOP1 + PLOT_H - PLOT_H * (ms / y_max_ms).min(1.0),
            )
        })
        .collect()
}

/// Renders the chart. `latency` and `service` are histograms in microseconds.
pub fn render(
    title: &str,
    latency: &Histogram<u64>,
    service: &Histogram<u64>,
    seconds: &[SecondPoint],
    offered_rate: Option<f64>,
) -> String {
    let mut out = String::with_capacity(32 * 1024);
    let _ = writeln!(out, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\">");
    let _ = writeln!(out, "<rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>");
    text(&mut out, W / 2.0, 28.0, "middle", 16, title);

    // Panel 1: latency by percentile.
    text(
        &mut out,
        LEFT,
        TOP1 - 12.0,
        "start",
        13,
        "Latency by percentile (ms)",
    );
    let top_ms = nice_ceil(latency.max().max(service.max()) as f64 / 1000.0);
    frame(&mut out, TOP1);
    hgrid(&mut out, TOP1, top_ms, "", false);
    for (n, label) in [
        (0.0, "0%"),
        (1.0, "90%"),
        (2.0, "99%"),
        (3.0, "99.9%"),
        (4.0, "99.99%"),
        (5.0, "99.999%"),
    ] {
        let x = LEFT + PLOT_W * n / MAX_NINES;
        let _ = writeln!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{TOP1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>",
            TOP1 + PLOT_H
        );
        text(&mut out, x, TOP1 + PLOT_H + 16.0, "middle", 11, label);
    }
    polyline(
        &mut out,
        &percentile_curve(latency, top_ms),
        "#1f77b4",
        false,
    );
    polyline(
        &mut out,
        &percentile_curve(service, top_ms),
        "#ff7f0e",
        true,
    );
    text(
        &mut out,
        LEFT + PLOT_W - 8.0,
        TOP1 + 18.0,
        "end",
        12,
        "solid: latency   dashed: service time",
    );

    // Panel 2: per-second series (the drain after the recorded window is left out).
    let seconds: Vec<&SecondPoint> = seconds.iter().filter(|p| !p.drain).collect();
    text(
        &mut out,
        LEFT,
        TOP2 - 12.0,
        "start",
        13,
        "Per second: responses/s (blue, left), p99 ms (red, right)",
    );
    frame(&mut out, TOP2);
    let last = seconds
        .iter()
        .map(|p| p.second + 1)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let x_of = |s: f64| LEFT + PLOT_W * s / last;
    if let Some(warm) = seconds
        .iter()
        .filter(|p| p.warmup)
        .map(|p| p.second + 1)
        .max()
    {
        let _ = writeln!(
            out,
            "<rect x=\"{LEFT}\" y=\"{TOP2}\" width=\"{:.1}\" height=\"{PLOT_H}\" fill=\"#eee\"/>",
            x_of(warm as f64) - LEFT
        );
        text(&mut out, LEFT + 4.0, TOP2 + 14.0, "start", 11, "warm-up");
    }
    let max_rate = nice_ceil(
        seconds
            .iter()
            .map(|p| p.responses as f64)
            .fold(offered_rate.unwrap_or(0.0), f64::max),
    );
    let max_p99 = nice_ceil(
        seconds
            .iter()
            .map(|p| p.p99_us as f64 / 1000.0)
            .fold(0.0, f64::max),
    );
    hgrid(&mut out, TOP2, max_rate, "", false);
    hgrid(&mut out, TOP2, max_p99, "", true);
    let step = nice_ceil(last / 10.0).max(1.0);
    let mut s = 0.0;
    while s <= last {
        text(
            &mut out,
            x_of(s),
            TOP2 + PLOT_H + 16.0,
            "middle",
            11,
            &format!("{s:.0}s"),
        );
        s += step;
    }
    let y_rate = |v: f64| TOP2 + PLOT_H - PLOT_H * (v / max_rate).min(1.0);
    let y_p99 = |v: f64| TOP2 + PLOT_H - PLOT_H * (v / max_p99).min(1.0);
    let rate_pts: Vec<(f64, f64)> = seconds
        .iter()
        .map(|p| (x_of(p.second as f64 + 0.5), y_rate(p.responses as f64)))
        .collect();
    let p99_pts: Vec<(f64, f64)> = seconds
        .iter()
        .map(|p| (x_of(p.second as f64 + 0.5), y_p99(p.p99_us as f64 / 1000.0)))
        .collect();
    if let Some(r) = offered_rate {
        polyline(
            &mut out,
            &[(LEFT, y_rate(r)), (LEFT + PLOT_W, y_rate(r))],
            "#888",
            true,
        );
    }
    polyline(&mut out, &rate_pts, "#1f77b4", false);
    polyline(&mut out, &p99_pts, "#d62728", false);
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::stats::{new_histogram, record};

    fn point(second: u64, responses: u64, p99_us: u64) -> SecondPoint {
        SecondPoint {
            second,
            warmup: second == 0,
            drain: false,
            offered: responses,
            responses,
            bid_responses: responses / 4,
            errors: 0,
            dead_letter: 0,
            expired: 0,
            retries: 0,
            p50_us: p99_us / 2,
            p99_us,
            max_us: p99_us * 2,
            queue: 0,
            in_flight: 1,
            limit: None,
        }
    }

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceil(0.7), 1.0);
        assert_eq!(nice_ceil(1.0), 1.0);
        assert_eq!(nice_ceil(1.3), 2.0);
        assert_eq!(nice_ceil(3.0), 5.0);
        assert_eq!(nice_ceil(215.0), 250.0);
        assert_eq!(nice_ceil(720.0), 1000.0);
        assert_eq!(nice_ceil(0.0), 1.0);
        assert_eq!(nice_ceil(f64::NAN), 1.0);
    }

    #[test]
    fn chart_has_both_panels_and_every_second() {
        let mut h = new_histogram();
        for us in 1..=20_000 {
            record(&mut h, us);
        }
        let seconds: Vec<SecondPoint> = (0..6)
            .map(|s| point(s, 1000 + s * 10, 800 + s * 100))
            .collect();
        let svg = render("t <&> x", &h, &h, &seconds, Some(1000.0));
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("t &lt;&amp;&gt; x"));
        assert_eq!(
            svg.matches("<polyline").count(),
            5,
            "two percentile curves, offered, rate and p99"
        );
        assert!(svg.contains("warm-up"));
        assert!(svg.contains("99.99%"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        // The per-second p99 line has one point per second.
        let last = svg.rsplit("<polyline").next().unwrap();
        assert_eq!(last.split(' ').filter(|p| p.contains(',')).count(), 6);
        // The percentile curve rises monotonically (y decreases on screen).
        let first = svg.split("<polyline").nth(1).unwrap();
        let ys: Vec<f64> = first
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .split_whitespace()
            .map(|p| p.split(',').nth(1).unwrap().parse().unwrap())
            .collect();
        assert!(ys.len() > 100);
        assert!(ys.windows(2).all(|w| w[1] <= w[0]));
    }

    #[test]
    fn empty_run_still_renders() {
        let svg = render("empty", &new_histogram(), &new_histogram(), &[], None);
        assert!(svg.contains("</svg>"));
        assert!(!svg.contains("NaN"));
    }
}
