//! Phase 1 of a session run: open every peer's session, a bounded number of
//! handshakes at a time (the server answers at most half its control queue
//! with stateless cookies at once), and wait until each is ready or failed.

use super::io::SessionIo;
use crate::load::stats::WorkerStats;
use crate::load::transport::{Sink, Transport};
use ringwire_shard::session::ConnectError;
use std::io;
use std::time::{Duration, Instant};

/// Handshakes in flight per worker at most.
pub const MAX_IN_FLIGHT: usize = 256;

/// How one worker's handshakes went.
#[derive(Debug, Clone, Copy, Default)]
pub struct HandshakeStats {
    /// Sessions ready for traffic.
    pub established: usize,
    /// Sessions that failed (timed out) or could not be opened, or were
    /// still pending at the give-up time.
    pub failed: usize,
    /// Time from the first Initiation to the last session ready or failed.
    pub elapsed: Duration,
}

/// Opens every session of `io`, giving up on those not ready after `give_up`.
pub fn run(io: &mut SessionIo, give_up: Duration) -> io::Result<HandshakeStats> {
    let n = io.peer_count();
    let start = Instant::now();
    let mut next = 0;
    let mut refused = 0;
    let mut replies = Vec::new();
    let mut scratch = WorkerStats::new(0);
    loop {
        let done = io.ready_count() + io.failed_count() + refused;
        while next < n && next - done.min(next) < MAX_IN_FLIGHT {
            match io.connect(next) {
                Ok(()) => next += 1,
                Err(ConnectError::ControlQueueFull) => break,
                // Session limits, no server key, handshake set-up, admission (the client's
                // endpoint has none configured): this peer never connects.
                Err(_) => {
                    refused += 1;
                    next += 1;
                }
            }
        }
        io.flush();
        let done = io.ready_count() + io.failed_count() + refused;
        if done >= n || start.elapsed() >= give_up {
            break;
        }
        replies.clear();
        let mut sink = Sink {
            epoch: start,
            out: &mut replies,
            stats: &mut scratch,
        };
        io.poll(1, &mut sink)?;
    }
    let established = io.ready_count();
    Ok(HandshakeStats {
        established,
        failed: n - established,
        elapsed: start.elapsed(),
    })
}
