//! Sending before the turn ends: a handler that stages a large batch of sends in one callback
//! (a relay copying one publish to thousands of subscribers) has them submitted in runs of
//! [`EARLY_SUBMIT_SENDS`] (256) as it goes, so the first copies leave while the later ones are still
//! being sealed, instead of all of them waiting for the turn's `io_uring_enter`.
//!
//! One turn's work is the same either way; what changes is when each send starts. A send's
//! memory is its slot's, in flight from its SQE on, as for the turn's own submission
//! (`pool.rs`).

use std::os::fd::RawFd;

use io_uring::types::{Fd, Fixed};
use io_uring::{IoUring, opcode, squeue};

use super::SEND;
use super::pool::SendSlots;
use crate::counters::Counters;

/// Staged sends (`sendmsg` SQEs to be; a GSO send counts once) at which a handler's callback
/// submits them without waiting for the end of the turn. At about 5 us per 1,200-byte send on
/// loopback, a run costs one `io_uring_enter` per some 1.3 ms of sends, and the first copy of
/// a fan-out waits for 256 to be sealed at most (runs of 64, 256 and 1,024 measured: D80).
pub(crate) const EARLY_SUBMIT_SENDS: usize = 256;

/// The `sendmsg` SQE of staged send `token` (header `hdr`), on registered file 0 when `fixed`,
/// else on `fd`: the turn's submission and an early one build the same.
pub(super) fn send_sqe(
    fixed: bool,
    fd: RawFd,
    hdr: *const libc::msghdr,
    token: u64,
) -> squeue::Entry {
    if fixed {
        opcode::SendMsg::new(Fixed(0), hdr).build()
    } else {
        opcode::SendMsg::new(Fd(fd), hdr).build()
    }
    .user_data(SEND | token)
}

/// The ring a [`Ctx`](crate::Ctx) submits staged sends through mid-turn.
pub(crate) struct SendSubmitter<'a> {
    ring: &'a mut IoUring,
    fd: RawFd,
    fixed: bool,
    /// An early submission failed: the rest of the turn leaves the sends to the turn's own
    /// submission, which reports the error.
    failed: bool,
}

impl<'a> SendSubmitter<'a> {
    /// Submits through `ring`, whose registered file 0 is `fd` when `fixed`.
    pub(crate) fn new(ring: &'a mut IoUring, fd: RawFd, fixed: bool) -> Self {
        Self {
            ring,
            fd,
            fixed,
            failed: false,
        }
    }

    /// If `slots` holds at least [`EARLY_SUBMIT_SENDS`] staged sends, turns them into SQEs
    /// and submits them now, without waiting for any completion (counted as
    /// `send_early_submits`). Sends the submission queue has no room for stay staged for the
    /// turn's submission.
    pub(crate) fn maybe_submit(&mut self, slots: &mut SendSlots, counters: &mut Counters) {
        if self.failed || slots.staged_len() < EARLY_SUBMIT_SENDS {
            return;
        }
        let mut n = 0;
        while let Some((hdr, token)) = slots.staged(n) {
            let sqe = send_sqe(self.fixed, self.fd, hdr, token);
            // SAFETY: the SQE names a staged send slot's header, which points only into that
            // slot (and its group's or lent receive buffer); `mark_submitted` below makes them
            // in flight, and the pools free such memory only once no operation naming it is
            // left in the kernel, leaking it otherwise (`pool.rs`, `release_pools`).
            if unsafe { self.ring.submission().push(&sqe) }.is_err() {
                break;
            }
            n += 1;
        }
        slots.mark_submitted(n);
        counters.send_early_submits += 1;
        counters.enter_calls += 1;
        // The pushed SQEs stay in the queue if the kernel refuses them now (they name slots
        // in flight either way); the turn's `io_uring_enter` submits them and reports a lasting
        // error.
        if self.ring.submit().is_err() {
            self.failed = true;
        }
    }
}
