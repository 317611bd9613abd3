//! The control block a shard shares with the thread that started it: stop and report
//! requests, the eventfd that wakes it, its published counters, its thread id and ring fd.
//! Nothing on the data path reads these except the stop flag, once per turn.

use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::mpsc;

use super::SetupError;
use crate::counters::{PublishedStats, ShardStats};
use crate::ring::{EventFd, Wake};

/// The state a shard shares with the thread that started it: the stop request, the eventfd
/// that wakes it, and its published counters. Nothing on the data path reads these except the
/// stop flag, once per turn.
#[derive(Debug)]
pub struct ShardControl {
    pub(super) index: usize,
    pub(super) stop: AtomicBool,
    pub(super) report_wanted: AtomicBool,
    pub(super) reports: mpsc::Sender<String>,
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
}

impl ShardControl {
    /// Control block for shard `index` of `shards`, and the receiving end of the shard's
    /// handler reports ([`ShardControl::request_report`]).
    pub fn new(index: usize, shards: usize) -> Result<(Self, mpsc::Receiver<String>), SetupError> {
        let (reports, rx) = mpsc::channel();
        let control = Self {
            index,
            stop: AtomicBool::new(false),
            report_wanted: AtomicBool::new(false),
            reports,
            waker: EventFd::new().map_err(SetupError::EventFd)?,
            stats: PublishedStats::new(index, shards),
            tid: AtomicU64::new(0),
            ring_fd: AtomicI32::new(-1),
            ring: OnceLock::new(),
        };
        Ok((control, rx))
    }

    /// Asks the shard for its handler's report ([`Handler::report`](crate::Handler::report)); it arrives on the
    /// receiver [`ShardControl::new`] returned, after the shard's next loop turn. Wakes the
    /// shard if it is parked. Returns at once.
    pub fn request_report(&self) -> io::Result<()> {
        self.report_wanted.store(true, Ordering::SeqCst);
        self.waker.signal()
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

/// Other shards wake a parked shard through its eventfd, which the shard's ring polls, or with
/// `IORING_OP_MSG_RING` straight into its ring (`ShardConfig::msg_ring_wake` of the sender).
impl Wake for ShardControl {
    fn wake(&self) -> io::Result<()> {
        self.waker.signal()
    }

    fn ring_fd(&self) -> Option<RawFd> {
        let fd = self.ring_fd.load(Ordering::Acquire);
        (fd >= 0).then_some(fd)
    }
}
