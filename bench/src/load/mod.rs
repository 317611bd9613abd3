//! `ringwire-bench load`: drive any UDP echo server with many peer sockets.
//!
//! Each worker thread owns `peers / threads` connected UDP sockets (one source
//! port per simulated peer) in one epoll set, sends with `sendmmsg` and reads
//! with `recvmmsg` in batches, and records round-trip latency into an HDR
//! histogram. [`closed`] keeps a window of datagrams in flight; [`open`] sends
//! at a fixed rate and measures from intended send times. Both run over a
//! [`transport::Transport`]: raw echo ([`echo_io`]) or sessions
//! ([`session`], after a handshake phase).

pub mod closed;
pub mod echo_io;
pub mod fanout;
pub mod open;
pub mod payload;
pub mod peers;
pub mod progress;
pub mod raw_fanout;
pub mod report;
pub mod session;
pub mod stats;
pub mod transport;
pub mod worker;

use crate::args::{parse_rate, parse_secs};
use crate::sys::{affinity, cpu_time, loadavg, rlimit, steal};
use clap::{Args, ValueEnum};
use echo_io::EchoIo;
use peers::PeerSet;
use report::{HandshakeSummary, LoadReport, RunInfo};
use session::{HandshakeStats, SessionIo};
use stats::{Totals, WorkerStats};
use std::net::SocketAddr;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use transport::Transport;
use worker::{LiveCounters, PollMode, Window, Worker};

/// What the peers say to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Raw UDP: each datagram is echoed back to its sender.
    Echo,
    /// One session per peer (`ringwire serve --app session-echo`): each
    /// message comes back on its session. Also spelled `session-echo`.
    #[value(alias = "session-echo")]
    Session,
    /// One session per peer (`ringwire serve --app relay`), peers paired
    /// (2k, 2k+1): each request is a Forward to the partner, timed when the
    /// partner gets the Delivered.
    Relay,
    /// Fan-out through the relay (`--app relay`): session 0 publishes at
    /// `--rate`, every other session subscribes to it; each delivery is timed
    /// at its subscriber. One thread, open loop only.
    Fanout,
    /// Fan-out over plain UDP against the fan-out floor (`server --kind mmsg-fanout`): as
    /// `fanout`, with no sessions and no cryptography ([`raw_fanout`]).
    #[value(name = "raw-fanout")]
    RawFanout,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Echo => "echo",
            Mode::Session => "session",
            Mode::Relay => "relay",
            Mode::Fanout => "fanout",
            Mode::RawFanout => "raw-fanout",
        }
    }

    fn flavor(self) -> Option<session::Flavor> {
        match self {
            Mode::Echo | Mode::RawFanout => None,
            Mode::Session => Some(session::Flavor::Echo),
            Mode::Relay => Some(session::Flavor::Relay),
            Mode::Fanout => Some(session::Flavor::Fanout),
        }
    }
}

/// Largest `--payload` in session modes (the endpoint's default
/// `max_payload`, less the relay header in relay mode).
fn max_session_payload(mode: Mode) -> usize {
    let max = ringwire_shard::session::EndpointConfig::DEFAULT_MAX_PAYLOAD;
    match mode {
        Mode::Relay | Mode::Fanout => max - ringwire::apps::relay::msg::RELAY_HEADER_LEN,
        _ => max,
    }
}

/// How long the handshake phase waits without any session becoming ready or failing.
const HANDSHAKE_STALL: Duration = Duration::from_secs(15);

