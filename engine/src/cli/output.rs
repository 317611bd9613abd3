//! What the binary prints on stdout: counters, SIGUSR1 reports, the final report.
#![forbid(unsafe_code)]

use std::io::Write;
use std::time::Duration;

use ringwire::{EngineHandle, EngineReport, ReportRequest};

/// Sessions per shard that SIGUSR1 prints after each shard's summary.
const SIGUSR1_SESSIONS: usize = 16;

/// How long SIGUSR1 waits for the shards' reports.
const REPORT_TIMEOUT: Duration = Duration::from_secs(2);

pub fn print_stats(engine: &EngineHandle) {
    for s in engine.stats() {
        println!("stats {s}");
    }
    let _ = std::io::stdout().flush();
}

/// SIGUSR1: every shard's handler report, bounded: a summary and the first
/// [`SIGUSR1_SESSIONS`] sessions' flight recorders (by connection ID), and where the rest
/// would start.
pub fn print_reports(engine: &mut EngineHandle) {
    let request = ReportRequest::first(SIGUSR1_SESSIONS);
    let reports = engine.reports(request, REPORT_TIMEOUT);
    for (shard, report) in reports.iter().enumerate() {
        match report {
            Ok(report) => {
                for line in report.text().lines() {
                    println!("report shard {shard}: {line}");
                }
                if let Some(next) = report.next {
                    println!("report shard {shard}: more sessions after {next:#018x}");
                }
            }
            Err(e) => println!("report shard {shard}: no report: {e}"),
        }
    }
    let _ = std::io::stdout().flush();
}

pub fn print_report(report: &EngineReport) {
    for s in &report.shards {
        println!(
            "final {}{}",
            s.stats,
            if s.drained { "" } else { " (not drained)" }
        );
    }
    for s in report.shards.iter().filter(|s| !s.app.is_empty()) {
        let fields: Vec<String> = s.app.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("app shard {}: {}", s.stats.shard, fields.join(" "));
    }
    let total = report.total().to_string();
    let fields = total
        .split_once(':')
        .map_or(total.as_str(), |(_, rest)| rest);
    println!("total{fields}");
    let _ = std::io::stdout().flush();
}
