//! Running the engine until a signal or a shard's exit. The main thread blocks on the engine's
//! one event channel, which the shard threads feed with their exits and the signal thread with
//! signal numbers: a shard that dies is noticed at once, not at the next stats tick.
#![forbid(unsafe_code)]

use std::io::Write;
use std::time::{Duration, Instant};

use ringwire::config::Resolved;
use ringwire::{Engine, EngineConfig, EngineEvent, EngineHandle, FactoryError, Handler, ShardInfo};
use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;

use super::output::{print_report, print_reports, print_stats};
use super::signals::{SignalThread, token};

/// Test hooks from the command line (none without the `test-hooks` feature).
pub struct Hooks {
    /// Panic on a datagram equal to this.
    #[cfg(feature = "test-hooks")]
    pub panic_on: Option<Vec<u8>>,
}

/// Why serving ended.
enum End {
    /// A stop signal, or every shard stopped on request.
    Stopped,
    /// This shard stopped on its own (already reported on stderr).
    ShardFailed(usize),
}

/// Starts the engine, serves until a stop signal or a shard's exit, then stops every shard and
/// prints the final report. Returns whether all of it went cleanly.
pub fn run<F, H>(resolved: &Resolved, hooks: &Hooks, factory: F) -> bool
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
    config.stop_timeout = resolved.shutdown_timeout;
    // Caught from here on: a signal during start-up waits for the signal thread.
    let signals = match Signals::new([SIGINT, SIGTERM, SIGUSR1]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ringwire: cannot catch signals: {e}");
            return false;
        }
    };
    let mut engine = match Engine::try_start(&config, factory) {
        Ok(engine) => engine,
        Err(e) => {
            eprintln!("ringwire: {e}");
            return false;
        }
    };
    print_listening(&engine, resolved);
    // On an early return the engine handle's drop stops the shards.
    let signal_thread =
        match SignalThread::start(signals, engine.notifier(), engine.shutdown_handle()) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("ringwire: cannot spawn the signal thread: {e}");
                return false;
            }
        };
    let end = serve_until_stopped(&mut engine, resolved.stats_interval);
    signal_thread.stop();
    let failed = match end {
        End::Stopped => None,
        End::ShardFailed(shard) => Some(shard),
    };
    match engine.shutdown(resolved.shutdown_timeout) {
        Ok(report) => {
            print_report(&report);
            failed.is_none()
        }
        Err(e) => {
            // The failed shard's error was printed when it happened.
            if failed.is_none() || e.shard() != failed {
                eprintln!("ringwire: {e}");
            }
            false
        }
    }
}

fn print_listening(engine: &EngineHandle, resolved: &Resolved) {
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
}

/// What to do after an event that does not end serving.
enum Step {
    Stats,
    Reports,
    Nothing,
}

/// Blocks on the engine's events until a stop signal or a shard's exit; prints counters every
/// `stats_interval` (the only timed wake-up) and reports on SIGUSR1.
fn serve_until_stopped(engine: &mut EngineHandle, stats_interval: Option<Duration>) -> End {
    let mut next_stats = stats_interval.map(|every| (Instant::now() + every, every));
    loop {
        let event = match next_stats {
            Some((at, _)) => {
                engine.wait_event_timeout(at.saturating_duration_since(Instant::now()))
            }
            None => Some(engine.wait_event()),
        };
        let step = match event {
            None => Step::Stats,
            Some(EngineEvent::Notified(t)) if t == token(SIGUSR1) => Step::Reports,
            Some(EngineEvent::Notified(sig)) => {
                eprintln!("ringwire: signal {sig}, stopping");
                return End::Stopped;
            }
            Some(EngineEvent::ShardStopped {
                shard,
                outcome: Err(e),
            }) => {
                eprintln!("ringwire: {e}; stopping the other shards");
                return End::ShardFailed(shard);
            }
            Some(EngineEvent::ShardStopped {
                shard,
                outcome: Ok(_),
            }) => {
                eprintln!("ringwire: shard {shard} stopped on request; stopping the others");
                return End::Stopped;
            }
            Some(EngineEvent::AllStopped) => return End::Stopped,
            Some(_) => Step::Nothing,
        };
        match step {
            Step::Stats => {
                print_stats(engine);
                if let Some((at, every)) = &mut next_stats {
                    *at += *every;
                }
            }
            Step::Reports => print_reports(engine),
            Step::Nothing => {}
        }
    }
}
