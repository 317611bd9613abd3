//! The signal thread: turns every signal the binary handles into an engine notification, so the
//! main thread waits on one channel for signals and shard exits alike.
//!
//! Every signal an operator sends is handled on purpose:
//!
//! | signal | effect |
//! |---|---|
//! | SIGTERM, SIGINT | graceful drain (the second one: stop at once) |
//! | SIGQUIT | stop at once, final counters printed |
//! | SIGHUP | reload the config file's reloadable settings (never stops) |
//! | SIGUSR1 | print a bounded summary |
//! | SIGUSR2 | print the counters now |
//! | SIGPIPE | ignored (Rust's runtime ignores it; writes fail instead, see `output.rs`) |
#![forbid(unsafe_code)]

use std::thread::JoinHandle;

use ringwire::{EngineNotifier, NotifyError, ShutdownHandle};
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::{Handle, Signals};

use super::output::note;

/// The signals the binary catches.
pub const HANDLED: [i32; 6] = [SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2];

/// The notification token for signal `sig`.
pub fn token(sig: i32) -> u64 {
    u64::from(sig.unsigned_abs())
}

/// The signal a token stands for.
pub fn signal(token: u64) -> Option<i32> {
    i32::try_from(token).ok()
}

/// A signal's name, for messages.
pub fn name(sig: i32) -> &'static str {
    match sig {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        SIGQUIT => "SIGQUIT",
        SIGHUP => "SIGHUP",
        SIGUSR1 => "SIGUSR1",
        SIGUSR2 => "SIGUSR2",
        _ => "signal",
    }
}

/// A running signal thread.
pub struct SignalThread {
    handle: Handle,
    thread: JoinHandle<()>,
}

impl SignalThread {
    /// Forwards every signal `signals` catches to `notifier`. If the main thread has let
    /// [`EngineNotifier::CAPACITY`] notifications pile up, a stop signal asks the shards to
    /// stop directly (the main thread then sees them stop), and other signals are dropped
    /// with a message.
    pub fn start(
        mut signals: Signals,
        notifier: EngineNotifier,
        shutdown: ShutdownHandle,
    ) -> std::io::Result<Self> {
        let handle = signals.handle();
        let thread = std::thread::Builder::new()
            .name("rw-signals".to_string())
            .spawn(move || {
                for sig in signals.forever() {
                    match notifier.notify(token(sig)) {
                        Ok(()) => {}
                        Err(e @ NotifyError::Full) if matches!(sig, SIGINT | SIGTERM | SIGQUIT) => {
                            note!("ringwire: {}: {e}; asking the shards to stop", name(sig));
                            shutdown.request();
                        }
                        Err(e @ NotifyError::Full) => {
                            note!("ringwire: {} dropped: {e}", name(sig));
                        }
                        Err(_) => break,
                    }
                }
            })?;
        Ok(Self { handle, thread })
    }

    /// Stops catching signals and joins the thread (closing the handle ends its wait).
    pub fn stop(self) {
        self.handle.close();
        let _ = self.thread.join();
    }
}
