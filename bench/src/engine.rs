//! The ringwire binary as a server in the comparison.
//!
//! The baselines measure their own CPU time; the engine is a separate binary,
//! so `scripts/bench.sh` samples its shard threads from `/proc` before and
//! after the phases (`ringwire-bench cpu-sample`) and then turns the two
//! samples plus the engine's shutdown output (`final shard N: ...
//! datagrams_out=...`) into a [`ServerReport`] shaped like the baselines'
//! (`ringwire-bench engine-report`), so `compare` treats it the same way.

use crate::server::report::{ServerReport, ThreadReport};
use crate::sys::cpu_time::CpuTime;
use crate::sys::proc_stat::{self, ThreadStat};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// The `comm` prefixes of the engine's shard threads: `rw-shard-N` since
/// the lifecycle work, `ringwire-shard-N` in older binaries (the kernel
/// keeps the first 15 bytes of a name). Both are sampled, so an older
/// binary can run beside the current one (`RINGWIRE_BASELINE_BIN`).
pub const SHARD_COMM: [&str; 2] = ["rw-shard", "ringwire-shard"];

/// Arguments of `ringwire-bench cpu-sample`.
#[derive(Debug, Clone, Args)]
pub struct CpuSampleArgs {
    /// The process to sample.
    #[arg(long)]
    pub pid: u32,
    /// Only threads whose `comm` starts with one of these (comma separated).
    #[arg(long, value_delimiter = ',', default_values_t = SHARD_COMM.map(String::from))]
    pub comm: Vec<String>,
    /// Write the sample (JSON) here.
    #[arg(long)]
    pub out: PathBuf,
}

/// CPU times of some threads of a process at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuSample {
    /// When, seconds since the Unix epoch.
    pub unix_s: f64,
    /// The matching threads, in thread-id order.
    pub threads: Vec<ThreadStat>,
}

/// Samples the threads and writes the JSON; fails if none matches.
pub fn cpu_sample(args: CpuSampleArgs) -> crate::CmdResult {
    let prefixes: Vec<&str> = args.comm.iter().map(String::as_str).collect();
    let threads = proc_stat::threads(args.pid, &prefixes)
        .map_err(|e| format!("reading /proc/{}/task: {e}", args.pid))?;
    if threads.is_empty() {
        return Err(format!(
            "process {} has no thread named {}*",
            args.pid,
            args.comm.join("* or ")
        )
        .into());
    }
    let unix_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let sample = CpuSample { unix_s, threads };
    write_json(&args.out, &sample)
}

/// Arguments of `ringwire-bench engine-report`.
#[derive(Debug, Clone, Args)]
pub struct EngineReportArgs {
    /// The engine's stdout (its `listening on` and `final shard` lines).
    #[arg(long)]
    pub log: PathBuf,
    /// `cpu-sample` taken before the first phase.
    #[arg(long)]
    pub before: PathBuf,
    /// `cpu-sample` taken after the last phase, before SIGINT.
    #[arg(long)]
    pub after: PathBuf,
    /// Name in the report.
    #[arg(long, default_value = "ringwire")]
    pub kind: String,
    /// Write the server report (JSON) here.
    #[arg(long)]
    pub json: PathBuf,
}

/// What the engine printed: its address and each shard's `datagrams_out`.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineLog {
    /// From `ringwire: listening on ADDR ...`.
    pub addr: SocketAddr,
    /// `datagrams_out` of `final shard N:` lines, by shard index.
    pub served: Vec<u64>,
}

/// Parses the engine's stdout.
pub fn parse_log(text: &str) -> Result<EngineLog, String> {
    let addr = text
        .lines()
        .find_map(|l| l.strip_prefix("ringwire: listening on "))
        .and_then(|rest| rest.split_whitespace().next())
        .ok_or("no `ringwire: listening on ADDR` line")?;
    let addr = addr
        .parse()
        .map_err(|e| format!("bad address {addr}: {e}"))?;
    let mut served = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("final shard ")) {
        let out = line
            .split_whitespace()
            .find_map(|f| f.strip_prefix("datagrams_out="))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no datagrams_out in `{line}`"))?;
        served.push(out);
    }
    if served.is_empty() {
        return Err("no `final shard N: ...` line (did the engine stop cleanly?)".into());
    }
    Ok(EngineLog { addr, served })
}

/// The report: shard i is the i-th sampled thread (threads are spawned in
/// shard order); CPU is `after - before` of the same thread id.
pub fn report(
    kind: &str,
    log: &EngineLog,
    before: &CpuSample,
    after: &CpuSample,
) -> Result<ServerReport, String> {
    if after.threads.len() != log.served.len() {
        return Err(format!(
            "{} shard threads sampled but {} shards reported",
            after.threads.len(),
            log.served.len()
        ));
    }
    let threads = after
        .threads
        .iter()
        .zip(&log.served)
        .map(|(a, &served)| {
            let b = before.threads.iter().find(|b| b.tid == a.tid);
            let base = b.map_or(CpuTime::default(), |b| b.cpu);
            ThreadReport {
                core: a.core,
                served,
                cpu: CpuTime {
                    user_s: a.cpu.user_s - base.user_s,
                    sys_s: a.cpu.sys_s - base.sys_s,
                },
            }
        })
        .collect();
    Ok(ServerReport::new(
        kind,
        log.addr,
        after.unix_s - before.unix_s,
        threads,
    ))
}

/// Builds the engine's server report from its log and two samples.
pub fn engine_report(args: EngineReportArgs) -> crate::CmdResult {
    let log = parse_log(&read(&args.log)?).map_err(|e| format!("{}: {e}", args.log.display()))?;
    let before: CpuSample = serde_json::from_str(&read(&args.before)?)?;
    let after: CpuSample = serde_json::from_str(&read(&args.after)?)?;
    let report = report(&args.kind, &log, &before, &after)?;
    print!("{report}");
    write_json(&args.json, &report)
}

/// Reads a text file, naming it in the error.
pub fn read(path: &std::path::Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

/// Writes `value` as pretty JSON plus a newline.
pub fn write_json<T: Serialize>(path: &std::path::Path, value: &T) -> crate::CmdResult {
    let json = serde_json::to_string_pretty(value)?;
    std::fs::write(path, json + "\n").map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(())
}
