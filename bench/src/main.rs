//! `ringwire-bench`: load generator, baseline servers and micro-benchmarks.
//!
//! Each subcommand is one line in the `subcommands!` list below: a variant
//! name, its clap `Args` type and its `run` function, which returns
//! `Result<(), E>` for any `E: Into<Box<dyn Error + Send + Sync>>`. The
//! ring micro-benchmarks join as
//! `Rings(rings::RingsArgs) => rings::run,` (plus `pub mod rings;` in lib.rs).

use clap::{Parser, Subcommand};
use ringwire_bench::{
    CmdResult, callgrind, compare, connmgr, engine, flood, load, plot, quic, quiet, report, rings,
    scale, server, session_server, soak,
};

/// Declares the `Command` enum and its dispatch from one list, so adding a
/// subcommand is adding one line.
macro_rules! subcommands {
    ($($(#[$doc:meta])* $variant:ident($args:ty) => $run:path),* $(,)?) => {
        #[derive(Subcommand)]
        enum Command {
            $($(#[$doc])* $variant($args),)*
        }

        impl Command {
            fn run(self) -> CmdResult {
                match self {
                    $(Command::$variant(args) => $run(args).map_err(Into::into),)*
                }
            }
        }
    };
}

subcommands! {
    /// Drive a UDP echo server with many peer sockets and report latency.
    Load(load::LoadArgs) => load::run,
    /// Run a baseline UDP echo server (tokio, glommio, recvmmsg/sendmmsg, or the same with
    /// GSO and GRO), or the plain-UDP fan-out floor (mmsg-fanout).
    Server(server::ServerArgs) => server::run,
    /// Run ringwire's session apps (echo, relay) with benchmark settings: session caps,
    /// keepalive, idle timeout, handshake rate.
    SessionServer(session_server::SessionServerArgs) => session_server::run,
    /// Summarise a directory of JSON reports from scripts/bench.sh as a table.
    Compare(compare::CompareArgs) => compare::run,
    /// Cross-core ring micro-benchmarks: ringwire's SPSC ring against rtrb, ArrayQueue and
    /// tokio mpsc; eventfd and MSG_RING wake latency.
    Rings(rings::RingsArgs) => rings::run_cli,
    /// Sample the CPU time of a process's threads (the ringwire binary's shards).
    CpuSample(engine::CpuSampleArgs) => engine::cpu_sample,
    /// The ringwire binary's server report from its log and two CPU samples.
    EngineReport(engine::EngineReportArgs) => engine::engine_report,
    /// Instructions per request from callgrind runs of a server.
    CallgrindReport(callgrind::CallgrindArgs) => callgrind::run,
    /// docs/BENCHMARKS.md from a scripts/bench.sh output directory.
    Report(report::ReportArgs) => report::run,
    /// SVG of p50/p99 latency against offered load (valid open-loop cells) for every server.
    Plot(plot::PlotArgs) => plot::run,
    /// docs/BENCHMARKS-scale.md from a scripts/scale.sh output directory.
    ScaleReport(scale::ScaleArgs) => scale::run,
    /// QUIC load generator on the quinn client: DATAGRAM, stream or handshake echo, closed
    /// loop, optionally rebinding every client's port.
    QuicLoad(quic::QuicLoadArgs) => quic::load,
    /// QUIC baseline: quinn on tokio echoing streams and DATAGRAM frames (one endpoint, or one
    /// per thread on SO_REUSEPORT without steering).
    QuicServer(quic::QuicServerArgs) => quic::serve,
    /// Wait (bounded) until the 1-minute load average is below the quiet limit.
    WaitQuiet(quiet::WaitQuietArgs) => quiet::run,
    /// The session layer's work per loop turn while the connection manager trims 1k, 10k and
    /// 100k sessions (sans-IO).
    TrimTurns(connmgr::TrimArgs) => connmgr::trim,
    /// A session flood from many loopback addresses against a running `ringwire serve`,
    /// sampling its RSS.
    Flood(connmgr::FloodArgs) => connmgr::flood,
    /// Spoofed handshakes: Initiation-shaped datagrams that lack a valid mac1, against a
    /// session server.
    SpoofFlood(flood::FloodArgs) => flood::run,
    /// The client of scripts/soak.sh: session churn, loss and garbage against a session-echo
    /// server, every echo checked.
    Soak(soak::SoakArgs) => soak::run,
}

/// ringwire's load generator and baseline servers.
#[derive(Parser)]
#[command(name = "ringwire-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = cli.command.run() {
        eprintln!("ringwire-bench: error: {e}");
        std::process::exit(1);
    }
}
