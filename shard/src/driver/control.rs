//! The control block a shard shares with the thread that started it: stop and report
//! requests, the eventfd that wakes it, its published counters, its thread id and ring fd.
//! Nothing on the data path reads these except the stop flag and the report flag, once per
//! turn each.
//!
//! Reports travel by message in both directions, over bounded channels. Each requester owns its
//! reply channel ([`ReportReplies`]) and names it in every request, so several threads (the
//! binary's main thread and its metrics thread) can ask at once without taking each other's
//! answers. A request carries an id chosen by the requester and the reply echoes it, so a
//! reply that arrives after its requester gave up is recognised as stale and discarded
//! ([`ReportReplies::wait_for`]) rather than taken for the answer to the next request. The
//! shard never blocks on either channel: it takes requests with `try_recv` (at most
//! `REPORT_REQUESTS` wait, so at most that many pages are written in one turn) and sends
//! replies with `try_send`, counting a full reply channel
//! ([`ShardControl::report_replies_dropped`]).
//!
//! The request channel is made by the shard when it is set up ([`ShardControl::open_report_inbox`]):
//! the shard keeps the receiving end and publishes the sending end here, once, so no lock
//! guards the hand-over and a request before the shard has started is refused
//! ([`ReportError::NotStarted`]).
//!
//! A graceful drain is asked for with a deadline ([`ShardControl::request_drain`]), stored as
//! nanoseconds after the control block's creation so that it fits one atomic.

use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use super::SetupError;
use crate::counters::{PublishedStats, ShardStats};
use crate::handler::Handler;
use crate::report::{ReportPage, ReportRequest, ShardReport};
use crate::ring::{EventFd, Wake};

/// Report requests that may wait for the shard's next turn before more are refused.
const REPORT_REQUESTS: usize = 4;
/// Replies that may wait for the requester before more are dropped (and counted).
const REPORT_REPLIES: usize = 4;

/// The state a shard shares with the thread that started it: the stop request, the eventfd
/// that wakes it, and its published counters. Nothing on the data path reads these except the
/// stop and report flags, once per turn.
#[derive(Debug)]
pub struct ShardControl {
    pub(super) index: usize,
    pub(super) stop: AtomicBool,
    pub(super) waker: EventFd,
    pub(super) stats: PublishedStats,
    pub(super) tid: AtomicU64,
    /// The fd peers name in `MSG_RING` wakes: the number of `ring` while the shard runs, -1
    /// before it starts and from the moment it stops (so peers wake it through the eventfd).
    pub(super) ring_fd: AtomicI32,
    /// A duplicate of the shard's io_uring fd, owned here and closed only when the last holder
    /// of this block drops it. A peer that loaded `ring_fd` just before the reset to -1 holds
    /// this block (its waker), so the number it submits still names this ring, never a file
    /// that reused the number: the wake lands in a ring nobody reads, or fails and falls back
    /// to the eventfd. Set once; a second shard run on the same block is woken by eventfd.
    pub(super) ring: OnceLock<OwnedFd>,
    /// Set (release) after a request is queued; the shard looks at the queue only when set.
    report_wanted: AtomicBool,
    /// The sending end of the shard's report requests, published once by the shard when it is
    /// set up ([`ShardControl::open_report_inbox`]); the shard's thread owns the receiving end.
    requests: OnceLock<SyncSender<Pending>>,
    replies_dropped: AtomicU64,
    /// When this block was made: the origin of `drain_until`.
    epoch: Instant,
    /// A requested drain's deadline in nanoseconds after `epoch` (at least 1); 0: none asked.
    drain_until: AtomicU64,
    /// Set once the shard's thread has finished with its loop: requests are refused.
    exited: AtomicBool,
}

/// A report request waiting for the shard: its id, what it asks, and where to answer.
#[derive(Debug)]
struct Pending {
    id: u64,
    request: ReportRequest,
    reply: SyncSender<Reply>,
}

/// The shard's end of its report-request channel, owned by the shard's thread.
#[derive(Debug)]
pub(crate) struct ReportInbox(Receiver<Pending>);

/// A shard's answer, tagged with the id of the request it answers.
#[derive(Debug)]
struct Reply {
    id: u64,
    report: ShardReport,
}

