//! CPU time of another process's threads, from `/proc/PID/task/*/stat`
//! (how `scripts/bench.sh` measures the ringwire binary, whose serving
//! threads cannot call `getrusage` for us).

use super::cpu_time::{CpuTime, clock_ticks_per_s};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One thread's line of `/proc/PID/task/TID/stat`, the fields we use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadStat {
    /// Thread id.
    pub tid: u32,
    /// Its `comm` (the kernel keeps 15 bytes: `ringwire-shard-0` reads
    /// `ringwire-shard-`, `rw-shard-0` stays whole).
    pub comm: String,
    /// The core it last ran on.
    pub core: Option<usize>,
    /// User and system CPU time so far.
    pub cpu: CpuTime,
}

/// Parses one `stat` line; `ticks` is clock ticks per second. `comm` may
/// hold spaces and parentheses, so the fields are counted after its last `)`.
#[must_use]
pub fn parse_stat(line: &str, ticks: f64) -> Option<ThreadStat> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let tid = line[..open].trim().parse().ok()?;
    let comm = line.get(open + 1..close)?.to_string();
    // After ")": field 3 (state) is index 0, so field N is index N - 3.
    let rest: Vec<&str> = line[close + 1..].split_whitespace().collect();
    let field = |n: usize| rest.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    Some(ThreadStat {
        tid,
        comm,
        core: field(39).and_then(|c| usize::try_from(c).ok()),
        cpu: CpuTime {
            user_s: field(14)? as f64 / ticks,
            sys_s: field(15)? as f64 / ticks,
        },
    })
}

/// The threads of process `pid` whose `comm` starts with one of
/// `comm_prefixes`, in thread-id order (creation order, short of tid
/// wrap-around).
pub fn threads(pid: u32, comm_prefixes: &[&str]) -> std::io::Result<Vec<ThreadStat>> {
    threads_in(&Path::new("/proc").join(pid.to_string()), comm_prefixes)
}

/// [`threads`] for a `/proc/PID` directory.
pub fn threads_in(proc_dir: &Path, comm_prefixes: &[&str]) -> std::io::Result<Vec<ThreadStat>> {
    let ticks = clock_ticks_per_s();
    let mut out = Vec::new();
    for entry in std::fs::read_dir(proc_dir.join("task"))? {
        let Ok(text) = std::fs::read_to_string(entry?.path().join("stat")) else {
            continue; // the thread exited meanwhile
        };
        let wanted = |t: &ThreadStat| comm_prefixes.iter().any(|p| t.comm.starts_with(p));
        if let Some(t) = parse_stat(&text, ticks).filter(wanted) {
            out.push(t);
        }
    }
    out.sort_by_key(|t| t.tid);
    Ok(out)
}
