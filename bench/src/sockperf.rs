//! Reading `sockperf` client output (`scripts/bench.sh --sockperf` saves it
//! as `sockperf/<server>.<test>.txt`, server `sockperf` or `ringwire`, test
//! `ping-pong`, `under-load` or `throughput`).

use serde::{Deserialize, Serialize};

/// What one sockperf client run printed, as printed (microseconds).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SockperfSummary {
    /// `Summary: Latency is X usec` (ping-pong, under-load).
    pub avg_us: Option<f64>,
    /// `percentile 50.000 = X`.
    pub p50_us: Option<f64>,
    /// `percentile 99.000 = X`.
    pub p99_us: Option<f64>,
    /// `percentile 99.900 = X`.
    pub p999_us: Option<f64>,
    /// `Total N observations`.
    pub observations: Option<u64>,
    /// `# dropped messages = N`.
    pub dropped: Option<u64>,
    /// `Summary: Message Rate is N [msg/sec]` (throughput).
    pub msg_per_s: Option<f64>,
}

/// Removes ANSI colour escapes (`ESC [ ... m`), which sockperf prints.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The first number after `key` on any line.
fn number_after<T: std::str::FromStr>(text: &str, key: &str) -> Option<T> {
    text.lines().find_map(|l| {
        let rest = &l[l.find(key)? + key.len()..];
        rest.split(|c: char| c.is_whitespace() || c == '[' || c == ';')
            .find(|s| !s.is_empty())?
            .parse()
            .ok()
    })
}

/// Parses a sockperf client's output; fields it did not print stay `None`.
#[must_use]
pub fn parse(text: &str) -> SockperfSummary {
    let text = strip_ansi(text);
    SockperfSummary {
        avg_us: number_after(&text, "Summary: Latency is"),
        p50_us: number_after(&text, "percentile 50.000 ="),
        p99_us: number_after(&text, "percentile 99.000 ="),
        p999_us: number_after(&text, "percentile 99.900 ="),
        observations: number_after(&text, "Total "),
        dropped: number_after(&text, "# dropped messages ="),
        msg_per_s: number_after(&text, "Summary: Message Rate is"),
    }
}
