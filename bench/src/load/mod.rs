//! `ringwire-bench load`: drive any UDP echo server with many peer sockets.
//!
//! Each worker thread owns `peers / threads` connected UDP sockets (one source
//! port per simulated peer) in one epoll set, sends with `sendmmsg` and reads
//! with `recvmmsg` in batches, and records round-trip latency into an HDR
//! histogram. [`closed`] keeps a window of datagrams in flight; [`open`] sends
//! at a fixed rate and measures from intended send times.

pub mod closed;
pub mod open;
pub mod payload;
pub mod peers;
pub mod progress;
pub mod report;
pub mod stats;
pub mod worker;

use crate::args::{parse_rate, parse_secs};
use crate::sys::{affinity, rlimit};
use clap::{Args, ValueEnum};
use peers::PeerSet;
use report::{LoadReport, RunInfo};
use stats::{Totals, WorkerStats};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use worker::{LiveCounters, PollMode, Worker};

/// What the peers say to the server. Only `echo` exists so far; session and
/// relay traffic will be further variants with their own payload codecs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Each datagram is echoed back to its sender.
    Echo,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Echo => "echo",
        }
    }
}

/// Arguments of `ringwire-bench load`.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Server address, e.g. 127.0.0.1:9000.
    #[arg(long)]
    pub target: SocketAddr,
    /// Traffic kind.
    #[arg(long, value_enum, default_value = "echo")]
    pub mode: Mode,
    /// Simulated peers: one UDP socket and source port each, split over the
    /// threads. RLIMIT_NOFILE is raised in-process as needed.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub peers: u32,
    /// Worker threads, each pinned to a core.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: u32,
    /// Cores to pin workers to, comma separated (default: worker i on core i).
    #[arg(long, value_delimiter = ',')]
    pub cores: Option<Vec<usize>>,
    /// Datagram size in bytes (at least 16: sequence, peer id, send time).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(16..=65507))]
    pub payload: u32,
    /// Measured seconds (fractions allowed).
    #[arg(long, default_value = "10", value_parser = parse_secs)]
    pub duration: f64,
    /// Seconds of traffic before measuring starts.
    #[arg(long, default_value = "1", value_parser = parse_secs)]
    pub warmup: f64,
    /// Closed loop: datagrams outstanding per worker thread (default 64 when
    /// --rate is not given).
    #[arg(long, conflicts_with = "rate", value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub window: Option<u32>,
    /// Open loop: datagrams per second, all threads together.
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Milliseconds without an echo before a datagram counts as lost.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub timeout_ms: u64,
    /// Waiting strategy: spin (busy-poll, default) or block.
    #[arg(long, value_enum, default_value = "spin")]
    pub poll: PollMode,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// Default closed-loop window when neither --window nor --rate is given.
pub const DEFAULT_WINDOW: u32 = 64;

/// Runs the load, prints the table and writes `--json`.
pub fn run(args: LoadArgs) -> crate::CmdResult {
    let report = execute(&args)?;
    print!("{report}");
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n")
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Runs the load and returns the report without printing it (for tests and
/// the comparison driver).
pub fn execute(args: &LoadArgs) -> Result<LoadReport, Box<dyn std::error::Error + Send + Sync>> {
    let threads = args.threads as usize;
    let peers = args.peers as usize;
    if peers < threads {
        return Err(format!("--peers ({peers}) must be at least --threads ({threads})").into());
    }
    // Peer sockets, one epoll per worker, stdio and some slack.
    let needed = (peers + threads + 64) as u64;
    match rlimit::raise(rlimit::Resource::OpenFiles, needed) {
        Ok(r) if r.raised_hard => {
            eprintln!(
                "raised RLIMIT_NOFILE hard limit to {} for {peers} peers",
                r.hard
            );
        }
        Ok(_) => {}
        Err(e) => return Err(format!("cannot open {peers} peer sockets: {e}").into()),
    }

    let mut sets = Vec::with_capacity(threads);
    let mut sources = Vec::with_capacity(peers);
    let mut opened = 0;
    for t in 0..threads {
        let count = peers / threads + usize::from(t < peers % threads);
        let set = PeerSet::open(args.target, opened, count)?;
        opened += count;
        sources.extend(set.local_addrs());
        sets.push(set);
    }
    sources.sort_unstable();
    sources.dedup();

    let window = args
        .rate
        .is_none()
        .then(|| args.window.unwrap_or(DEFAULT_WINDOW) as usize);
    let payload_len = args.payload as usize;
    let warmup_ns = (args.warmup * 1e9) as u64;
    let end_ns = warmup_ns + (args.duration * 1e9) as u64;
    let timeout_ns = args.timeout_ms * 1_000_000;
    let epoch = Instant::now();
    let live: Vec<Arc<LiveCounters>> = (0..threads).map(|_| Arc::default()).collect();

    let mut handles = Vec::with_capacity(threads);
    for (index, set) in sets.into_iter().enumerate() {
        let core = affinity::core_for(args.cores.as_deref(), index);
        let live = Arc::clone(&live[index]);
        let poll = args.poll;
        let rate = args.rate;
        let handle = std::thread::Builder::new()
            .name(format!("load-{index}"))
            .spawn(move || -> std::io::Result<WorkerStats> {
                if let Err(e) = affinity::pin_current(core) {
                    eprintln!("load worker {index}: {e}; running unpinned");
                }
                let w = Worker::new(
                    set,
                    payload_len,
                    epoch,
                    warmup_ns,
                    end_ns,
                    timeout_ns,
                    poll,
                    live,
                );
                match (rate, window) {
                    (Some(r), _) => open::run(w, open::Schedule::new(r, threads, index)),
                    (None, w_slots) => closed::run(w, w_slots.unwrap_or(1)),
                }
            })?;
        handles.push(handle);
    }

    let results =
        progress::wait_with_progress(handles, &live, epoch + Duration::from_nanos(warmup_ns));
    let mut stats = Vec::with_capacity(threads);
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Ok(Ok(s)) => stats.push(s),
            Ok(Err(e)) => return Err(format!("load worker {i}: {e}").into()),
            Err(_) => return Err(format!("load worker {i} panicked").into()),
        }
    }
    let totals = Totals::merge(&stats);
    let info = RunInfo {
        mode: args.mode.name().to_string(),
        target: args.target.to_string(),
        peers,
        distinct_source_ports: sources.len(),
        threads,
        payload_bytes: payload_len,
        window,
        rate: args.rate,
        duration_s: args.duration,
        warmup_s: args.warmup,
        timeout_ms: args.timeout_ms,
    };
    Ok(LoadReport::new(info, &totals))
}
