//! Running the engine until a signal or a shard's exit. The main thread blocks on the engine's
//! one event channel, which the shard threads feed with their exits and the signal thread with
//! signals: a shard that dies is noticed at once, not at the next stats tick.
//!
//! SIGTERM or SIGINT drains: the shards stop admitting sessions, close every session with
//! `ShuttingDown`, send what is queued and stop on their own, all by `drain_timeout`; then the
//! final counters are printed and the exit status is 0. A second SIGTERM, SIGINT or a SIGQUIT
//! stops at once (final counters still printed).
//!
//! A shard that stops on its own (an error, or its handler panicked) is named at once; the
//! other shards then drain the same way, by `drain_timeout`, their final counters are printed
//! and the exit status is 1 (docs/OPERATIONS.md).
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use ringwire::config::Resolved;
use ringwire::metrics::MetricsServer;
use ringwire::quic::SteeringProgram;
use ringwire::{
    Engine, EngineConfig, EngineError, EngineEvent, EngineHandle, FactoryError, Handler, ShardInfo,
};
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::Signals;

use super::output::{Rates, note, out, print_report, print_summary};
use super::reload::Reloader;
use super::signals::{self, HANDLED, SignalThread};

/// Test hooks from the command line (none without the `test-hooks` feature).
pub struct Hooks {
    /// Panic on a datagram equal to this.
    #[cfg(feature = "test-hooks")]
    pub panic_on: Option<Vec<u8>>,
}

/// How serving went.
pub enum Outcome {
    /// Stopped (drained or on request) and the final counters were printed.
    Clean,
    /// The engine could not start because of how it was asked to (the port is held) or what
    /// the host allows (io_uring off or too old): exit 2, as a retry would fail the same way.
    Refused,
    /// The engine failed to start or stop, or a shard stopped on its own: exit 1.
    Failed,
}

/// Why serving ended.
enum End {
    /// A stop signal, or every shard stopped (after a drain, or on request).
    Stopped,
    /// This shard stopped on its own (already reported on stderr).
    ShardFailed(usize),
}

/// What the loop is doing.
enum Phase {
    Serving,
    /// Draining until this deadline.
    Draining(Instant),
}

/// Starts the engine, serves until a stop signal or a shard's exit, then stops every shard and
/// prints the final report.
pub fn run<F, H>(
    resolved: &Resolved,
    reloader: &Reloader,
    join_existing: bool,
    hooks: &Hooks,
    factory: F,
) -> Outcome
where
    F: Fn(ShardInfo) -> Result<H, FactoryError> + Send + Sync + 'static,
    H: Handler + 'static,
{
    #[cfg(feature = "test-hooks")]
    let factory = super::test_hooks::wrap(factory, hooks.panic_on.clone());
    #[cfg(not(feature = "test-hooks"))]
    let _ = hooks;
    let mut config = EngineConfig::unpinned(resolved.bind, resolved.shards);
    config.cores.clone_from(&resolved.cores);
    config.shard = resolved.shard.clone();
    config.steering = resolved.steering;
    if resolved.app.uses_quic() {
        config.steering_program = SteeringProgram::Quic;
        config.mtu_probe = resolved.quic.mtu_discovery;
    }
    config.stop_timeout = resolved.shutdown_timeout;
    config.join_existing = join_existing;
    // Caught from here on: a signal during start-up waits for the signal thread.
    let signals = match Signals::new(HANDLED) {
        Ok(s) => s,
        Err(e) => {
            note!("ringwire: cannot catch signals: {e}");
            return Outcome::Failed;
        }
    };
    let mut engine = match Engine::try_start(&config, factory) {
        Ok(engine) => engine,
        Err(e @ EngineError::PortInUse { .. }) => {
            note!("ringwire: {e}");
            return Outcome::Refused;
        }
        // io_uring off or too old: starting again unchanged fails the same way (D52).
        Err(e) if e.setup_error().is_some_and(|s| s.needs_host_change()) => {
            note!("ringwire: {e}");
            return Outcome::Refused;
        }
        Err(e) => {
            note!("ringwire: {e}");
            return Outcome::Failed;
        }
    };
    let metrics = match resolved.metrics_addr {
        None => None,
        Some(addr) => match MetricsServer::start(addr, engine.observer()) {
            Ok(m) => Some(m),
            Err(e) => {
                note!("ringwire: {e}");
                return Outcome::Failed;
            }
        },
    };
    print_listening(&engine, resolved, metrics.as_ref());
    // On an early return the engine handle's drop stops the shards.
    let signal_thread =
        match SignalThread::start(signals, engine.notifier(), engine.shutdown_handle()) {
            Ok(t) => t,
            Err(e) => {
                note!("ringwire: cannot spawn the signal thread: {e}");
                return Outcome::Failed;
            }
        };
    let mut settings = Settings::from(resolved);
    let end = serve_until_stopped(&mut engine, &mut settings, reloader, resolved);
    signal_thread.stop();
    if let Some(m) = metrics {
        m.stop();
    }
    let failed = match end {
        End::Stopped => None,
        End::ShardFailed(shard) => Some(shard),
    };
    let stopped = if failed.is_some() {
        // The other shards drain (their sessions are told ShuttingDown), bounded like a
        // SIGTERM's drain; the failed shard's sessions went with it.
        engine.drain_survivors(settings.drain_timeout)
    } else {
        engine.shutdown(settings.shutdown_timeout)
    };
    match stopped {
        Ok(report) => {
            print_report(&report);
            let late: Vec<usize> = report
                .shards
                .iter()
                .filter(|s| s.graceful == Some(false))
                .map(|s| s.stats.shard)
                .collect();
            if !late.is_empty() {
                note!(
                    "ringwire: shards {late:?} reached the drain deadline before every goodbye \
                     was sent (raise drain_timeout_ms?)"
                );
            } else if let Some(shard) = failed {
                note!(
                    "ringwire: the shards other than shard {shard} drained (sessions closed with \
                     ShuttingDown, sends flushed); exiting with status 1"
                );
            } else if report.drained_gracefully() {
                note!(
                    "ringwire: drained: every shard said its goodbyes (sessions closed with \
                     ShuttingDown) and flushed its sends before the deadline"
                );
            }
            if failed.is_none() {
                Outcome::Clean
            } else {
                Outcome::Failed
            }
        }
        Err(e) => {
            // The failed shard's error was printed when it happened.
            if failed.is_none() || e.shard() != failed {
                note!("ringwire: {e}");
            }
            Outcome::Failed
        }
    }
}

