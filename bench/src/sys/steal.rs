//! Time the hypervisor took from this machine's virtual CPUs: the `steal` field of
//! `/proc/stat`'s `cpu` line, recorded around every load run and over whole benchmark runs.
//!
//! On a virtual machine the 1-minute load average counts only this guest's runnable tasks: a
//! host that runs other guests on the same physical cores takes CPU time the load average
//! never sees. The saturation figures of a run at load average 0.28 fell 14 to 59% from the
//! run before with nothing else running; steal is what says why.

use std::path::Path;

/// The machine's CPU time so far, all CPUs together, in clock ticks (`USER_HZ`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTicks {
    /// user + nice + system + idle + iowait + irq + softirq + steal (guest time is already
    /// inside user and nice).
    pub total: u64,
    /// Time a runnable virtual CPU waited for the host.
    pub steal: u64,
}

/// Parses the aggregate `cpu` line of `/proc/stat` (the first line:
/// `cpu  user nice system idle iowait irq softirq steal guest guest_nice`); `None` if it is
/// missing or has fewer than eight numbers.
#[must_use]
pub fn parse(text: &str) -> Option<CpuTicks> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    (fields.len() == 8).then(|| CpuTicks {
        total: fields.iter().sum(),
        steal: fields[7],
    })
}

/// The counters now (`None` where `/proc/stat` cannot be read).
#[must_use]
pub fn now() -> Option<CpuTicks> {
    parse(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// Reads a saved copy of `/proc/stat` (or its first line, as `scripts/bench.sh` leaves them);
/// `None` if the file is missing or does not parse.
#[must_use]
pub fn read(path: &Path) -> Option<CpuTicks> {
    parse(&std::fs::read_to_string(path).ok()?)
}

/// Steal between two readings as a percentage of all CPU time between them (`None` if either
/// is missing or no time passed).
#[must_use]
pub fn percent(before: Option<CpuTicks>, after: Option<CpuTicks>) -> Option<f64> {
    let (b, a) = (before?, after?);
    let total = a.total.checked_sub(b.total).filter(|&t| t > 0)?;
    let steal = a.steal.saturating_sub(b.steal);
    Some(steal as f64 * 100.0 / total as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_cpu_line_and_takes_the_share() {
        let before =
            parse("cpu  100 10 50 800 20 5 5 10 0 0\ncpu0 50 5 25 400 10 2 3 5 0 0\n").unwrap();
        assert_eq!(
            before,
            CpuTicks {
                total: 1000,
                steal: 10
            }
        );
        let after = parse("cpu  200 10 80 1400 20 5 5 280 7 0\n").unwrap();
        assert_eq!(after.total, 2000);
        let pct = percent(Some(before), Some(after)).unwrap();
        assert!((pct - 27.0).abs() < 1e-9, "{pct}");
        assert_eq!(percent(Some(after), Some(after)), None);
        assert_eq!(percent(None, Some(after)), None);
        // Older kernels' shorter line, and garbage.
        assert_eq!(parse("cpu  1 2 3 4 5 6 7\n"), None);
        assert_eq!(parse("cpu0 1 2 3 4 5 6 7 8\n"), None);
        assert_eq!(parse("cpu  1 2 x 4 5 6 7 8\n"), None);
    }
}
