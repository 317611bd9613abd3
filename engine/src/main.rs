//! The `ringwire` binary: `ringwire serve --config FILE [overrides]`.
//!
//! Exit status: 0 after a clean shutdown, 2 for a bad flag or config (the message names the
//! key and what is allowed), 1 when the engine fails to start or to stop.
#![forbid(unsafe_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use ringwire::apps::{AppKind, Echo, Relay, SessionEcho, SockperfServer};
use ringwire::config::{Config, Cores, Resolved, Shards};
use ringwire::{
    Engine, EngineConfig, EngineHandle, EngineReport, Handler, ReportRequest, ShardInfo,
};
use ringwire_shard::session::EndpointConfig;
use ringwire_shard::session::SessionApp;
use ringwire_shard::session::{SessionHost, random_key};
use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;

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
    /// Run the engine with a built-in app until SIGINT or SIGTERM (SIGUSR1 prints each
    /// shard's report, e.g. every session's flight recorder).
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
    app: Option<String>,
    /// Kernel steering of session datagrams to their shard: auto, on or off.
    #[arg(long)]
    steering: Option<String>,
    /// Print every shard's counters every SECS seconds (0: only at shutdown).
    #[arg(long, value_name = "SECS")]
    stats_interval: Option<u64>,
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
        config.app.clone_from(app);
    }
    if let Some(steering) = &args.steering {
        config.steering.clone_from(steering);
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
    let result = match resolved.app {
        AppKind::Echo => run(&resolved, |_| Ok::<_, String>(Echo)),
        AppKind::Sockperf => run(&resolved, |_| Ok::<_, String>(SockperfServer::default())),
        AppKind::Relay => run_sessions(&resolved, Relay::default),
        AppKind::SessionEcho => run_sessions(&resolved, SessionEcho::default),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ringwire: {message}");
            ExitCode::from(1)
        }
    }
}

/// Runs a session app: one cookie key for all shards, a connection-ID seed per shard.
fn run_sessions<A, F>(resolved: &Resolved, app: F) -> Result<(), String>
where
    A: SessionApp + 'static,
    F: Fn() -> A + Send + Sync + 'static,
{
    let key =
        random_key().map_err(|e| format!("cannot read /dev/urandom for the cookie key: {e}"))?;
    run(resolved, move |info| {
        let seed = random_key().map_err(|e| format!("random seed: {e}"))?;
        SessionHost::new(
            EndpointConfig::new(key),
            info.index,
            info.shards,
            seed,
            app(),
        )
        .map_err(|e| e.to_string())
    })
}

fn run<F, H>(resolved: &Resolved, factory: F) -> Result<(), String>
where
    F: Fn(ShardInfo) -> Result<H, String> + Send + Sync + 'static,
    H: Handler + 'static,
{
    let config = EngineConfig {
        bind: resolved.bind,
        cores: resolved.cores.clone(),
        shard: resolved.shard.clone(),
        mesh: Default::default(),
        steering: resolved.steering,
        start_timeout: Duration::from_secs(10),
    };
    let mut signals =
        Signals::new([SIGINT, SIGTERM, SIGUSR1]).map_err(|e| format!("signals: {e}"))?;
    let mut engine = Engine::try_start(&config, factory).map_err(|e| e.to_string())?;
    let cores: Vec<String> = resolved
        .cores
        .iter()
        .map(|c| c.map_or("-".to_string(), |c| c.to_string()))
        .collect();
    println!(
        "ringwire: listening on {} app={} shards={} cores=[{}] io_uring={} kernel={}",
        engine.local_addr(),
        resolved.app,
        engine.shards(),
        cores.join(","),
        engine.probe_report().mode,
        engine.probe_report().kernel,
    );
    let _ = std::io::stdout().flush();

    let (tx, rx) = mpsc::channel();
    let signal_thread = signals.handle();
    std::thread::spawn(move || {
        for sig in signals.forever() {
            if tx.send(sig).is_err() {
                break;
            }
        }
    });
    let tick = resolved.stats_interval.unwrap_or(Duration::from_secs(3600));
    loop {
        match rx.recv_timeout(tick) {
            Ok(SIGUSR1) => print_reports(&mut engine),
            Ok(sig) => {
                eprintln!("ringwire: signal {sig}, stopping");
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if resolved.stats_interval.is_some() {
                    print_stats(&engine);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if engine.any_stopped(Duration::ZERO) {
            eprintln!("ringwire: a shard stopped on its own; stopping the rest");
            break;
        }
    }
    signal_thread.close();
    let report = engine
        .shutdown(resolved.shutdown_timeout)
        .map_err(|e| e.to_string())?;
    print_report(&report);
    Ok(())
}

fn print_stats(engine: &EngineHandle) {
    for s in engine.stats() {
        println!("stats {s}");
    }
    let _ = std::io::stdout().flush();
}

/// Sessions per shard that SIGUSR1 prints after each shard's summary.
const SIGUSR1_SESSIONS: usize = 16;

/// SIGUSR1: every shard's handler report, bounded: a summary and the first
/// [`SIGUSR1_SESSIONS`] sessions' flight recorders (by connection ID).
fn print_reports(engine: &mut EngineHandle) {
    let request = ReportRequest::first(SIGUSR1_SESSIONS);
    for (shard, report) in engine
        .reports(request, Duration::from_secs(2))
        .iter()
        .enumerate()
    {
        match report {
            Ok(report) => {
                for line in report.text.lines() {
                    println!("report shard {shard}: {line}");
                }
                if let Some(next) = report.next {
                    println!("report shard {shard}: more after {next:#018x}");
                }
            }
            Err(e) => println!("report shard {shard}: no report: {e}"),
        }
    }
    let _ = std::io::stdout().flush();
}

fn print_report(report: &EngineReport) {
    for s in &report.shards {
        println!(
            "final {}{}",
            s.stats,
            if s.drained { "" } else { " (not drained)" }
        );
    }
    for s in report.shards.iter().filter(|s| !s.app.is_empty()) {
        let fields: Vec<String> = s.app.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("app shard {}: {}", s.stats.shard, fields.join(" "));
    }
    let total = report.total().to_string();
    let fields = total
        .split_once(':')
        .map_or(total.as_str(), |(_, rest)| rest);
    println!("total{fields}");
    let _ = std::io::stdout().flush();
}
