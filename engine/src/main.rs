//! The `ringwire` binary: `ringwire serve --config FILE [overrides]`.
//!
//! Exit status: 0 after a clean shutdown on SIGINT or SIGTERM; 2 for a bad flag or config (the
//! message names the key and what is allowed); 1 when the engine fails to start or to stop,
//! or when a shard stops on its own: the binary hears of it at once, prints which shard and
//! why, and stops the others (a dead shard's socket leaves the `SO_REUSEPORT` group, and the
//! kernel would spread its peers, and steered sessions, over the wrong shards).
#![forbid(unsafe_code)]

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ringwire::FactoryError;
use ringwire::apps::{AppKind, Echo, Relay, SessionEcho, SockperfServer};
use ringwire::config::{Config, Cores, Resolved, Shards, Steering};
use ringwire::session::{
    EndpointConfig, Keypair, Placement, SessionApp, SessionClock, SessionHost, random_key,
};

use cli::run::{Hooks, run};

#[derive(Parser)]
#[command(
    name = "ringwire",
    version,
    about = "A thread-per-core io_uring UDP engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine with a built-in app until SIGINT or SIGTERM, or until a shard fails
    /// (SIGUSR1 prints each shard's report: a summary and its first sessions' flight
    /// recorders).
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML config file (see ringwire.example.toml); flags below override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to bind, e.g. 127.0.0.1:4500 (port 0 picks a free port).
    #[arg(long)]
    bind: Option<String>,
    /// Number of shards, or "auto" (one per core).
    #[arg(long)]
    shards: Option<Shards>,
    /// Cores to pin to: "auto" (the affinity mask) or a list like 0,1.
    #[arg(long)]
    cores: Option<Cores>,
    /// Do not pin shard threads to cores.
    #[arg(long)]
    no_pin: bool,
    /// Built-in app: echo, sockperf, relay or session-echo.
    #[arg(long)]
    app: Option<AppKind>,
    /// Kernel steering of session datagrams to their shard: auto, on or off.
    #[arg(long)]
    steering: Option<Steering>,
    /// Print every shard's counters every SECS seconds (0: only at shutdown).
    #[arg(long, value_name = "SECS")]
    stats_interval: Option<u64>,
    /// Test hook, only in builds with the `test-hooks` feature: the handler of the shard that
    /// receives a datagram equal to PAYLOAD panics.
    #[cfg(feature = "test-hooks")]
    #[arg(long, hide = true, value_name = "PAYLOAD")]
    test_panic_on: Option<String>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
    }
}

fn load(args: &ServeArgs) -> Result<Resolved, String> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    if let Some(bind) = &args.bind {
        config.bind.clone_from(bind);
    }
    if let Some(shards) = args.shards {
        config.shards = shards;
    }
    if let Some(cores) = &args.cores {
        config.cores = cores.clone();
    }
    if args.no_pin {
        config.pin = false;
    }
    if let Some(app) = &args.app {
        config.app = *app;
    }
    if let Some(steering) = &args.steering {
        config.steering = *steering;
    }
    if let Some(secs) = args.stats_interval {
        config.stats_interval_secs = secs;
    }
    config.resolve().map_err(|e| e.to_string())
}

fn serve(args: ServeArgs) -> ExitCode {
    let resolved = match load(&args) {
        Ok(r) => r,
        Err(message) => {
            eprintln!("ringwire: {message}");
            return ExitCode::from(2);
        }
    };
    let hooks = Hooks {
        #[cfg(feature = "test-hooks")]
        panic_on: args.test_panic_on.map(String::into_bytes),
    };
    let ok = match resolved.app {
        AppKind::Echo => run(&resolved, &hooks, |_| Ok::<_, FactoryError>(Echo)),
        AppKind::Sockperf => run(&resolved, &hooks, |_| {
            Ok::<_, FactoryError>(SockperfServer::default())
        }),
        AppKind::Relay => run_sessions(&resolved, &hooks, Relay::default),
        AppKind::SessionEcho => run_sessions(&resolved, &hooks, SessionEcho::default),
        other => {
            eprintln!("ringwire: app {other} is not built into this binary");
            return ExitCode::from(2);
        }
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Runs a session app: one cookie key for all shards, a connection-ID seed per shard.
fn run_sessions<A, F>(resolved: &Resolved, hooks: &Hooks, app: F) -> bool
where
    A: SessionApp + 'static,
    F: Fn() -> A + Send + Sync + 'static,
{
    let key = match random_key() {
        Ok(key) => key,
        Err(e) => {
            eprintln!("ringwire: cannot get random bytes for the cookie key: {e}");
            return false;
        }
    };
    // One static identity for every shard. Until key files exist (`[security]`, `ringwire
    // keygen`), a fresh one per process, announced so that clients can be given it.
    let identity = match Keypair::generate() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("ringwire: cannot get random bytes for the session identity: {e}");
            return false;
        }
    };
    eprintln!("ringwire: session public key {}", identity.public);
    // One clock for every shard: a cookie issued on one is checked on another.
    let clock = SessionClock::start();
    let max_datagram = resolved.shard.max_datagram;
    run(resolved, hooks, move |info| -> Result<_, FactoryError> {
        let seed = random_key()?;
        let place = Placement::new(clock, info.index, info.shards, max_datagram);
        Ok(SessionHost::new(
            EndpointConfig::new(key, identity.clone()),
            place,
            seed,
            app(),
        )?)
    })
}
