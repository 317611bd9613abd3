//! The `ringwire` binary.
//!
//! - `ringwire serve --config FILE [overrides]`: run the engine with a built-in app.
//! - `ringwire config check FILE`, `ringwire config default`: check a config file (every error
//!   at once), print the annotated default.
//! - `ringwire stats --addr HOST:PORT [--top N] [--by drops|queue|rtt|age]`: the live view
//!   from a running engine's metrics endpoint.
//! - `ringwire keygen --out FILE [--force] [--psk]`: a new private key (public key printed) or
//!   network pre-shared key, written mode 0600; `ringwire pubkey FILE`: a key file's public key.
//!
//! Exit status:
//! - 0: `serve` stopped cleanly (drained on SIGTERM/SIGINT, or stopped on a second signal or
//!   SIGQUIT) and printed its final counters; `config check` found no error; `stats` printed.
//! - 1: the engine failed to start or to stop (or `keygen` wrote nothing), or a shard stopped on its own (the binary hears
//!   of it at once, prints which shard and why, and stops the others: a dead shard's socket
//!   leaves the `SO_REUSEPORT` group and the kernel would spread its peers, and steered
//!   sessions, over the wrong shards); `stats` could not read the endpoint.
//! - 2: a bad flag or config (every error is printed, naming the key and what is allowed), a
//!   key file that cannot be used (missing, readable by group or others, not a key), or the
//!   port is already held by another process (without `--join-existing`).
#![forbid(unsafe_code)]

mod cli;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use ringwire::FactoryError;
use ringwire::Rank;
use ringwire::apps::{AppKind, Echo, QuicEcho, Relay, SessionEcho, SockperfServer};
use ringwire::config::{Config, Cores, Resolved, Shards, Steering};
use ringwire::quic::QuicHost;
use ringwire::security::{Identity, LoadedSecurity, SecurityMode};
use ringwire::session::{
    EndpointConfig, Placement, SessionApp, SessionClock, SessionHost, random_key,
};

use cli::logging::Logging;
use cli::output::note;
use cli::reload::Reloader;
use cli::run::{Hooks, Outcome, run};

#[derive(Parser)]
#[command(
    name = "ringwire",
    version,
    about = "A thread-per-core io_uring UDP engine",
    after_help = "Exit status: 0 clean stop; 1 engine or shard failure; 2 bad flag or config, \
                  or the port is held by another process. RUST_LOG sets the log filter \
                  (overrides the config's `log`)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine with a built-in app. SIGTERM/SIGINT drain (a second one stops at once),
    /// SIGQUIT stops at once, SIGHUP reloads the config file, SIGUSR1 prints a summary,
    /// SIGUSR2 the counters.
    Serve(ServeArgs),
    /// Check a config file, or print the annotated default.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Show a running engine's per-shard rates and worst sessions, from its metrics endpoint
    /// (`metrics_addr`).
    Stats(StatsCli),
    /// Write a new static private key (for `security.key_file`) and print its public key; or,
    /// with --psk, a network pre-shared key (for `security.psk_file`). The file is created
    /// mode 0600.
    Keygen {
        /// Where to write the key.
        #[arg(long)]
        out: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
        /// Write a network pre-shared key instead of a private key.
        #[arg(long)]
        psk: bool,
    },
    /// Print the public key of a private key file (to give to clients and `allowed_peers`).
    Pubkey {
        /// The private key file (`security.key_file`).
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Report every error in FILE (exit status 2) or what it resolves to (0), with warnings.
    Check {
        /// The TOML file.
        file: PathBuf,
    },
    /// Print the annotated default config (ringwire.example.toml).
    Default,
}

#[derive(clap::Args)]
struct StatsCli {
    /// The engine's metrics address (`metrics_addr`), e.g. 127.0.0.1:9464.
    #[arg(long)]
    addr: SocketAddr,
    /// How many sessions to show.
    #[arg(long, default_value_t = 20)]
    top: usize,
    /// What makes a session worst: drops, queue, rtt or age (since last heard from).
    #[arg(long, default_value = "drops")]
    by: Rank,
    /// Seconds between the two reads the rates come from.
    #[arg(long, default_value_t = 1.0)]
    interval: f64,
}

