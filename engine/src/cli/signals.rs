//! The signal thread: turns SIGINT, SIGTERM and SIGUSR1 into engine notifications, so the main
//! thread waits on one channel for signals and shard exits alike.
#![forbid(unsafe_code)]

use std::thread::JoinHandle;

use ringwire::{EngineNotifier, NotifyError, ShutdownHandle};
use signal_hook::consts::SIGUSR1;
use signal_hook::iterator::{Handle, Signals};

/// The notification token for signal `sig`.
pub fn token(sig: i32) -> u64 {
    u64::from(sig.unsigned_abs())
}

/// A running signal thread.
pub struct SignalThread {
    handle: Handle,
    thread: JoinHandle<()>,
}

impl SignalThread {
    /// Forwards every signal `signals` catches to `notifier`. If the main thread has let
    /// [`EngineNotifier::CAPACITY`] notifications pile up, a stop signal asks the shards to
    /// stop directly (the main thread then sees them stop), and SIGUSR1 is dropped with a
    /// message.
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
                        Err(e @ NotifyError::Full) if sig == SIGUSR1 => {
                            eprintln!("ringwire: SIGUSR1 dropped: {e}");
                        }
                        Err(e @ NotifyError::Full) => {
                            eprintln!("ringwire: signal {sig}: {e}; asking the shards to stop");
                            shutdown.request();
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
