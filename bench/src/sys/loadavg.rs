//! The system load average, from `/proc/loadavg`: recorded before and after
//! every load run, so a report can say how busy the machine was around each
//! cell.

use serde::{Deserialize, Serialize};

/// The kernel's exponentially damped run-queue averages (runnable plus
/// uninterruptible tasks, over all cores).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LoadAvg {
    /// Over the last minute.
    #[serde(rename = "1m")]
    pub one: f64,
    /// Over the last five minutes.
    #[serde(rename = "5m")]
    pub five: f64,
    /// Over the last fifteen minutes.
    #[serde(rename = "15m")]
    pub fifteen: f64,
}

impl std::fmt::Display for LoadAvg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.2} {:.2} {:.2}", self.one, self.five, self.fifteen)
    }
}

/// Parses the first three fields of `/proc/loadavg`
/// (`0.52 0.58 0.59 2/345 12345`).
#[must_use]
pub fn parse(text: &str) -> Option<LoadAvg> {
    let mut fields = text.split_whitespace().map(str::parse::<f64>);
    let mut next = || fields.next()?.ok().filter(|v| v.is_finite() && *v >= 0.0);
    Some(LoadAvg {
        one: next()?,
        five: next()?,
        fifteen: next()?,
    })
}

/// The load average now (`None` where `/proc/loadavg` cannot be read).
#[must_use]
pub fn now() -> Option<LoadAvg> {
    parse(&std::fs::read_to_string("/proc/loadavg").ok()?)
}

/// Reads a saved copy of `/proc/loadavg` (as `scripts/bench.sh` leaves
/// them); `None` if the file is missing or does not parse.
#[must_use]
pub fn read(path: &std::path::Path) -> Option<LoadAvg> {
    parse(&std::fs::read_to_string(path).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_loadavg() {
        let l = parse("1.63 2.17 3.13 6/128 12278\n").expect("parses");
        assert_eq!((l.one, l.five, l.fifteen), (1.63, 2.17, 3.13));
        assert_eq!(l.to_string(), "1.63 2.17 3.13");
        assert_eq!(parse("1.0 2.0"), None);
        assert_eq!(parse("x 1 2"), None);
        assert_eq!(parse(""), None);
    }
}