#[derive(clap::Args, Clone)]
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
    /// Do not pin shard threads to cores (and allow more shards than cores).
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
    /// Serve Prometheus metrics and the live view on this address.
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<String>,
    /// Join the SO_REUSEPORT group of sockets another process holds on the port, instead of
    /// refusing to start (for a hand-over between two instances).
    #[arg(long)]
    join_existing: bool,
    /// Test hook, only in builds with the `test-hooks` feature: the handler of the shard that
    /// receives a datagram equal to PAYLOAD panics.
    #[cfg(feature = "test-hooks")]
    #[arg(long, hide = true, value_name = "PAYLOAD")]
    test_panic_on: Option<String>,
}

fn main() -> ExitCode {
    let logging = Logging::init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args, logging),
        Command::Config(ConfigCommand::Check { file }) => cli::config_cmd::check(&file),
        Command::Config(ConfigCommand::Default) => cli::config_cmd::default(),
        Command::Keygen { out, force, psk } => cli::keygen::keygen(&out, force, psk),
        Command::Pubkey { file } => cli::keygen::pubkey(&file),
        Command::Stats(s) => {
            if !(s.interval.is_finite() && s.interval > 0.0 && s.interval <= 3600.0) {
                note!("ringwire stats: --interval must be between 0 and 3600 seconds");
                return ExitCode::from(2);
            }
            cli::stats::run(&cli::stats::StatsArgs {
                addr: s.addr,
                top: s.top.clamp(1, 1000),
                by: s.by,
                interval: Duration::from_secs_f64(s.interval),
            })
        }
    }
}

