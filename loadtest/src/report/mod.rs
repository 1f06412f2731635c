//! Reporting: counters and histograms, the live progress line, the summary (table or
//! JSON) and the SVG chart.

pub mod plot;
pub mod stats;
pub mod summary;
