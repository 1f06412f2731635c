//! The process's own figures for `/metrics`: CPU time, memory, descriptors, start
//! time. Read from `/proc` on the control thread when `/metrics` is scraped (never on
//! a shard), from the files Prometheus's own process collector reads, so the series
//! mean what they mean for any other process. A figure that cannot be read (another
//! OS, a hidden `/proc`) is left out.

#![forbid(unsafe_code)]

use crate::metrics::ProcessFigures;

/// Clock ticks per second of `/proc`'s times: `USER_HZ`, which Linux fixes at 100 for
/// user space whatever the kernel's own tick (Prometheus's procfs assumes it too).
const USER_HZ: f64 = 100.0;

/// Reads the figures now.
pub fn figures() -> ProcessFigures {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let stat = read("/proc/self/stat").and_then(|t| Stat::parse(&t));
    let status = read("/proc/self/status");
    let boot = read("/proc/stat").and_then(|t| boot_time(&t));
    ProcessFigures {
        cpu_seconds: stat.map(|s| (s.utime + s.stime) as f64 / USER_HZ),
        resident_bytes: status.as_deref().and_then(|t| status_kib(t, "VmRSS:")),
        virtual_bytes: status.as_deref().and_then(|t| status_kib(t, "VmSize:")),
        open_fds: std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|dir| dir.count() as u64),
        max_fds: read("/proc/self/limits").and_then(|t| max_open_files(&t)),
        start_time_seconds: stat
            .zip(boot)
            .map(|(s, b)| b + s.start_ticks as f64 / USER_HZ),
    }
}

/// What `/proc/self/stat` holds that the metrics use.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stat {
    utime: u64,
    stime: u64,
    /// Since boot, in clock ticks.
    start_ticks: u64,
}

impl Stat {
    /// Fields are counted from 1 (`man 5 proc`); the second, the command name, is in
    /// parentheses and may itself hold spaces and parentheses, so counting starts after
    /// the last `)`.
    fn parse(text: &str) -> Option<Stat> {
        let rest = text.get(text.rfind(')')? + 1..)?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n.checked_sub(3)?)?.parse::<u64>().ok();
        Some(Stat {
            utime: field(14)?,
            stime: field(15)?,
            start_ticks: field(22)?,
        })
    }
}

/// A `Name:   1234 kB` line of `/proc/self/status`, in bytes.
fn status_kib(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let kib: u64 = line[name.len()..].split_whitespace().next()?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The soft limit on open files, from `/proc/self/limits`; `unlimited` as `u64::MAX`.
fn max_open_files(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    match line["Max open files".len()..].split_whitespace().next()? {
        "unlimited" => Some(u64::MAX),
        n => n.parse().ok(),
    }
}

/// When the machine booted, in seconds since the epoch (`btime` of `/proc/stat`).
fn boot_time(text: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with("btime "))?;
    line["btime ".len()..]
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| s as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // A command name with spaces and parentheses, as a thread may name itself.
        let line = "4242 (sb (odd) name) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    250 75 0 0 20 0 3 0 123456 987654321 2048 18446744073709551615";
        let stat = Stat::parse(line).unwrap();
        assert_eq!(
            stat,
            Stat {
                utime: 250,
                stime: 75,
                start_ticks: 123456
            }
        );
        assert_eq!(Stat::parse("4242 (truncated"), None);
        assert_eq!(Stat::parse("4242 (x) S 1 2"), None);
    }

    #[test]
    fn status_limits_and_boot_time_are_read() {
        let status = "Name:\tshardbid\nVmSize:\t  123456 kB\nVmRSS:\t    2048 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(2048 * 1024));
        assert_eq!(status_kib(status, "VmSize:"), Some(123456 * 1024));
        assert_eq!(status_kib(status, "VmSwap:"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            1024                 1048576              files     \n";
        assert_eq!(max_open_files(limits), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(max_open_files(unlimited), Some(u64::MAX));
        assert_eq!(boot_time("cpu  1 2 3\nbtime 1700000000\n"), Some(1.7e9));
        assert_eq!(boot_time("cpu  1 2 3\n"), None);
    }

    #[test]
    fn this_process_reads_whole_on_linux() {
        let f = figures();
        assert!(f.cpu_seconds.is_some_and(|s| s >= 0.0), "{f:?}");
        assert!(f.resident_bytes.is_some_and(|b| b > 0), "{f:?}");
        assert!(f.virtual_bytes >= f.resident_bytes, "{f:?}");
        assert!(f.open_fds.is_some_and(|n| n >= 3), "{f:?}");
        assert!(f.max_fds >= f.open_fds, "{f:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let started = f.start_time_seconds.unwrap();
        assert!(started <= now + 1.0 && started > now - 3600.0, "{f:?}");
    }
}