/// Why a report did not come back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// No reply before the deadline: the shard is busy in a long turn, or stuck. Its reply, if
    /// it comes, is discarded as stale by the next wait.
    #[error("no reply before the deadline")]
    Timeout,
    /// Earlier requests are still waiting for the shard's next turn; this one was refused.
    #[error("the shard has not taken its earlier report requests")]
    Busy,
    /// The shard has stopped.
    #[error("the shard has stopped")]
    Stopped,
    /// The shard has not been set up yet: it takes requests once it runs.
    #[error("the shard has not started")]
    NotStarted,
    /// The request is queued but the shard could not be woken to see it.
    #[error("cannot wake the shard: {0}")]
    Wake(#[source] io::Error),
}

impl ShardControl {
    /// Control block for shard `index` of `shards`.
    pub fn new(index: usize, shards: usize) -> Result<Self, SetupError> {
        Ok(Self {
            index,
            stop: AtomicBool::new(false),
            waker: EventFd::new().map_err(SetupError::EventFd)?,
            stats: PublishedStats::new(index, shards),
            tid: AtomicU64::new(0),
            ring_fd: AtomicI32::new(-1),
            ring: OnceLock::new(),
            report_wanted: AtomicBool::new(false),
            requests: OnceLock::new(),
            replies_dropped: AtomicU64::new(0),
            epoch: Instant::now(),
            drain_until: AtomicU64::new(0),
            exited: AtomicBool::new(false),
        })
    }

    /// Asks the shard for a page of its handler's report
    /// ([`Handler::report`](crate::Handler::report)), tagged `id`, answered into `replies`
    /// ([`ReportReplies::wait_for`]) after the shard's next loop turn. Wakes the shard if it is
    /// parked. Returns at once and never blocks. Use increasing ids per [`ReportReplies`].
    pub fn request_report(
        &self,
        id: u64,
        request: ReportRequest,
        replies: &ReportReplies,
    ) -> Result<(), ReportError> {
        if self.exited.load(Ordering::Acquire) {
            return Err(ReportError::Stopped);
        }
        let Some(requests) = self.requests.get() else {
            return Err(ReportError::NotStarted);
        };
        let pending = Pending {
            id,
            request,
            reply: replies.tx.clone(),
        };
        match requests.try_send(pending) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(ReportError::Busy),
            // The shard that owned the receiving end is gone.
            Err(TrySendError::Disconnected(_)) => return Err(ReportError::Stopped),
        }
        self.report_wanted.store(true, Ordering::Release);
        self.waker.signal().map_err(ReportError::Wake)
    }

    /// Replies the shard wrote but dropped because the reply channel was full: earlier replies
    /// were still waiting for a requester that had stopped reading them.
    pub fn report_replies_dropped(&self) -> u64 {
        self.replies_dropped.load(Ordering::Relaxed)
    }

    /// Opens this shard's report requests, once: the shard calls it when it is set up, on its
    /// own thread, keeps the receiving end and publishes the sending end here. `None` if a
    /// shard opened them already (a second shard run on the same block gets no reports: its
    /// requests are refused as [`ReportError::Stopped`] once the first has gone).
    pub(super) fn open_report_inbox(&self) -> Option<ReportInbox> {
        let (requests, inbox) = mpsc::sync_channel(REPORT_REQUESTS);
        self.requests.set(requests).ok()?;
        Some(ReportInbox(inbox))
    }

    /// The shard's side, once per loop turn: if a report was asked for, answers every request
    /// waiting in `inbox` (at most `REPORT_REQUESTS`) with a page of `handler`'s report, its
    /// counters and `turns` (the loop-turn histogram, if recorded), sending each reply without
    /// blocking. One relaxed load when nothing was asked.
    pub(super) fn answer_report<H: Handler>(
        &self,
        inbox: &ReportInbox,
        handler: &H,
        turns: Option<&hdrhistogram::Histogram<u64>>,
    ) {
        if !self.report_wanted.load(Ordering::Relaxed)
            || !self.report_wanted.swap(false, Ordering::Acquire)
        {
            return;
        }
        // The flag is cleared before the queue is read: a request queued after this read sets
        // it again and is answered next turn.
        while let Ok(Pending { id, request, reply }) = inbox.0.try_recv() {
            let mut page = ReportPage::default();
            let next = handler.report(&request, &mut page);
            let mut counters = Vec::new();
            handler.counters(&mut counters);
            let report = ShardReport {
                shard: self.index,
                summary: page.summary,
                items: page.items,
                next,
                counters,
                turn_nanos: turns.cloned(),
            };
            match reply.try_send(Reply { id, report }) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    self.replies_dropped.fetch_add(1, Ordering::Relaxed);
                }
                // The requester is gone: nobody wants the report.
                Err(TrySendError::Disconnected(_)) => {}
            }
        }
    }

    /// Asks the shard to drain gracefully by `deadline`
    /// ([`Handler::on_shutdown`](crate::Handler::on_shutdown)) and then stop on its own; wakes
    /// it if parked. Returns at once. A second request keeps the first deadline.
    pub fn request_drain(&self, deadline: Instant) -> io::Result<()> {
        let nanos = deadline
            .saturating_duration_since(self.epoch)
            .as_nanos()
            .clamp(1, u128::from(u64::MAX)) as u64;
        let _ = self
            .drain_until
            .compare_exchange(0, nanos, Ordering::SeqCst, Ordering::SeqCst);
        self.waker.signal()
    }

    /// The deadline of a requested drain, if one was asked for (one relaxed load).
    pub fn drain_deadline(&self) -> Option<Instant> {
        match self.drain_until.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(self.epoch + Duration::from_nanos(nanos)),
        }
    }

    /// Marks the shard's loop as finished: later report requests are refused with
    /// [`ReportError::Stopped`] instead of waiting for a turn that never comes. The thread
    /// running the shard calls it when [`Shard::run`](crate::Shard::run) returns.
    pub fn mark_exited(&self) {
        self.exited.store(true, Ordering::Release);
    }

    /// The shard's index.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Asks the shard to stop and wakes it if it is parked. Returns at once.
    pub fn request_stop(&self) -> io::Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        self.waker.signal()
    }

    /// Whether a stop was requested.
    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// The most recently published counters.
    pub fn stats(&self) -> ShardStats {
        self.stats.snapshot()
    }

    /// The Linux thread id of the shard's thread once it runs (0 before), for reading its CPU
    /// time from `/proc/self/task/TID/stat`.
    pub fn thread_id(&self) -> u64 {
        self.tid.load(Ordering::Relaxed)
    }
}

