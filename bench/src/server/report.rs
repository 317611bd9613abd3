//! What a server run reports: datagrams served and CPU time per thread.

use crate::sys::cpu_time::CpuTime;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;

/// One server thread's totals.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ThreadReport {
    /// Core it was pinned to (if pinning worked).
    pub core: Option<usize>,
    /// Datagrams echoed.
    pub served: u64,
    /// Its CPU time.
    pub cpu: CpuTime,
}

/// A whole server run; serialised as the server's `--json` file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerReport {
    /// `tokio`, `glommio` or `mmsg`.
    pub kind: String,
    /// Address served.
    pub addr: String,
    /// Seconds from start to stop.
    pub wall_s: f64,
    /// Datagrams echoed, all threads.
    pub served: u64,
    /// CPU seconds in user mode, all threads.
    pub cpu_user_s: f64,
    /// CPU seconds in the kernel, all threads.
    pub cpu_sys_s: f64,
    /// CPU seconds per million datagrams echoed (null if none were).
    pub cpu_s_per_million: Option<f64>,
    /// Per thread.
    pub threads: Vec<ThreadReport>,
}

impl ServerReport {
    /// Adds up the threads.
    #[must_use]
    pub fn new(kind: &str, addr: SocketAddr, wall_s: f64, threads: Vec<ThreadReport>) -> Self {
        let served = threads.iter().map(|t| t.served).sum::<u64>();
        let cpu = threads
            .iter()
            .fold(CpuTime::default(), |acc, t| acc.plus(t.cpu));
        Self {
            kind: kind.to_string(),
            addr: addr.to_string(),
            wall_s,
            served,
            cpu_user_s: cpu.user_s,
            cpu_sys_s: cpu.sys_s,
            cpu_s_per_million: (served > 0).then(|| cpu.total_s() * 1e6 / served as f64),
            threads,
        }
    }
}

impl fmt::Display for ServerReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} served {} datagrams in {:.2} s on {} threads; CPU user {:.3} s, sys {:.3} s{}",
            self.kind,
            self.served,
            self.wall_s,
            self.threads.len(),
            self.cpu_user_s,
            self.cpu_sys_s,
            match self.cpu_s_per_million {
                Some(c) => format!(", {c:.3} CPU s per million datagrams"),
                None => String::new(),
            }
        )
    }
}
