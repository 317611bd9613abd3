//! `ringwire stats --addr HOST:PORT [--top N] [--by drops|queue|rtt|age] [--interval SECS]`:
//! the live view. Reads `/stats.json` twice, `--interval` apart, and prints per-shard rates;
//! then reads `/sessions.json` and prints the worst sessions' flight recorders.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ringwire::Rank;
use serde_json::Value;

use super::output::{note, out};

/// What to show.
pub struct StatsArgs {
    pub addr: SocketAddr,
    pub top: usize,
    pub by: Rank,
    pub interval: Duration,
}

/// Runs the view once. Exit status 0, or 1 when the endpoint cannot be read.
pub fn run(args: &StatsArgs) -> ExitCode {
    match view(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            note!("ringwire stats: {e}");
            ExitCode::from(1)
        }
    }
}

fn view(args: &StatsArgs) -> Result<(), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let get = |path: &str| -> Result<Value, String> {
        let url = format!("http://{}{path}", args.addr);
        let body = agent
            .get(&url)
            .call()
            .and_then(|mut r| r.body_mut().read_to_string())
            .map_err(|e| format!("GET {url}: {e}"))?;
        serde_json::from_str(&body).map_err(|e| format!("GET {url}: not JSON: {e}"))
    };
    let first = get("/stats.json")?;
    let started = Instant::now();
    std::thread::sleep(args.interval);
    let second = get("/stats.json")?;
    let wall = started.elapsed();
    let ms = |v: &Value| v["unix_ms"].as_u64().unwrap_or(0);
    let secs = match ms(&second).saturating_sub(ms(&first)) {
        0 => wall.as_secs_f64(),
        d => d as f64 / 1000.0,
    };
    let shards = second["shards"].as_array().cloned().unwrap_or_default();
    out!(
        "ringwire at {}: {} shards, rates over {secs:.1} s",
        args.addr,
        shards.len()
    );
    out!(
        "{:>5} {:>12} {:>12} {:>10} {:>14} {:>10} {:>10} {:>8} {:>12}",
        "shard",
        "in/s",
        "out/s",
        "drops/s",
        "kernel_drops/s",
        "sessions",
        "refused/s",
        "trims/s",
        "turn_p99_us"
    );
    for (i, now) in shards.iter().enumerate() {
        let before = &first["shards"][i];
        let c = |s: &Value, name: &str| s["counters"][name].as_u64().unwrap_or(0);
        let rate = |name: &str| c(now, name).saturating_sub(c(before, name)) as f64 / secs;
        let drops: f64 = [
            "send_queue_full",
            "send_too_large",
            "recv_truncated",
            "recv_bad_address",
            "recv_errors",
            "rejected",
        ]
        .iter()
        .map(|n| rate(n))
        .sum();
        // Sessions, or QUIC connections for a QUIC app.
        let live = now["app"]["sessions"]
            .as_u64()
            .or_else(|| now["app"]["quic_connections"].as_u64());
        let sessions = live.map_or("-".to_string(), |n| n.to_string());
        // Admission refusals and trims, summed over their reasons (session and QUIC apps).
        let by_prefix = |prefixes: [&str; 2]| {
            let sum = |s: &Value| -> Option<u64> {
                let app = s["app"].as_object()?;
                Some(
                    app.iter()
                        .filter(|(k, _)| prefixes.iter().any(|p| k.starts_with(p)))
                        .filter_map(|(_, v)| v.as_u64())
                        .sum(),
                )
            };
            match (sum(now), sum(before)) {
                (Some(a), Some(b)) if live.is_some() => {
                    format!("{:.0}", a.saturating_sub(b) as f64 / secs)
                }
                _ => "-".to_string(),
            }
        };
        let refused = by_prefix(["session_refusals_", "quic_refusals_"]);
        let trims = by_prefix(["session_trims_", "quic_trims_"]);
        let p99 = now["turns"]["p99_ns"]
            .as_u64()
            .map_or("-".to_string(), |n| format!("{:.1}", n as f64 / 1000.0));
        out!(
            "{:>5} {:>12.0} {:>12.0} {:>10.0} {:>14.0} {:>10} {:>10} {:>8} {:>12}",
            now["shard"],
            rate("datagrams_in"),
            rate("datagrams_out"),
            drops,
            rate("kernel_drops"),
            sessions,
            refused,
            trims,
            p99
        );
    }
    let sessions = get(&format!("/sessions.json?top={}&by={}", args.top, args.by))?;
    let list = sessions["sessions"].as_array().cloned().unwrap_or_default();
    out!("worst {} sessions by {}:", list.len(), args.by);
    for s in &list {
        let fields: Vec<String> = s["fields"]
            .as_object()
            .map(|f| {
                f.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        out!(
            "shard {} {} {} {}",
            s["shard"],
            s["kind"].as_str().unwrap_or("session"),
            s["conn"].as_str().unwrap_or("?"),
            fields.join(" ")
        );
    }
    if let Some(incomplete) = sessions["incomplete"].as_array()
        && !incomplete.is_empty()
    {
        out!("(shards {incomplete:?} were not fully read: busy, stopped or very large)");
    }
    Ok(())
}