/// Arguments of `ringwire-bench load`.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Server address, e.g. 127.0.0.1:9000.
    #[arg(long)]
    pub target: SocketAddr,
    /// Traffic kind.
    #[arg(long, value_enum, default_value = "echo")]
    pub mode: Mode,
    /// The server's static public key (base64), required by the session modes (or
    /// --server-key-file, or --plaintext): the `ringwire` binary prints it at start
    /// (`session public key ...`), `ringwire pubkey KEYFILE` prints it from the key file.
    #[arg(long)]
    pub server_key: Option<ringwire_shard::session::PublicKey>,
    /// A file holding the server's static public key: one line of base64, as
    /// `ringwire keygen` and `ringwire pubkey` print it (never the private key file).
    #[arg(long, conflicts_with = "server_key")]
    pub server_key_file: Option<std::path::PathBuf>,
    /// Session modes: plaintext sessions, against a server run with
    /// `security.mode = "none"` (to measure the cost of cryptography); no key needed.
    #[arg(long, conflicts_with_all = ["server_key", "server_key_file"])]
    pub plaintext: bool,
    /// Simulated peers: one UDP socket and source port each, split over the
    /// threads. RLIMIT_NOFILE is raised in-process as needed.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub peers: u32,
    /// Sessions (session modes): at least --peers; session i sends from peer socket
    /// i mod peers, so one socket carries many sessions (default: one per peer).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub sessions: Option<u32>,
    /// Peer sockets per loopback source address (127.0.0.1, 127.0.0.2, ...), at most
    /// 16,384. Fewer spreads the sessions over more sources, e.g. to stay under a
    /// per-source session cap.
    #[arg(long, default_value_t = peers::PEERS_PER_LOOPBACK_IP as u32,
          value_parser = clap::value_parser!(u32).range(1..=peers::PEERS_PER_LOOPBACK_IP as i64))]
    pub peers_per_ip: u32,
    /// New sessions per second at most during the handshake phase, all threads together
    /// (default: unpaced, at most 256 handshakes in flight per thread).
    #[arg(long, value_parser = parse_rate)]
    pub handshake_rate: Option<f64>,
    /// Session modes: the client sessions' keepalive interval in ms (0: off; default: the
    /// endpoint's, 10 s). Idle sessions at scale: turn it off here and on the server.
    #[arg(long)]
    pub keepalive_ms: Option<u64>,
    /// Session modes: the client sessions' idle timeout in ms (default: the endpoint's, 30 s).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout_ms: Option<u64>,
    /// Session modes: rekey a client session's send key after this many ms (default: the
    /// endpoint's, 120 s). Scale runs set it above the run's length, as on the server.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub rekey_after_ms: Option<u64>,
    /// Session modes: the first Initiation retransmission delay in ms (default: the
    /// endpoint's, 500 ms; the maximum delay becomes 4 times it, the handshake timeout at
    /// least 8 times it). Many sessions at once: the server works through 256 Initiations per
    /// thread in flight more slowly than 500 ms on a busy core, and each retransmission costs
    /// both sides a whole new handshake.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub handshake_rto_ms: Option<u64>,
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
    /// Traffic goes to the first N peers only (sessions in the session modes), round robin,
    /// split across the threads; the others stay open and idle. A hot subset among many idle
    /// sessions: separates what idle sessions cost from what touching cold ones costs
    /// (`scripts/scale.sh`'s hot phase).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub active: Option<u32>,
    /// Open loop: datagrams per second, all threads together.
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Milliseconds without an echo before a datagram counts as lost.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub timeout_ms: u64,
    /// Bulk streams: each peer's batch of back-to-back datagrams goes out as
    /// `UDP_SEGMENT` sends (GSO; on loopback they reach the server coalesced,
    /// as a NIC's GRO would hand them over) and the peers read with `UDP_GRO`.
    /// For few peers and large payloads (`scripts/bench.sh`: 4 peers, 1200 B,
    /// window 256). Echo and session modes.
    #[arg(long)]
    pub bulk: bool,
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
///
/// Session modes print `load: sessions ready` on stderr when every worker
/// finished its handshakes, `load: measuring` when the measured window
/// starts and `load: done` when the workers are finished (for scripts that
/// sample the server in between).
pub fn execute(args: &LoadArgs) -> Result<LoadReport, Box<dyn std::error::Error + Send + Sync>> {
    let threads = args.threads as usize;
    let peers = args.peers as usize;
    let sessions = args.sessions.map_or(peers, |s| s as usize);
    if peers < threads {
        return Err(format!("--peers ({peers}) must be at least --threads ({threads})").into());
    }
    if args.mode == Mode::Echo && sessions != peers {
        return Err("--sessions applies to the session modes only".into());
    }
    if sessions < peers {
        return Err(format!("--sessions ({sessions}) must be at least --peers ({peers})").into());
    }
    if args.mode == Mode::Relay && (!sessions.is_multiple_of(2) || peers < 2 * threads) {
        return Err(format!(
            "relay mode pairs sessions within a thread: --sessions ({sessions}) must be even and --peers ({peers}) at least 2 x --threads ({threads})"
        )
        .into());
    }
    let fanout = matches!(args.mode, Mode::Fanout | Mode::RawFanout);
    if fanout && (threads != 1 || args.rate.is_none() || sessions < 2) {
        return Err(
            "fanout mode needs --threads 1, --rate (publishes/s) and at least 2 sessions (one publisher)"
                .into(),
        );
    }
    let server_key = server_key(args)?;
    if args.mode.flavor().is_some() && server_key.is_none() && !args.plaintext {
        return Err(format!(
            "{} mode needs --server-key or --server-key-file (the server's session public key; \
             `ringwire serve` prints it), or --plaintext against a server with security.mode = \"none\"",
            args.mode.name()
        )
        .into());
    }
    let payload_len = args.payload as usize;
    if args.mode.flavor().is_some() && payload_len > max_session_payload(args.mode) {
        return Err(format!(
            "--payload {payload_len} exceeds the {} bytes a {} message carries",
            max_session_payload(args.mode),
            args.mode.name()
        )
        .into());
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

    // Relay pairs never straddle two workers: split pairs, not sessions.
    let unit = if args.mode == Mode::Relay { 2 } else { 1 };
    let units = sessions / unit;
    let mut sets = Vec::with_capacity(threads);
    let mut sources = Vec::with_capacity(peers);
    let mut opened = 0;
    for t in 0..threads {
        let count = peers / threads + usize::from(t < peers % threads);
        let own = unit * (units / threads + usize::from(t < units % threads));
        let per_ip = args.peers_per_ip as usize;
        let set = PeerSet::open(args.target, opened, count, per_ip, args.bulk)?;
        opened += count;
        sources.extend(set.local_addrs());
        sets.push((set, own));
    }
    sources.sort_unstable();
    sources.dedup();

    let window = args
        .rate
        .is_none()
        .then(|| args.window.unwrap_or(DEFAULT_WINDOW) as usize);
    let warmup_ns = (args.warmup * 1e9) as u64;
    let timing = Window {
        measure_start_ns: warmup_ns,
        end_ns: warmup_ns + (args.duration * 1e9) as u64,
        timeout_ns: args.timeout_ms * 1_000_000,
    };
    let live: Vec<Arc<LiveCounters>> = (0..threads).map(|_| Arc::default()).collect();
    let start_line = Arc::new(Barrier::new(threads + 1));
    let loadavg_before = loadavg::now();

    let mut handles = Vec::with_capacity(threads);
    let tuning = session::ClientTuning {
        keepalive: args
            .keepalive_ms
            .map(|ms| (ms > 0).then(|| Duration::from_millis(ms))),
        idle_timeout: args.idle_timeout_ms.map(Duration::from_millis),
        rekey_after: args.rekey_after_ms.map(Duration::from_millis),
        handshake_rto: args.handshake_rto_ms.map(Duration::from_millis),
    };
    let handshake_rate = args.handshake_rate.map(|r| r / threads as f64);
    for (index, (set, own)) in sets.into_iter().enumerate() {
        let plan = Plan {
            sessions: own,
            tuning,
            handshake_rate,
            index,
            threads,
            core: affinity::core_for(args.cores.as_deref(), index),
            mode: args.mode,
            target: args.target,
            server_key,
            plaintext: args.plaintext,
            payload_len,
            timing,
            poll: args.poll,
            rate: args.rate,
            window,
            bulk: args.bulk,
            active: args.active.map(|a| (a as usize).div_ceil(threads)),
            live: Arc::clone(&live[index]),
            start_line: Arc::clone(&start_line),
        };
        let handle = std::thread::Builder::new()
            .name(format!("load-{index}"))
            .spawn(move || plan.run(set))?;
        handles.push(handle);
    }

    start_line.wait();
    // The markers scripts sample the server at (raw fan-out too: its subscriptions are its
    // set-up phase).
    let session_mode = args.mode != Mode::Echo;
    if session_mode {
        eprintln!("load: sessions ready");
    }
    std::thread::sleep(Duration::from_nanos(warmup_ns));
    // The steal that can disturb the figures: the measured window's, not the handshakes'
    // (minutes at a million sessions) or the warm-up's.
    let ticks_before = steal::now();
    if session_mode {
        eprintln!("load: measuring");
    }
    let results = progress::wait_with_progress(handles, &live, Instant::now());
    if session_mode {
        eprintln!("load: done");
    }
    let mut stats = Vec::with_capacity(threads);
    let mut handshakes = Vec::new();
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Ok(Ok((s, hs))) => {
                stats.push(s);
                handshakes.extend(hs);
            }
            Ok(Err(e)) => return Err(format!("load worker {i}: {e}").into()),
            Err(_) => return Err(format!("load worker {i} panicked").into()),
        }
    }
    let loadavg_after = loadavg::now();
    let steal_pct = steal::percent(ticks_before, steal::now());
    let totals = Totals::merge(&stats);
    let info = RunInfo {
        mode: args.mode.name().to_string(),
        target: args.target.to_string(),
        peers,
        sessions: (args.mode != Mode::Echo).then_some(sessions),
        distinct_source_ports: sources.len(),
        threads,
        payload_bytes: payload_len,
        window,
        rate: args.rate,
        duration_s: args.duration,
        warmup_s: args.warmup,
        timeout_ms: args.timeout_ms,
        handshake: args
            .mode
            .flavor()
            .is_some()
            .then(|| HandshakeSummary::merge(&handshakes)),
        bulk: args.bulk,
        active: args
            .active
            .map(|a| (a as usize).min(if session_mode { sessions } else { peers })),
        loadavg_before,
        loadavg_after,
        steal_pct,
    };
    Ok(LoadReport::new(info, &totals))
}