/// One requester's end of one shard's report replies: pass it to
/// [`ShardControl::request_report`], then wait for the answer here.
#[derive(Debug)]
pub struct ReportReplies {
    tx: SyncSender<Reply>,
    rx: Receiver<Reply>,
    stale: u64,
}

impl Default for ReportReplies {
    fn default() -> Self {
        Self::new()
    }
}

impl ReportReplies {
    /// A reply channel with room for `REPORT_REPLIES` replies.
    pub fn new() -> Self {
        let (tx, rx) = mpsc::sync_channel(REPORT_REPLIES);
        Self { tx, rx, stale: 0 }
    }

    /// Waits until `deadline` for the reply to request `id`, discarding (and counting) replies
    /// to earlier requests that arrived after their requester stopped waiting.
    pub fn wait_for(&mut self, id: u64, deadline: Instant) -> Result<ShardReport, ReportError> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // A zero wait still takes a reply that is already here.
            match self.rx.recv_timeout(left) {
                Ok(reply) if reply.id == id => return Ok(reply.report),
                Ok(_) => self.stale += 1,
                Err(RecvTimeoutError::Timeout) => return Err(ReportError::Timeout),
                // This requester holds a sender: cannot happen.
                Err(RecvTimeoutError::Disconnected) => return Err(ReportError::Stopped),
            }
        }
    }

    /// Stale replies discarded so far.
    pub fn stale(&self) -> u64 {
        self.stale
    }
}

/// Other shards wake a parked shard through its eventfd, which the shard's ring polls, or with
/// `IORING_OP_MSG_RING` straight into its ring (`ShardConfig::wake` of the sender).
impl Wake for ShardControl {
    fn wake(&self) -> io::Result<()> {
        self.waker.signal()
    }

    fn ring_fd(&self) -> Option<RawFd> {
        let fd = self.ring_fd.load(Ordering::Acquire);
        (fd >= 0).then_some(fd)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn report_requests_are_refused_before_the_shard_opens_them_and_after_it_has_gone() {
        let control = ShardControl::new(0, 1).unwrap();
        let replies = ReportReplies::new();
        let ask = |id| control.request_report(id, ReportRequest::first(1), &replies);
        assert!(matches!(ask(1), Err(ReportError::NotStarted)));
        let inbox = control.open_report_inbox().unwrap();
        // A second shard run on the same block gets no inbox of its own.
        assert!(control.open_report_inbox().is_none());
        ask(2).unwrap();
        let Pending { id, .. } = inbox.0.try_recv().unwrap();
        assert_eq!(id, 2);
        drop(inbox);
        assert!(matches!(ask(3), Err(ReportError::Stopped)));
    }
}
