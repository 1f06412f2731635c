//! Days for daily budgets: when one starts in the configured time zone
//! (`money.day_starts`), so that budgets reset at local midnight, daylight saving
//! included.

use jiff::tz::{Offset, TimeZone};
use jiff::Timestamp;

/// Where a moment falls in its day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayPos {
    /// The day's number (days since 1970-01-01 in the zone's calendar).
    pub day: i64,
    /// Seconds since the day began.
    pub elapsed_s: i64,
    /// The day's length in seconds (23, 24 or 25 hours).
    pub length_s: i64,
}

/// A time zone's days.
#[derive(Debug, Clone)]
pub struct DayClock {
    tz: TimeZone,
}

impl DayClock {
    /// `UTC`, a fixed offset such as `+05:30` or `-08:00`, or an IANA zone name.
    pub fn new(spec: &str) -> Result<DayClock, String> {
        let spec = spec.trim();
        let tz = if spec.eq_ignore_ascii_case("utc") || spec == "Z" {
            TimeZone::UTC
        } else if spec.starts_with('+') || spec.starts_with('-') {
            let (sign, rest) = spec.split_at(1);
            let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
            let (h, m): (i32, i32) = match (h.parse(), m.parse()) {
                (Ok(h), Ok(m)) if h <= 14 && m < 60 => (h, m),
                _ => return Err(format!("'{spec}' is not an offset such as +05:30")),
            };
            let secs = (h * 3600 + m * 60) * if sign == "-" { -1 } else { 1 };
            TimeZone::fixed(Offset::from_seconds(secs).map_err(|e| e.to_string())?)
        } else {
            TimeZone::get(spec).map_err(|e| format!("'{spec}': {e}"))?
        };
        Ok(DayClock { tz })
    }

    /// Where `unix_s` (seconds since the epoch) falls in its day.
    pub fn at(&self, unix_s: i64) -> DayPos {
        let Ok(ts) = Timestamp::from_second(unix_s) else {
            return DayPos {
                day: unix_s.div_euclid(86_400),
                elapsed_s: unix_s.rem_euclid(86_400),
                length_s: 86_400,
            };
        };
        let z = ts.to_zoned_datetime(self.tz.clone());
        let start = z.start_of_day().ok();
        let next = z.tomorrow().ok().and_then(|t| t.start_of_day().ok());
        match (start, next) {
            (Some(s), Some(n)) => {
                let local_midnight = s.timestamp().as_second() + s.offset().seconds() as i64;
                DayPos {
                    day: local_midnight.div_euclid(86_400),
                    elapsed_s: unix_s - s.timestamp().as_second(),
                    length_s: n.timestamp().as_second() - s.timestamp().as_second(),
                }
            }
            _ => DayPos {
                day: unix_s.div_euclid(86_400),
                elapsed_s: unix_s.rem_euclid(86_400),
                length_s: 86_400,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_days_start_at_midnight() {
        let c = DayClock::new("UTC").unwrap();
        // 2026-12-05 00:00:00 UTC = 1_796_428_800.
        let midnight = 1_796_428_800;
        let p = c.at(midnight);
        assert_eq!((p.elapsed_s, p.length_s), (0, 86_400));
        assert_eq!(c.at(midnight - 1).day, p.day - 1);
        assert_eq!(c.at(midnight + 86_399).day, p.day);
    }

    #[test]
    fn offsets_and_zones_move_midnight() {
        let utc_midnight = 1_796_428_800;
        let plus = DayClock::new("+05:30").unwrap();
        assert_eq!(plus.at(utc_midnight).elapsed_s, 5 * 3600 + 1800);
        let minus = DayClock::new("-08:00").unwrap();
        assert_eq!(minus.at(utc_midnight).elapsed_s, 16 * 3600);
        assert!(DayClock::new("+25:00").is_err());
        assert!(DayClock::new("Mars/Olympus").is_err());
    }

    #[test]
    fn a_daylight_saving_day_is_23_hours_long() {
        let ny = DayClock::new("America/New_York").unwrap();
        // 2026-03-08 12:00 UTC is during the day the clocks go forward.
        assert_eq!(ny.at(1_772_971_200).length_s, 23 * 3600);
        assert_eq!(ny.at(1_772_971_200 + 7 * 86_400).length_s, 24 * 3600);
    }
}
