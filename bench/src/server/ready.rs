//! Start-up handshake: each server thread says when its socket and runtime
//! are set up, so `start` returns only when traffic can flow, and a thread
//! that failed to set up (no io_uring, no such core) fails `start` at once.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

/// Held by a server thread; [`Ready::up`] reports that it serves.
/// Dropping it without calling `up` (an early error return) reports failure.
pub struct Ready(Sender<()>);

impl Ready {
    /// The thread is serving.
    pub fn up(self) {
        // The receiver is gone only if `start` already gave up; nothing to do.
        let _ = self.0.send(());
    }
}

/// The starting side: hands out one [`Ready`] per thread, then waits.
pub struct ReadyGate {
    tx: Option<Sender<()>>,
    rx: Receiver<()>,
}

/// How long a thread may take to set up.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

impl ReadyGate {
    /// A gate with no threads yet.
    #[must_use]
    pub fn new() -> Self {
        let (tx, rx) = channel();
        Self { tx: Some(tx), rx }
    }

    /// A token for one more thread.
    #[must_use]
    pub fn token(&self) -> Option<Ready> {
        self.tx.as_ref().map(|tx| Ready(tx.clone()))
    }

    /// Waits until `threads` threads are up; false if one dropped its token
    /// without calling [`Ready::up`] or setup took too long.
    #[must_use]
    pub fn wait(mut self, threads: usize) -> bool {
        self.tx = None;
        let deadline = Instant::now() + SETUP_TIMEOUT;
        for _ in 0..threads {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(()) => {}
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return false,
            }
        }
        true
    }
}

impl Default for ReadyGate {
    fn default() -> Self {
        Self::new()
    }
}
