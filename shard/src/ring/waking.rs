//! A ring producer that wakes its parked consumer, and a blocking consumer loop for tests
//! and benchmarks.
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::io;

use super::eventfd::EventFd;
use super::park::{Notifier, ParkDecision, Parker, Wake};
use super::spsc::{ClosedError, Consumer, Producer, TryRecvError, TrySendError};

/// A [`Producer`] paired with the [`Notifier`] of its consumer's shard.
///
/// Sends do not wake by themselves (the wake check costs a `SeqCst` fence): push one or many
/// items, then call [`notify`](Self::notify) once. Dropping it closes the ring *and then*
/// wakes the consumer if it is parked, so a sleeping consumer sees
/// [`TryRecvError::Closed`](super::TryRecvError::Closed).
pub struct WakingProducer<T, W: Wake> {
    ring: Producer<T>,
    notifier: Notifier<W>,
}

impl<T, W: Wake> WakingProducer<T, W> {
    /// Pairs a ring's producer with a notifier for the ring's consumer.
    pub fn new(ring: Producer<T>, notifier: Notifier<W>) -> Self {
        Self { ring, notifier }
    }

    /// [`Producer::try_send`]; does not wake.
    #[inline]
    pub fn try_send(&mut self, item: T) -> Result<(), TrySendError<T>> {
        self.ring.try_send(item)
    }

    /// [`Producer::send_batch`]; does not wake.
    pub fn send_batch(&mut self, items: &mut VecDeque<T>) -> Result<usize, ClosedError> {
        self.ring.send_batch(items)
    }

    /// [`Producer::send_iter`]; does not wake.
    pub fn send_iter<I: Iterator<Item = T>>(
        &mut self,
        items: &mut I,
    ) -> Result<usize, ClosedError> {
        self.ring.send_iter(items)
    }

    /// [`Notifier::notify`]: wakes the consumer if it is parked. Returns whether it did.
    pub fn notify(&mut self) -> io::Result<bool> {
        self.notifier.notify()
    }

    /// `try_send`, then `notify` if the item went in.
    pub fn send_and_notify(&mut self, item: T) -> Result<(), TrySendError<T>> {
        self.ring.try_send(item)?;
        if let Err(error) = self.notifier.notify() {
            tracing::warn!(%error, "waking the consumer shard failed; will retry on next notify");
        }
        Ok(())
    }

    /// The ring's producer end.
    pub fn ring(&mut self) -> &mut Producer<T> {
        &mut self.ring
    }

    /// The notifier.
    pub fn notifier(&self) -> &Notifier<W> {
        &self.notifier
    }

    /// Wakes sent so far.
    pub fn wakes(&self) -> u64 {
        self.notifier.wakes()
    }
}

impl<T, W: Wake> Drop for WakingProducer<T, W> {
    fn drop(&mut self) {
        // `closed` first (Release), then the fence and `parked` check inside `notify`: the
        // same Dekker order as for an item, so a parked consumer cannot miss the close.
        self.ring.close();
        if let Err(error) = self.notifier.notify() {
            tracing::warn!(%error, "waking the consumer shard on close failed");
        }
    }
}

impl<T, W: Wake> std::fmt::Debug for WakingProducer<T, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WakingProducer")
            .field("ring", &self.ring)
            .field("notifier", &self.notifier)
            .finish()
    }
}

/// Receives one item, sleeping on `eventfd` while the ring is empty: `try_recv`; if empty,
/// [`Parker::park`] with [`Consumer::has_work`] as the re-check; if still empty, sleep in
/// [`EventFd::wait`] (no CPU used) and [`Parker::unparked`]. Returns `Ok(None)` once the ring
/// is empty and the producer is gone.
///
/// `eventfd` must be the one the producer's [`Notifier`] wakes (an `EventFd` or an
/// `Arc<EventFd>` of it).
pub fn recv_blocking<T>(
    consumer: &mut Consumer<T>,
    parker: &Parker,
    eventfd: &EventFd,
) -> io::Result<Option<T>> {
    recv_blocking_with(consumer, parker, || eventfd.wait().map(drop))
}

/// [`recv_blocking`] with any sleep: `sleep` must return once a wake the producer's
/// [`Notifier`] delivers has arrived (or earlier: a spurious return costs one more loop). For
/// a futex sleep, call [`Parker::sleep_on_futex`] first and pass
/// `|| futex::wait(parker.futex_word(), Parker::FUTEX_PARKED)`.
pub fn recv_blocking_with<T>(
    consumer: &mut Consumer<T>,
    parker: &Parker,
    mut sleep: impl FnMut() -> io::Result<()>,
) -> io::Result<Option<T>> {
    loop {
        match consumer.try_recv() {
            Ok(item) => return Ok(Some(item)),
            Err(TryRecvError::Closed) => return Ok(None),
            Err(TryRecvError::Empty) => {}
        }
        match parker.park(|| consumer.has_work()) {
            ParkDecision::Sleep => {
                sleep()?;
                parker.unparked();
            }
            // A wake in flight makes a later sleep return at once: one extra loop, no harm.
            ParkDecision::Cancelled { .. } => {}
        }
    }
}