/// The server's public key from `--server-key` or `--server-key-file` (`None` if neither).
fn server_key(
    args: &LoadArgs,
) -> Result<Option<ringwire_shard::session::PublicKey>, Box<dyn std::error::Error + Send + Sync>> {
    let Some(path) = &args.server_key_file else {
        return Ok(args.server_key);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--server-key-file {}: {e}", path.display()))?;
    let key = ringwire_shard::session::PublicKey::from_base64(&text).map_err(|e| {
        format!(
            "--server-key-file {}: not a public key (one line of base64, as `ringwire pubkey` prints): {e}",
            path.display()
        )
    })?;
    Ok(Some(key))
}

/// Everything one worker thread needs besides its peer sockets.
struct Plan {
    /// Sessions this worker opens over its sockets (session modes).
    sessions: usize,
    tuning: session::ClientTuning,
    /// New sessions per second at most, this worker.
    handshake_rate: Option<f64>,
    index: usize,
    threads: usize,
    core: usize,
    mode: Mode,
    target: SocketAddr,
    server_key: Option<ringwire_shard::session::PublicKey>,
    plaintext: bool,
    payload_len: usize,
    timing: Window,
    poll: PollMode,
    rate: Option<f64>,
    window: Option<usize>,
    bulk: bool,
    /// Peers this worker sends on (the first ones; `None`: all).
    active: Option<usize>,
    live: Arc<LiveCounters>,
    start_line: Arc<Barrier>,
}

impl Plan {
    /// The worker thread: set up (handshakes in session modes), wait at the
    /// start line with every other worker, then run the loop.
    fn run(self, set: PeerSet) -> std::io::Result<(WorkerStats, Option<HandshakeStats>)> {
        if let Err(e) = affinity::pin_current(self.core) {
            eprintln!("load worker {}: {e}; running unpinned", self.index);
        }
        if self.mode == Mode::RawFanout {
            let setup = raw_fanout::RawFanoutIo::new(set, self.sessions, self.payload_len)
                .and_then(|mut io| io.subscribe_all(HANDSHAKE_STALL).map(|()| io));
            self.start_line.wait();
            return Ok((self.drive(setup?)?, None));
        }
        match self.mode.flavor() {
            None => {
                let io = EchoIo::new(set, self.payload_len, self.bulk);
                self.start_line.wait();
                Ok((self.drive(io)?, None))
            }
            Some(flavor) => {
                if flavor == session::Flavor::Fanout {
                    // Each copy's arrival time in the kernel: when it left the server
                    // (`fanout`).
                    for i in 0..set.len() {
                        if let Err(e) = crate::sys::mmsg::enable_timestamps(set.fd(i)) {
                            self.start_line.wait();
                            return Err(e);
                        }
                    }
                }
                let seed = 0x5E55_0000 + self.index as u64;
                let setup = SessionIo::new(
                    set,
                    self.sessions,
                    self.tuning,
                    self.target,
                    self.server_key,
                    self.plaintext,
                    flavor,
                    self.payload_len,
                    seed,
                    self.bulk,
                )
                .map_err(std::io::Error::other)
                .and_then(|mut io| {
                    let pace = session::handshake::Pace {
                        stall: HANDSHAKE_STALL,
                        rate: self.handshake_rate,
                        progress: self.index == 0,
                    };
                    let hs = session::handshake::run(&mut io, pace)?;
                    if flavor == session::Flavor::Fanout {
                        io.subscribe_all();
                    }
                    // A session that ends from here on (a server restart) is opened again;
                    // in fan-out it subscribes again to the publisher's new relay ID.
                    io.reopen_lost_sessions();
                    Ok((io, hs))
                });
                // Reach the start line even on error, or the others wait forever.
                self.start_line.wait();
                let (io, hs) = setup?;
                Ok((self.drive(io)?, Some(hs)))
            }
        }
    }

    fn drive<T: Transport>(&self, io: T) -> std::io::Result<WorkerStats> {
        let mut w = Worker::new(
            io,
            self.payload_len,
            self.timing,
            self.poll,
            Arc::clone(&self.live),
        )
        .with_active(self.active);
        if matches!(self.mode, Mode::Fanout | Mode::RawFanout) {
            w.stats.fanout = Some(fanout::FanoutStats::default());
        }
        let switches_before = cpu_time::involuntary_switches();
        let mut stats = match (self.rate, self.window) {
            (Some(r), _) => open::run(w, open::Schedule::new(r, self.threads, self.index))?,
            (None, w_slots) => closed::run(w, w_slots.unwrap_or(1))?,
        };
        if let (Some(before), Some(after)) = (switches_before, cpu_time::involuntary_switches()) {
            stats.involuntary_switches = after.saturating_sub(before);
        }
        Ok(stats)
    }
}