/// The settings SIGHUP may change while serving.
pub struct Settings {
    pub stats_interval: Option<Duration>,
    pub shutdown_timeout: Duration,
    pub drain_timeout: Duration,
}

impl From<&Resolved> for Settings {
    fn from(r: &Resolved) -> Self {
        Self {
            stats_interval: r.stats_interval,
            shutdown_timeout: r.shutdown_timeout,
            drain_timeout: r.drain_timeout,
        }
    }
}

fn print_listening(engine: &EngineHandle, resolved: &Resolved, metrics: Option<&MetricsServer>) {
    let cores: Vec<String> = resolved
        .cores
        .iter()
        .map(|c| c.map_or("-".to_string(), |c| c.to_string()))
        .collect();
    let buffers = engine.socket_buffers();
    out!(
        "ringwire: listening on {} app={} shards={} cores=[{}] io_uring={} kernel={} \
         rcvbuf={} sndbuf={} metrics={}",
        engine.local_addr(),
        resolved.app,
        engine.shards(),
        cores.join(","),
        engine.probe_report().mode,
        engine.probe_report().kernel,
        buffers.recv_granted,
        buffers.send_granted,
        metrics.map_or("off".to_string(), |m| format!(
            "http://{}/metrics",
            m.local_addr()
        )),
    );
}

/// Blocks on the engine's events until every shard has stopped (after a drain), a stop
/// signal, or a shard's failure; prints counters every `stats_interval` (the only timed
/// wake-up besides a drain's deadline) and reports on SIGUSR1.
fn serve_until_stopped(
    engine: &mut EngineHandle,
    settings: &mut Settings,
    reloader: &Reloader,
    resolved: &Resolved,
) -> End {
    let mut rates = Rates::new();
    let mut next_stats = settings.stats_interval.map(|every| Instant::now() + every);
    let mut phase = Phase::Serving;
    loop {
        let deadline = match (next_stats, &phase) {
            (Some(s), Phase::Draining(d)) => Some(s.min(*d)),
            (s, Phase::Serving) => s,
            (None, Phase::Draining(d)) => Some(*d),
        };
        let event = match deadline {
            Some(at) => engine.wait_event_timeout(at.saturating_duration_since(Instant::now())),
            None => Some(engine.wait_event()),
        };
        let sig = match event {
            None => {
                if let Phase::Draining(d) = phase
                    && Instant::now() >= d
                {
                    note!(
                        "ringwire: drain deadline passed with shards still running; stopping now"
                    );
                    return End::Stopped;
                }
                if let (Some(at), Some(every)) = (&mut next_stats, settings.stats_interval)
                    && Instant::now() >= *at
                {
                    rates.print(engine);
                    *at += every;
                }
                continue;
            }
            Some(EngineEvent::Notified(t)) => signals::signal(t).unwrap_or(0),
            Some(EngineEvent::ShardStopped {
                shard,
                outcome: Err(e),
            }) => {
                note!(
                    "ringwire: {e}; draining the other shards (closing their sessions with \
                     ShuttingDown) for up to {:?}, then exiting with status 1",
                    settings.drain_timeout
                );
                return End::ShardFailed(shard);
            }
            Some(EngineEvent::ShardStopped {
                shard,
                outcome: Ok(exit),
            }) => {
                if let Phase::Draining(_) = phase {
                    tracing::info!(shard, graceful = ?exit.graceful, "shard drained and stopped");
                    continue;
                }
                note!("ringwire: shard {shard} stopped on request; stopping the others");
                return End::Stopped;
            }
            Some(EngineEvent::AllStopped) => return End::Stopped,
            Some(_) => continue,
        };
        match (sig, &phase) {
            (SIGTERM | SIGINT, Phase::Serving) => {
                let until = Instant::now() + settings.drain_timeout;
                note!(
                    "ringwire: {}, draining: closing sessions and flushing sends for up to {:?} \
                     (send it again to stop at once)",
                    signals::name(sig),
                    settings.drain_timeout
                );
                engine.shutdown_handle().drain(until);
                phase = Phase::Draining(until);
            }
            (SIGTERM | SIGINT | SIGQUIT, Phase::Draining(_)) | (SIGQUIT, Phase::Serving) => {
                note!("ringwire: {}, stopping now", signals::name(sig));
                return End::Stopped;
            }
            (SIGUSR1, _) => print_summary(engine),
            (SIGUSR2, _) => rates.print(engine),
            (SIGHUP, _) => {
                if let Some(new) = reloader.reload(resolved, settings) {
                    if new.stats_interval != settings.stats_interval {
                        next_stats = new.stats_interval.map(|every| Instant::now() + every);
                    }
                    *settings = new;
                }
            }
            (other, _) => {
                tracing::warn!(signal = other, "unexpected notification; ignored");
            }
        }
    }
}
