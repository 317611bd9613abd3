//! `ringwire-bench server`: baseline UDP echo servers to measure the engine
//! against, and the fan-out floor ([`mmsg_fanout`]).
//!
//! Every kind runs one thread per `--threads`, each pinned to a core and
//! owning its own `SO_REUSEPORT` socket on the same address, and echoes each
//! datagram to its sender (`mmsg-fanout`: relays each publish to the subscribers). At the end each thread reports the datagrams it
//! served and its CPU time (`getrusage(RUSAGE_THREAD)`), so CPU per million
//! requests can be compared across kinds.

pub mod glommio_echo;
pub mod mmsg_echo;
pub mod mmsg_fanout;
pub mod mmsg_gso_echo;
pub mod ready;
pub mod report;
pub mod socket;
pub mod tokio_echo;

use crate::sys::affinity;
use crate::sys::stop::StopFlag;
use clap::{Args, ValueEnum};
use report::{ServerReport, ThreadReport};
use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Which baseline to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// tokio current-thread runtime per thread, `recv_from`/`send_to`.
    Tokio,
    /// glommio 0.9 `LocalExecutor` per core, its `UdpSocket`.
    Glommio,
    /// Blocking `recvmmsg`/`sendmmsg` loop, batch 64: the kernel floor.
    Mmsg,
    /// The same with `UDP_GRO` and `UDP_SEGMENT` (64 buffers of 64 KiB, each coalesced
    /// buffer sent back whole with its segment size): the GSO/GRO floor.
    #[value(name = "mmsg-gso")]
    MmsgGso,
    /// Not an echo: the fan-out floor, a plain-UDP relay of one publisher to its subscribers
    /// (`mmsg_fanout`: copies with `sendmmsg`, `--fanout-batch` per call; `load --mode
    /// raw-fanout`).
    #[value(name = "mmsg-fanout")]
    MmsgFanout,
}

impl Kind {
    /// The kind's name on the command line and in reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tokio => "tokio",
            Kind::Glommio => "glommio",
            Kind::Mmsg => "mmsg",
            Kind::MmsgGso => "mmsg-gso",
            Kind::MmsgFanout => "mmsg-fanout",
        }
    }
}

/// Arguments of `ringwire-bench server`.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Which echo server.
    #[arg(long, value_enum)]
    pub kind: Kind,
    /// Address to serve on; port 0 picks one (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub bind: SocketAddr,
    /// Server threads, each with its own SO_REUSEPORT socket.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: u32,
    /// Cores to pin threads to, comma separated (default: thread i on core i).
    #[arg(long, value_delimiter = ',')]
    pub cores: Option<Vec<usize>>,
    /// Receive buffer per datagram, bytes: longer datagrams are truncated.
    /// Same for every kind (glommio allocates a DMA buffer of this size per
    /// receive that cannot complete at once, so do not inflate it).
    #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u32).range(16..=65536))]
    pub max_datagram: u32,
    /// `mmsg-fanout`: copies per `sendmmsg` (at most 1,024, the kernel's `UIO_MAXIOV`).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub fanout_batch: u32,
    /// Stop after this many seconds (default: run until SIGINT/SIGTERM).
    #[arg(long, value_parser = crate::args::parse_secs)]
    pub duration: Option<f64>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// A server whose threads are running.
pub struct RunningServer {
    kind: Kind,
    addr: SocketAddr,
    stop: StopFlag,
    started: Instant,
    threads: Vec<JoinHandle<std::io::Result<ThreadReport>>>,
}

impl RunningServer {
    /// The address it serves on (with the real port when bound to port 0).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The flag that stops it.
    #[must_use]
    pub fn stop_flag(&self) -> StopFlag {
        self.stop.clone()
    }

