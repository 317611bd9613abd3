//! Phase 1 of a session run: open every session, a bounded number of
//! handshakes at a time (the server answers at most half its control queue
//! with stateless cookies at once) and, if asked, at most a set number of new
//! sessions per second, and wait until each is ready or failed.
//!
//! A million sessions take minutes (each handshake costs both sides several
//! X25519 operations), so the phase has no fixed deadline: it gives up only
//! when no session became ready or failed for [`Pace::stall`].

use super::io::SessionIo;
use crate::load::stats::WorkerStats;
use crate::load::transport::{Sink, Transport};
use ringwire_shard::session::ConnectError;
use std::io;
use std::time::{Duration, Instant};

/// Handshakes in flight per worker at most.
pub const MAX_IN_FLIGHT: usize = 256;

/// How often the progress line is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

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

/// How the phase is paced.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Give up on the pending sessions after this long without any
    /// becoming ready or failing.
    pub stall: Duration,
    /// New sessions per second at most (`None`: only [`MAX_IN_FLIGHT`]).
    pub rate: Option<f64>,
    /// Print `load: handshakes ...` on stderr every few seconds.
    pub progress: bool,
}

/// Opens every session of `io`.
pub fn run(io: &mut SessionIo, pace: Pace) -> io::Result<HandshakeStats> {
    let n = io.peer_count();
    let start = Instant::now();
    let mut next = 0;
    let mut refused = 0;
    let mut replies = Vec::new();
    let mut scratch = WorkerStats::new(0);
    let (mut last_done, mut last_change) = (0, start);
    let mut last_print = start;
    loop {
        let done = io.ready_count() + io.failed_count() + refused;
        let allowed = pace.rate.map_or(n, |r| {
            // At least one, so a rate below 1/s still starts.
            ((start.elapsed().as_secs_f64() * r) as usize + 1).min(n)
        });
        while next < allowed && next - done.min(next) < MAX_IN_FLIGHT {
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
        let now = Instant::now();
        if done != last_done {
            (last_done, last_change) = (done, now);
        }
        if pace.progress && now - last_print >= PROGRESS_EVERY {
            last_print = now;
            let secs = (now - start).as_secs_f64();
            eprintln!(
                "load: handshakes {} ready, {} failed of {n} in {secs:.0} s ({:.0}/s)",
                io.ready_count(),
                io.failed_count() + refused,
                io.ready_count() as f64 / secs
            );
        }
        if done >= n || now - last_change >= pace.stall {
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
