//! Waiting for what happens to a running engine: shard exits and caller notifications on one
//! channel, so one thread can block on both.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::time::{Duration, Instant};

use ringwire_shard::ShardExit;

use super::error::EngineError;
use super::handle::EngineHandle;
use super::shard_thread::Msg;

/// What [`EngineHandle::wait_event`] saw.
#[derive(Debug)]
#[non_exhaustive]
pub enum EngineEvent<'a> {
    /// A shard's thread ended. `Ok`: it stopped because a stop was asked for (its final
    /// counters); `Err`: why it stopped on its own (a loop error, or its handler panicked).
    /// Its socket is closed: the kernel now spreads its datagrams over the other shards.
    ShardStopped {
        /// Which shard.
        shard: usize,
        /// How it ended.
        outcome: Result<&'a ShardExit, &'a EngineError>,
    },
    /// A token sent with [`EngineNotifier::notify`].
    Notified(u64),
    /// Every shard has stopped and every event was delivered: nothing is left to wait for.
    AllStopped,
}

/// Why [`EngineNotifier::notify`] did not deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// [`EngineNotifier::CAPACITY`] notifications already wait to be taken.
    #[error("{} notifications already wait to be taken", EngineNotifier::CAPACITY)]
    Full,
    /// The engine handle is gone.
    #[error("the engine handle is gone")]
    Closed,
}

/// A cloneable, `Send` way to wake a thread blocked in [`EngineHandle::wait_event`] with a
/// token of the caller's choosing (the binary's signal thread sends signal numbers).
#[derive(Debug, Clone)]
pub struct EngineNotifier {
    tx: SyncSender<Msg>,
    /// Notifications sent and not yet taken; bounded by `CAPACITY`, so that the channel always
    /// has room for the shards' own reports.
    queued: Arc<AtomicUsize>,
}

impl EngineNotifier {
    /// The most notifications that may wait to be taken.
    pub const CAPACITY: usize = 64;

    pub(super) fn new(tx: SyncSender<Msg>) -> Self {
        Self {
            tx,
            queued: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Queues `token` for the engine handle's next [`EngineHandle::wait_event`]. Never blocks:
    /// when [`EngineNotifier::CAPACITY`] tokens already wait, it returns
    /// [`NotifyError::Full`].
    pub fn notify(&self, token: u64) -> Result<(), NotifyError> {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= Self::CAPACITY {
            self.taken();
            return Err(NotifyError::Full);
        }
        match self.tx.try_send(Msg::Notified(token)) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.taken();
                Err(match e {
                    TrySendError::Full(_) => NotifyError::Full,
                    TrySendError::Disconnected(_) => NotifyError::Closed,
                })
            }
        }
    }

    /// One notification left the queue.
    pub(super) fn taken(&self) {
        self.queued.fetch_sub(1, Ordering::AcqRel);
    }
}

impl EngineHandle {
    /// A notifier whose tokens arrive through [`EngineHandle::wait_event`].
    pub fn notifier(&self) -> EngineNotifier {
        self.notifier.clone()
    }

    /// Blocks until the next event: a shard stopped (with the reason), a notification, or
    /// [`EngineEvent::AllStopped`] once no shard runs and no event waits. Events arrive in the
    /// order they happened.
    pub fn wait_event(&mut self) -> EngineEvent<'_> {
        self.next_event(None).unwrap_or(EngineEvent::AllStopped)
    }

    /// Like [`EngineHandle::wait_event`], giving up after `timeout` (`None`).
    pub fn wait_event_timeout(&mut self, timeout: Duration) -> Option<EngineEvent<'_>> {
        self.next_event(Some(Instant::now() + timeout))
    }

    fn next_event(&mut self, deadline: Option<Instant>) -> Option<EngineEvent<'_>> {
        loop {
            let msg = match self.events.try_recv() {
                Ok(msg) => msg,
                Err(TryRecvError::Empty) if self.shards.iter().any(|s| s.running()) => {
                    let received = match deadline {
                        None => self
                            .events
                            .recv()
                            .map_err(|_| RecvTimeoutError::Disconnected),
                        Some(d) => self
                            .events
                            .recv_timeout(d.saturating_duration_since(Instant::now())),
                    };
                    match received {
                        Ok(msg) => msg,
                        Err(RecvTimeoutError::Timeout) => return None,
                        // The handle holds a sender: this cannot happen.
                        Err(RecvTimeoutError::Disconnected) => {
                            return Some(EngineEvent::AllStopped);
                        }
                    }
                }
                Err(_) => return Some(EngineEvent::AllStopped),
            };
            match msg {
                Msg::Ready(_) => {}
                Msg::Notified(token) => {
                    self.notifier.taken();
                    return Some(EngineEvent::Notified(token));
                }
                Msg::Exited(shard, exit) => {
                    let slot = &mut self.shards[shard];
                    slot.seen = true;
                    let outcome = slot.exit.insert(*exit).as_ref();
                    return Some(EngineEvent::ShardStopped { shard, outcome });
                }
            }
        }
    }
}