/// Reads the config file (every key error), applies the flags, and checks every value.
fn load(args: &ServeArgs) -> Result<Resolved, Vec<String>> {
    let mut errors = Vec::new();
    let mut config = match &args.config {
        None => Config::default(),
        Some(path) => {
            let shown = path.display();
            let text = std::fs::read_to_string(path)
                .map_err(|e| vec![format!("cannot read config {shown}: {e}")])?;
            match Config::parse_all(&text) {
                Ok(c) => c,
                Err(e) => {
                    errors.extend(
                        e.errors
                            .iter()
                            .map(|e| format!("invalid config {shown}: {e}")),
                    );
                    match e.partial {
                        Some(partial) => *partial,
                        None => return Err(errors),
                    }
                }
            }
        }
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
    if let Some(addr) = &args.metrics_addr {
        config.metrics_addr = Some(addr.clone());
    }
    match config.resolve_all() {
        Ok(r) if errors.is_empty() => Ok(r),
        Ok(_) => Err(errors),
        Err(more) => {
            errors.extend(more.iter().map(ToString::to_string));
            Err(errors)
        }
    }
}

fn serve(args: ServeArgs, logging: Logging) -> ExitCode {
    let resolved = match load(&args) {
        Ok(r) => r,
        Err(errors) => {
            for message in errors {
                note!("ringwire: {message}");
            }
            return ExitCode::from(2);
        }
    };
    let reload_args = args.clone();
    let reloader = Reloader::new(
        Box::new(move || load(&reload_args)),
        args.config.is_some(),
        logging,
    );
    reloader.apply_log(&resolved.log);
    for w in &resolved.warnings {
        tracing::warn!("config: {w}");
    }
    let hooks = Hooks {
        #[cfg(feature = "test-hooks")]
        panic_on: args.test_panic_on.map(String::into_bytes),
    };
    let join = args.join_existing;
    let outcome = match resolved.app {
        AppKind::Echo => run(&resolved, &reloader, join, &hooks, |_| {
            Ok::<_, FactoryError>(Echo)
        }),
        AppKind::Sockperf => run(&resolved, &reloader, join, &hooks, |_| {
            Ok::<_, FactoryError>(SockperfServer::default())
        }),
        AppKind::Relay => run_sessions(&resolved, &reloader, join, &hooks, Relay::default),
        AppKind::SessionEcho => {
            run_sessions(&resolved, &reloader, join, &hooks, SessionEcho::default)
        }
        AppKind::QuicEcho => run_quic(&resolved, &reloader, join, &hooks),
        other => {
            note!("ringwire: app {other} is not built into this binary");
            return ExitCode::from(2);
        }
    };
    match outcome {
        Outcome::Clean => ExitCode::SUCCESS,
        Outcome::Refused => ExitCode::from(2),
        Outcome::Failed => ExitCode::from(1),
    }
}

/// Runs `quic-echo`: one server configuration (certificate, key, ALPN, limits) shared by every
/// shard's QUIC endpoint.
fn run_quic(
    resolved: &Resolved,
    reloader: &Reloader,
    join_existing: bool,
    hooks: &Hooks,
) -> Outcome {
    let tls = match resolved.quic.tls() {
        Ok(tls) => tls,
        Err(e) => {
            note!("ringwire: {e}");
            return Outcome::Refused;
        }
    };
    if tls.is_self_signed() {
        note!(
            "ringwire: [quic] has no cert/key: serving a self-signed certificate for localhost \
             and 127.0.0.1, generated now (clients must be told to trust it)"
        );
    }
    let options = resolved.quic.options();
    let server = match options.server_config(&tls) {
        Ok(s) => s,
        Err(e) => {
            note!("ringwire: {e}");
            return Outcome::Refused;
        }
    };
    run(resolved, reloader, join_existing, hooks, move |info| {
        QuicHost::new(
            info.index,
            info.shards,
            server.clone(),
            &options,
            QuicEcho::default(),
        )
        .map_err(FactoryError::from)
    })
}

/// Runs a session app: one cookie key for all shards, a connection-ID seed per shard.
fn run_sessions<A, F>(
    resolved: &Resolved,
    reloader: &Reloader,
    join_existing: bool,
    hooks: &Hooks,
    app: F,
) -> Outcome
where
    A: SessionApp + 'static,
    F: Fn() -> A + Send + Sync + 'static,
{
    let key = match random_key() {
        Ok(key) => key,
        Err(e) => {
            note!("ringwire: cannot get random bytes for the cookie key: {e}");
            return Outcome::Failed;
        }
    };
    // One static identity for every shard, from `security.key_file` (or generated).
    let Some(loaded) = load_security(resolved) else {
        return Outcome::Refused;
    };
    let security = loaded.security;
    let handshakes_per_second = resolved.security.handshakes_per_second;
    // One clock for every shard: a cookie issued on one is checked on another.
    let clock = SessionClock::start();
    let max_datagram = resolved.shard.max_datagram;
    let sessions = resolved.sessions.clone();
    run(
        resolved,
        reloader,
        join_existing,
        hooks,
        move |info| -> Result<_, FactoryError> {
            let seed = random_key()?;
            let place = Placement::new(clock, info.index, info.shards, max_datagram);
            let mut config = EndpointConfig::with_security(key, security.clone());
            config.handshakes_per_second = handshakes_per_second;
            config.admission = Some(sessions.admission.clone());
            config.manager = Some(sessions.manager.clone());
            Ok(SessionHost::new(config, place, seed, app())?)
        },
    )
}

/// Reads the `[security]` key files and says, loudly, what protects the sessions: plaintext
/// and a generated identity are warnings on standard error and in the log. `None` (after
/// printing every problem) if a key file cannot be used.
fn load_security(resolved: &Resolved) -> Option<LoadedSecurity> {
    let loaded = match resolved.security.load() {
        Ok(l) => l,
        Err(errors) => {
            for e in errors {
                note!("ringwire: {e}");
            }
            return None;
        }
    };
    match &loaded.identity {
        Identity::None => {
            let line = "security.mode = \"none\": sessions are NEITHER AUTHENTICATED NOR \
                        ENCRYPTED; anyone on the path can read them and inject into them. Use it \
                        only on a trusted path or to measure the cost of cryptography.";
            note!("ringwire: WARNING: {line}");
            tracing::warn!("{line}");
        }
        Identity::Generated => {
            let line = "no security.key_file: this process made a throwaway identity, which \
                        changes at every start (clients given it fail after a restart); write \
                        one with `ringwire keygen --out FILE` and name it in [security] key_file";
            note!("ringwire: WARNING: {line}");
            tracing::warn!("{line}");
        }
        Identity::KeyFile(path) => {
            tracing::info!(key_file = %path.display(), "session identity read");
        }
        _ => {}
    }
    debug_assert!(resolved.security.mode == SecurityMode::None || loaded.public.is_some());
    if let Some(public) = loaded.public {
        note!("ringwire: session public key {public}");
    }
    if let Some(allowed) = &resolved.security.allowed_peers {
        note!(
            "ringwire: sessions admitted only from the {} keys of security.allowed_peers",
            allowed.len()
        );
    }
    Some(loaded)
}