    /// Stops the threads and collects their reports.
    pub fn stop_and_join(self) -> Result<ServerReport, Box<dyn std::error::Error + Send + Sync>> {
        self.stop.raise();
        let wall_s = self.started.elapsed().as_secs_f64();
        let mut threads = Vec::with_capacity(self.threads.len());
        for (i, h) in self.threads.into_iter().enumerate() {
            match h.join() {
                Ok(Ok(r)) => threads.push(r),
                Ok(Err(e)) => return Err(format!("{} thread {i}: {e}", self.kind.name()).into()),
                Err(_) => return Err(format!("{} thread {i} panicked", self.kind.name()).into()),
            }
        }
        Ok(ServerReport::new(
            self.kind.name(),
            self.addr,
            wall_s,
            threads,
        ))
    }
}

/// Binds the sockets and starts the server threads; returns once every
/// socket is bound, so the address is ready for traffic.
pub fn start(args: &ServerArgs) -> Result<RunningServer, Box<dyn std::error::Error + Send + Sync>> {
    if args.kind == Kind::Glommio {
        glommio_echo::check_available()?;
    }
    let sockets = socket::bind_reuseport(args.bind, args.threads as usize)?;
    let addr = sockets
        .first()
        .map(socket2::Socket::local_addr)
        .transpose()?
        .and_then(|a| a.as_socket())
        .unwrap_or(args.bind);
    let stop = StopFlag::new();
    let gate = ready::ReadyGate::new();
    let count = sockets.len();
    let mut threads = Vec::with_capacity(count);
    for (index, sock) in sockets.into_iter().enumerate() {
        let core = affinity::core_for(args.cores.as_deref(), index);
        let stop = stop.clone();
        let name = format!("{}-{index}", args.kind.name());
        let max_datagram = args.max_datagram as usize;
        let ready = gate.token().ok_or("server start-up gate closed")?;
        let handle = match args.kind {
            Kind::Mmsg => std::thread::Builder::new()
                .name(name)
                .spawn(move || mmsg_echo::serve(sock, core, max_datagram, &stop, ready))?,
            Kind::MmsgFanout => {
                let batch = args.fanout_batch as usize;
                std::thread::Builder::new().name(name).spawn(move || {
                    mmsg_fanout::serve(sock, core, max_datagram, batch, &stop, ready)
                })?
            }
            Kind::MmsgGso => std::thread::Builder::new()
                .name(name)
                .spawn(move || mmsg_gso_echo::serve(sock, core, &stop, ready))?,
            Kind::Tokio => std::thread::Builder::new()
                .name(name)
                .spawn(move || tokio_echo::serve(sock, core, max_datagram, &stop, ready))?,
            Kind::Glommio => std::thread::Builder::new()
                .name(name)
                .spawn(move || glommio_echo::serve(sock, core, max_datagram, &stop, ready))?,
        };
        threads.push(handle);
    }
    let server = RunningServer {
        kind: args.kind,
        addr,
        stop,
        started: Instant::now(),
        threads,
    };
    if gate.wait(count) {
        Ok(server)
    } else {
        // A thread failed to set up: stop the others and report its error.
        Err(match server.stop_and_join() {
            Err(e) => e,
            Ok(_) => format!("{} server threads did not start in time", args.kind.name()).into(),
        })
    }
}

/// Runs the server until SIGINT/SIGTERM or `--duration`, then prints (and
/// with `--json` writes) what it served and the CPU it used.
pub fn run(args: ServerArgs) -> crate::CmdResult {
    let server = start(&args)?;
    let stop = server.stop_flag();
    stop.raise_on_signals()?;
    let what = if args.kind == Kind::MmsgFanout {
        "fan-out relay"
    } else {
        "echo server"
    };
    println!(
        "{} {what} listening on {}",
        args.kind.name(),
        server.local_addr()
    );
    let deadline = args
        .duration
        .map(|d| Instant::now() + Duration::from_secs_f64(d));
    while !stop.is_raised() && deadline.is_none_or(|d| Instant::now() < d) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let report = server.stop_and_join()?;
    print!("{report}");
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n")
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}
