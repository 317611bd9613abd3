//! The control block a shard shares with the thread that started it: stop and report
//! requests, the eventfd that wakes it, its published counters, its thread id and ring fd.
//! Nothing on the data path reads these except the stop flag and the report flag, once per
//! turn each.
//!
//! Reports travel by message in both directions, over bounded channels. A request carries an
//! id chosen by the requester and the reply echoes it, so a reply that arrives after its
//! requester gave up is recognised as stale and discarded ([`ReportReplies::wait_for`]) rather
//! than taken for the answer to the next request. The shard never blocks on either channel: it
//! takes requests with `try_recv` and sends replies with `try_send`, counting a full reply
//! channel ([`ShardControl::report_replies_dropped`]).

use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use super::SetupError;
use crate::counters::{PublishedStats, ShardStats};
use crate::report::{ReportRequest, ShardReport};
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
    requests: SyncSender<(u64, ReportRequest)>,
    /// The shard's end of `requests`, until the shard takes it at set-up
    /// ([`ShardControl::take_report_inbox`]); from then on only the shard's thread holds it, so
    /// the loop reads requests without any lock. The mutex guards only that one hand-over.
    inbox: Mutex<Option<ReportInbox>>,
    replies: SyncSender<Reply>,
    replies_dropped: AtomicU64,
}

/// The shard's end of its report-request channel, owned by the shard's thread.
#[derive(Debug)]
pub(crate) struct ReportInbox(Receiver<(u64, ReportRequest)>);

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
    /// The request is queued but the shard could not be woken to see it.
    #[error("cannot wake the shard: {0}")]
    Wake(#[source] io::Error),
}

impl ShardControl {
    /// Control block for shard `index` of `shards`, and the receiving end of the shard's report
    /// replies ([`ShardControl::request_report`]).
    pub fn new(index: usize, shards: usize) -> Result<(Self, ReportReplies), SetupError> {
        let (requests, inbox) = mpsc::sync_channel(REPORT_REQUESTS);
        let (replies, rx) = mpsc::sync_channel(REPORT_REPLIES);
        let control = Self {
            index,
            stop: AtomicBool::new(false),
            waker: EventFd::new().map_err(SetupError::EventFd)?,
            stats: PublishedStats::new(index, shards),
            tid: AtomicU64::new(0),
            ring_fd: AtomicI32::new(-1),
            ring: OnceLock::new(),
            report_wanted: AtomicBool::new(false),
            requests,
            inbox: Mutex::new(Some(ReportInbox(inbox))),
            replies,
            replies_dropped: AtomicU64::new(0),
        };
        Ok((control, ReportReplies { rx, stale: 0 }))
    }

    /// Asks the shard for a page of its handler's report
    /// ([`Handler::report`](crate::Handler::report)), tagged `id`; the reply carries `id` back
    /// ([`ReportReplies::wait_for`]) after the shard's next loop turn. Wakes the shard if it is
    /// parked. Returns at once and never blocks.
    ///
    /// When several requests wait, the shard answers only the newest: the others' requester
    /// has already stopped waiting for them. Use increasing ids.
    pub fn request_report(&self, id: u64, request: ReportRequest) -> Result<(), ReportError> {
        match self.requests.try_send((id, request)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(ReportError::Busy),
            // The receiver lives in `self`; it cannot be gone while `self` is here.
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

    /// The receiving end of this shard's report requests, once: the shard takes it when it is
    /// set up, on its own thread, and owns it from then on. `None` if it was taken already (a
    /// second shard run on the same block gets no reports).
    pub(super) fn take_report_inbox(&self) -> Option<ReportInbox> {
        match self.inbox.lock() {
            Ok(mut inbox) => inbox.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        }
    }

    /// The shard's side, once per loop turn: if a report was asked for, takes the newest
    /// request from `inbox`, lets `write` fill in the report (returning the next page's
    /// cursor), and sends the reply without blocking. One relaxed load when nothing was asked.
    pub(super) fn answer_report(
        &self,
        inbox: &ReportInbox,
        write: impl FnOnce(&ReportRequest, &mut String) -> Option<u64>,
    ) {
        if !self.report_wanted.load(Ordering::Relaxed)
            || !self.report_wanted.swap(false, Ordering::Acquire)
        {
            return;
        }
        // The flag is cleared before the queue is read: a request queued after this read sets
        // it again and is answered next turn.
        let mut newest = None;
        // Empty or disconnected ends it; only the newest request is answered.
        while let Ok(request) = inbox.0.try_recv() {
            newest = Some(request);
        }
        let Some((id, request)) = newest else {
            return;
        };
        let mut text = String::new();
        let next = write(&request, &mut text);
        let reply = Reply {
            id,
            report: ShardReport {
                shard: self.index,
                text,
                next,
            },
        };
        match self.replies.try_send(reply) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.replies_dropped.fetch_add(1, Ordering::Relaxed);
            }
            // The requester is gone: nobody wants the report.
            Err(TrySendError::Disconnected(_)) => {}
        }
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

/// The requester's end of one shard's report replies.
#[derive(Debug)]
pub struct ReportReplies {
    rx: Receiver<Reply>,
    stale: u64,
}

impl ReportReplies {
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
