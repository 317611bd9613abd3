//! What the binary prints, and how it survives losing its output.
//!
//! Standard output carries counters and reports; if it goes away (`ringwire serve | head -1`,
//! a closed terminal) the first failed write is logged once on standard error and later ones
//! are skipped: the engine keeps serving, drains on SIGTERM and exits 0. Messages for the
//! operator go to standard error through [`note`], which ignores failures the same way.
//! (`println!` and `eprintln!` panic on a failed write; nothing here uses them.)
#![forbid(unsafe_code)]

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use ringwire::{EngineHandle, EngineReport, Rank, ReportRequest, ShardStats};

/// Sessions SIGUSR1 lists after the shards' summaries: the worst by drops over every shard.
const SIGUSR1_WORST: usize = 10;
/// Report pages per shard SIGUSR1 scans for them (each `ReportRequest::RANK_SCAN` sessions).
const SIGUSR1_PAGES: usize = 64;
/// How long SIGUSR1 waits for the shards' reports.
const REPORT_TIMEOUT: Duration = Duration::from_secs(2);

static STDOUT_GONE: AtomicBool = AtomicBool::new(false);

/// Writes one line to standard output. A failure is logged once; the line is lost.
pub fn write_out(args: fmt::Arguments<'_>) {
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_fmt(args)
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush());
    if let Err(e) = written
        && !STDOUT_GONE.swap(true, Ordering::Relaxed)
    {
        tracing::warn!(
            error = %e,
            "standard output failed; counters and reports are no longer printed (the engine \
             keeps serving; the metrics endpoint, if on, still has them)"
        );
    }
}

/// Writes one line to standard error, ignoring failures.
pub fn write_note(args: fmt::Arguments<'_>) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr
        .write_fmt(args)
        .and_then(|()| stderr.write_all(b"\n"));
}

/// `out!("...")`: a line on standard output that never panics.
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::output::write_out(format_args!($($arg)*)) };
}

/// `note!("...")`: a line on standard error that never panics.
macro_rules! note {
    ($($arg:tt)*) => { $crate::cli::output::write_note(format_args!($($arg)*)) };
}

pub(crate) use {note, out};

/// The time of day as RFC 3339 in UTC, to the millisecond.
pub fn timestamp() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// The previous stats print, for per-second rates.
pub struct Rates {
    last: Option<(Instant, Vec<ShardStats>)>,
}

impl Rates {
    pub fn new() -> Self {
        Self { last: None }
    }

    /// Prints every shard's counters with a timestamp and, after the first print, the
    /// per-second rates since the previous one.
    pub fn print(&mut self, engine: &EngineHandle) {
        let now = Instant::now();
        let stats = engine.stats();
        let at = timestamp();
        for (i, s) in stats.iter().enumerate() {
            let rates = match &self.last {
                Some((then, before)) => before.get(i).map_or(String::new(), |b| {
                    rates(b, s, now.saturating_duration_since(*then))
                }),
                None => String::new(),
            };
            out!("stats {at} {s}{rates}");
        }
        self.last = Some((now, stats));
    }
}

/// ` rates/s: datagrams_in=.. datagrams_out=.. bytes_in=.. bytes_out=.. drops=.. kernel_drops=..`
fn rates(before: &ShardStats, now: &ShardStats, over: Duration) -> String {
    let secs = over.as_secs_f64();
    if secs <= 0.0 {
        return String::new();
    }
    let rate = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / secs;
    format!(
        " rates/s: datagrams_in={:.0} datagrams_out={:.0} bytes_in={:.0} bytes_out={:.0} \
         drops={:.0} kernel_drops={:.0}",
        rate(before.datagrams_in, now.datagrams_in),
        rate(before.datagrams_out, now.datagrams_out),
        rate(before.bytes_in, now.bytes_in),
        rate(before.bytes_out, now.bytes_out),
        rate(drops(before), drops(now)),
        rate(before.kernel_drops, now.kernel_drops),
    )
}

/// ringwire's own drops on a shard, over every reason.
pub fn drops(s: &ShardStats) -> u64 {
    s.send_queue_full
        + s.send_too_large
        + s.send_errors_total()
        + s.recv_truncated
        + s.recv_bad_address
        + s.recv_errors
        + s.rejected
}

/// SIGUSR1: a bounded summary for every app. Per shard one line of counters and its handler's
/// summary (for sessions: `sessions=... drops=...`); then the [`SIGUSR1_WORST`] worst sessions
/// by drops over every shard. Never one line per session: `ringwire stats` pages further.
pub fn print_summary(engine: &mut EngineHandle) {
    let at = timestamp();
    let stats = engine.stats();
    let reports = engine.reports(ReportRequest::first(0), REPORT_TIMEOUT);
    for (shard, (s, report)) in stats.iter().zip(&reports).enumerate() {
        out!(
            "report shard {shard}: at={at} datagrams_in={} datagrams_out={} drops={} \
             kernel_drops={} send_queue_full={} loop_turns={}",
            s.datagrams_in,
            s.datagrams_out,
            drops(s),
            s.kernel_drops,
            s.send_queue_full,
            s.loop_turns,
        );
        match report {
            Ok(report) => {
                for line in report.summary.lines() {
                    out!("report shard {shard}: {line}");
                }
            }
            Err(e) => out!("report shard {shard}: no report: {e}"),
        }
    }
    let worst = engine
        .observer()
        .worst(Rank::Drops, SIGUSR1_WORST, SIGUSR1_PAGES, REPORT_TIMEOUT);
    for (shard, item) in &worst.items {
        out!("report worst by drops: shard={shard} {item}");
    }
    if !worst.incomplete.is_empty() {
        out!(
            "report worst by drops: shards {:?} not fully read (busy, stopped, or more than \
             {SIGUSR1_PAGES} pages)",
            worst.incomplete
        );
    }
}

/// The final counters: one line per shard, handler counters, the total.
pub fn print_report(report: &EngineReport) {
    for s in &report.shards {
        out!(
            "final {}{}",
            s.stats,
            if s.drained { "" } else { " (not drained)" }
        );
    }
    for s in report.shards.iter().filter(|s| !s.app.is_empty()) {
        let fields: Vec<String> = s.app.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out!("app shard {}: {}", s.stats.shard, fields.join(" "));
    }
    let total = report.total().to_string();
    let fields = total
        .split_once(':')
        .map_or(total.as_str(), |(_, rest)| rest);
    out!("total{fields}");
}
