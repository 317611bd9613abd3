//! `ringwire-bench session-server`: ringwire's session apps on the engine, with the session
//! settings a scale benchmark has to change.
//!
//! `ringwire serve` runs the endpoint with its defaults (65,536 sessions per shard, keepalive
//! every 10 s, 1,000 handshakes/s before cookies), which a million idle sessions from one
//! machine cannot meet: the benchmarks start the same apps through the library instead, with
//! every change from the defaults on the command line and in the first lines of output.
//! Prints `... listening on ADDR` and `session public key KEY` (as `ringwire serve` does), runs
//! until SIGINT or SIGTERM, then stops the shards and prints each one's final counters.

use clap::{Args, ValueEnum};
use ringwire::apps::{Relay, SessionEcho};
use ringwire::session::{
    EndpointConfig, Keypair, Placement, SessionApp, SessionClock, SessionHost, random_key,
};
use ringwire::{Engine, EngineConfig, EngineEvent, EngineHandle, Offload};
use std::net::SocketAddr;
use std::time::Duration;

/// Which app the sessions run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SessionAppKind {
    /// `session-echo`: every message back on its session.
    Echo,
    /// `relay`: Forward, and fan-out (Subscribe / Publish).
    Relay,
}

/// Arguments of `ringwire-bench session-server`.
#[derive(Debug, Clone, Args)]
pub struct SessionServerArgs {
    /// The app.
    #[arg(long, value_enum, default_value = "echo")]
    pub app: SessionAppKind,
    /// Address to bind (port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub bind: SocketAddr,
    /// Cores, one shard per entry, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub cores: Vec<usize>,
    /// Sessions per shard at most (the endpoint's `max_sessions`; its initiation replay table
    /// is sized to at least this).
    #[arg(long, default_value_t = 65_536)]
    pub max_sessions: usize,
    /// Keepalive interval in ms (0: off).
    #[arg(long, default_value_t = 10_000)]
    pub keepalive_ms: u64,
    /// Idle timeout in ms.
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout_ms: u64,
    /// Rekey a session's send key after this many ms (the endpoint's `rekey_after`; default
    /// its 120 s). A scale run whose handshakes alone take minutes sets it above the run's
    /// length, or its measured window rekeys every old session and measures that.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub rekey_after_ms: Option<u64>,
    /// Handshakes per second per shard before Initiations are answered with cookies.
    #[arg(long, default_value_t = 1000)]
    pub handshakes_per_second: u32,
    /// Send slots per shard (`shard.send_slots`).
    #[arg(long)]
    pub send_slots: Option<usize>,
    /// Turn UDP GSO and GRO off (`shard.gso = shard.gro = "off"`): every reply is its own
    /// datagram on the wire, even when one turn answers one peer several times.
    #[arg(long)]
    pub no_offloads: bool,
}

/// Runs the server until a stop signal.
pub fn run(args: SessionServerArgs) -> crate::CmdResult {
    let key = random_key()?;
    let identity = Keypair::generate()?;
    let clock = SessionClock::start();
    let mut config = EngineConfig::unpinned(args.bind, args.cores.len());
    config.cores = args.cores.iter().map(|&c| Some(c)).collect();
    config.steering = true;
    if let Some(slots) = args.send_slots {
        config.shard.send_slots = slots;
    }
    if args.no_offloads {
        config.shard.gso = Offload::Off;
        config.shard.gro = Offload::Off;
    }
    let max_datagram = config.shard.max_datagram;
    let mut endpoint = EndpointConfig::new(key, identity.clone());
    endpoint.max_sessions = args.max_sessions;
    endpoint.keepalive_interval =
        (args.keepalive_ms > 0).then(|| Duration::from_millis(args.keepalive_ms));
    endpoint.idle_timeout = Duration::from_millis(args.idle_timeout_ms);
    endpoint.handshakes_per_second = args.handshakes_per_second;
    if let Some(ms) = args.rekey_after_ms {
        endpoint.rekey_after = Duration::from_millis(ms);
    }
    let engine = match args.app {
        SessionAppKind::Echo => {
            start(&config, endpoint, clock, max_datagram, SessionEcho::default)?
        }
        SessionAppKind::Relay => start(&config, endpoint, clock, max_datagram, Relay::default)?,
    };
    eprintln!(
        "ringwire-bench session-server ({:?}, {} shards, max_sessions {}, keepalive {} ms, \
         idle timeout {} ms, {} handshakes/s, {} send slots) listening on {}",
        args.app,
        args.cores.len(),
        args.max_sessions,
        args.keepalive_ms,
        args.idle_timeout_ms,
        args.handshakes_per_second,
        config.shard.send_slots,
        engine.local_addr()
    );
    eprintln!("ringwire: session public key {}", identity.public);
    serve(engine)
}

fn start<A, F>(
    config: &EngineConfig,
    endpoint: EndpointConfig,
    clock: SessionClock,
    max_datagram: usize,
    app: F,
) -> Result<EngineHandle, Box<dyn std::error::Error + Send + Sync>>
where
    A: SessionApp + 'static,
    F: Fn() -> A + Send + Sync + 'static,
{
    Ok(Engine::try_start(config, move |info| {
        let place = Placement::new(clock, info.index, info.shards, max_datagram);
        SessionHost::new(endpoint.clone(), place, random_key()?, app())
            .map_err(std::io::Error::other)
    })?)
}

/// Waits for a stop signal (or a shard stopping on its own), stops and prints the counters.
fn serve(mut engine: EngineHandle) -> crate::CmdResult {
    let notifier = engine.notifier();
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if signals.forever().next().is_some() {
                let _ = notifier.notify(0);
            }
        })?;
    let failed = match engine.wait_event() {
        EngineEvent::ShardStopped {
            shard,
            outcome: Err(e),
        } => Some(format!("shard {shard} stopped: {e}")),
        _ => None,
    };
    let report = engine.shutdown(Duration::from_secs(5))?;
    for (i, exit) in report.shards.iter().enumerate() {
        let app: Vec<String> = exit.app.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("final shard {i}: {} {}", exit.stats, app.join(" "));
    }
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
