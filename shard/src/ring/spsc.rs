//! A bounded, wait-free, single-producer single-consumer ring.
//!
//! # Layout
//!
//! ```text
//!  Producer<T> (producer core)          Consumer<T> (consumer core)
//!  +----------------------+             +----------------------+
//!  | tail        (owned)  |             | head        (owned)  |
//!  | head_cache  (stale)  |             | tail_cache  (stale)  |
//!  +----------+-----------+             +-----------+----------+
//!             |        Arc<Shared<T>>               |
//!             v                                     v
//!  +------------------------------------------------------------------+
//!  | head: CachePadded<AtomicUsize>   written by consumer only         |  cache line A
//!  +------------------------------------------------------------------+
//!  | tail: CachePadded<AtomicUsize>   written by producer only         |  cache line B
//!  +------------------------------------------------------------------+
//!  | closed: AtomicBool | capacity | slots ptr   (read-mostly)         |  cache line C
//!  +------------------------------------------------------------------+
//!  slots: [UnsafeCell<MaybeUninit<T>>; capacity]
//!         +-----+-----+-----+-----+-----+
//!         |     |  x  |  x  |  x  |     |     x = initialised item
//!         +-----+-----+-----+-----+-----+
//!                  ^                 ^
//!                head              tail       (positions taken modulo capacity)
//! ```
//!
//! `head` and `tail` are *positions* in `0 .. 2 * capacity`; the slot of a position is the
//! position modulo `capacity` (one compare and subtract, never a division). Counting to
//! `2 * capacity` rather than `capacity` tells a full ring (`tail - head == capacity`) from an
//! empty one (`tail == head`) without wasting a slot, so the capacity is exactly the one asked
//! for, whatever it is (rtrb does the same).
//!
//! Each side keeps a private copy of the other side's index (`head_cache`, `tail_cache`) and
//! reloads the shared one only when the copy says it cannot proceed (producer: "full";
//! consumer: "empty"). In steady state the producer writes line B and the consumer writes line
//! A, and neither reads the other's line on every operation: that is the rigtorp / rtrb
//! technique, worth more than an order of magnitude on a cross-core ring.
//!
//! # Invariants
//!
//! 1. Only the producer stores `tail`; only the consumer stores `head`.
//! 2. `0 <= tail - head (mod 2 * capacity) <= capacity`; the slots of positions
//!    `head .. tail` hold initialised items and every other slot is uninitialised.
//! 3. The producer touches only slots in `tail .. head + capacity` (free), the consumer only
//!    slots in `head .. tail` (full); a cached index is never ahead of the real one, so a stale
//!    cache can only make a side see *less* room or *fewer* items, never more.
//! 4. `closed` goes from `false` to `true` once, when either end is dropped, after that end's
//!    last index store.
//! 5. Items still in the ring when both ends are gone are dropped by `Shared::drop`, which
//!    runs exactly once (when the last `Arc` goes); items are moved out by `try_recv` /
//!    `recv_batch` and then owned by the caller. So every item is dropped exactly once.
//!
//! # Memory ordering
//!
//! * Producer: write slot(s), then `tail.store(Release)`. Consumer: `tail.load(Acquire)`, then
//!   read slot(s). The Release/Acquire pair makes the slot writes happen-before the reads of
//!   every position the consumer observes as filled. Nothing stronger is needed: there is one
//!   writer per index, so no read-modify-write and no total order are involved.
//! * Consumer: read (move out of) slot(s), then `head.store(Release)`. Producer:
//!   `head.load(Acquire)`, then overwrite slot(s). This pair makes the consumer's reads
//!   happen-before the producer's reuse of the slot, so a slot is never overwritten while it
//!   is being read.
//! * Close: an end's drop does `closed.store(true, Release)` after its last index store. The
//!   consumer, seeing the ring empty, loads `closed` with Acquire and, if set, reloads `tail`:
//!   the Acquire synchronises with the producer's Release, so that reload sees the producer's
//!   final `tail` and no item pushed before the drop is reported as `Closed`. The producer
//!   reads `closed` Relaxed: it only decides whether to hand the item back, and a producer that
//!   races a consumer's drop has its item dropped with the ring, like any channel.
//! * Each operation costs at most one Acquire load of the other side's index (only when the
//!   cached copy is exhausted), one Release store of its own index, and one load of `closed`,
//!   a line that is never written in steady state. On x86 the Acquire and Release are plain
//!   `mov`s. Batch operations move any number of items for the same cost.
//!
//! Nothing here blocks, spins, yields or enters the kernel: a full ring returns
//! [`TrySendError::Full`] at once (compare the freenet node hung in crossbeam's unbounded
//! back-off on a full channel). Waking a parked consumer is a separate, explicit step
//! (see [`super::park`]).
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::fmt;
use std::mem::MaybeUninit;

use crossbeam_utils::CachePadded;

use super::sync::{Arc, AtomicBool, AtomicUsize, Ordering, UnsafeCell};

/// The state both ends share. See the module documentation for the layout and invariants.
struct Shared<T> {
    /// Next position the consumer reads. Stored only by the consumer.
    head: CachePadded<AtomicUsize>,
    /// Next position the producer writes. Stored only by the producer.
    tail: CachePadded<AtomicUsize>,
    /// Set once, when either end is dropped.
    closed: AtomicBool,
    capacity: usize,
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
}

/// Number of items between `head` and `tail`.
#[inline(always)]
fn distance(capacity: usize, head: usize, tail: usize) -> usize {
    if tail >= head {
        tail - head
    } else {
        tail + 2 * capacity - head
    }
}

/// `pos + n`, wrapped into `0 .. 2 * capacity`. Requires `n <= capacity`.
#[inline(always)]
fn advance(capacity: usize, pos: usize, n: usize) -> usize {
    debug_assert!(n <= capacity && pos < 2 * capacity);
    let next = pos + n;
    if next >= 2 * capacity {
        next - 2 * capacity
    } else {
        next
    }
}

/// Slot index of position `pos`.
#[inline(always)]
fn slot(capacity: usize, pos: usize) -> usize {
    // Positions are always below `2 * capacity` (`advance` wraps them), so the result is
    // below `capacity`.
    debug_assert!(pos < 2 * capacity);
    if pos >= capacity { pos - capacity } else { pos }
}

impl<T> Shared<T> {
    /// Moves `item` into the slot of position `pos`.
    ///
    /// # Safety
    ///
    /// Only the producer may call this, and only for a position in its free range
    /// (`tail .. head + capacity` by an Acquire-loaded or cached `head`): the slot must be
    /// uninitialised and not concurrently accessed.
    #[inline(always)]
    unsafe fn write(&self, pos: usize, item: T) {
        self.slots[slot(self.capacity, pos)].with_mut(|ptr| {
            // SAFETY: the caller guarantees exclusive access to this free slot (invariant 3),
            // so writing cannot race a read and overwrites no live item.
            unsafe { ptr.write(MaybeUninit::new(item)) }
        });
    }

    /// Moves the item out of the slot of position `pos`.
    ///
    /// # Safety
    ///
    /// Only the consumer may call this, only for a position in `head .. tail` with `tail`
    /// Acquire-loaded (or cached from such a load), and at most once per filling: the slot must
    /// be initialised, and the caller must advance `head` past it before reading it again.
    #[inline(always)]
    unsafe fn read(&self, pos: usize) -> T {
        self.slots[slot(self.capacity, pos)].with(|ptr| {
            // SAFETY: the caller guarantees the slot holds an initialised item published by
            // the producer's Release store of `tail`, which the caller has Acquire-loaded;
            // the producer does not touch it until `head` moves past it.
            unsafe { ptr.read().assume_init() }
        })
    }
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        if !std::mem::needs_drop::<T>() {
            return;
        }
        // The last `Arc` is going: both ends are gone and `Arc`'s drop made their index
        // stores visible, so Relaxed loads read the final positions.
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Relaxed);
        let mut pos = head;
        for _ in 0..distance(self.capacity, head, tail) {
            // SAFETY: no end exists any more, so this thread has exclusive access; positions
            // `head .. tail` are initialised (invariant 2) and each is read exactly once here.
            drop(unsafe { self.read(pos) });
            pos = advance(self.capacity, pos, 1);
        }
    }
}

/// Creates a ring holding at most `capacity` items and returns its two ends.
///
/// The capacity is exact: a ring of capacity 3 holds 3 items, the fourth `try_send` returns
/// [`TrySendError::Full`].
///
/// # Panics
///
/// If `capacity` is 0 or greater than `usize::MAX / 4`.
///
/// # Examples
///
/// ```
/// use ringwire_shard::ring::{TryRecvError, TrySendError, channel};
///
/// let (mut tx, mut rx) = channel(2);
/// assert_eq!(tx.try_send(1), Ok(()));
/// assert_eq!(tx.try_send(2), Ok(()));
/// assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
/// assert_eq!(rx.try_recv(), Ok(1));
/// drop(tx);
/// assert_eq!(rx.try_recv(), Ok(2));
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
/// ```
pub fn channel<T>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    assert!(capacity >= 1, "ring capacity must be at least 1");
    assert!(
        capacity <= usize::MAX / 4,
        "ring capacity {capacity} is too large"
    );
    let slots = (0..capacity)
        .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
        .collect::<Box<[_]>>();
    let shared = Arc::new(Shared {
        head: CachePadded::new(AtomicUsize::new(0)),
        tail: CachePadded::new(AtomicUsize::new(0)),
        closed: AtomicBool::new(false),
        capacity,
        slots,
    });
    let producer = Producer {
        shared: Arc::clone(&shared),
        tail: 0,
        head_cache: 0,
        capacity,
    };
    let consumer = Consumer {
        shared,
        head: 0,
        tail_cache: 0,
        capacity,
    };
    (producer, consumer)
}

/// The sending end of a ring. Dropping it closes the ring; the consumer still receives the
/// items already in it, then [`TryRecvError::Closed`].
pub struct Producer<T> {
    shared: Arc<Shared<T>>,
    /// Mirror of `shared.tail`; this end is its only writer.
    tail: usize,
    /// Last `shared.head` seen; never ahead of the real one.
    head_cache: usize,
    capacity: usize,
}

/// The receiving end of a ring. Dropping it closes the ring: further sends return
/// [`TrySendError::Closed`] with the item.
pub struct Consumer<T> {
    shared: Arc<Shared<T>>,
    /// Mirror of `shared.head`; this end is its only writer.
    head: usize,
    /// Last `shared.tail` seen; never ahead of the real one.
    tail_cache: usize,
    capacity: usize,
}

// SAFETY: a `Producer` moves `T`s into the ring and nothing else can reach them through it
// (the consumer only takes them out), so sending the producer to another thread is sound
// when `T: Send`. The shared indexes are atomics. It is not `Sync`: its methods take `&mut`.
unsafe impl<T: Send> Send for Producer<T> {}

// SAFETY: as for `Producer`: the consumer only moves `T`s out, one owner at a time.
unsafe impl<T: Send> Send for Consumer<T> {}

impl<T> Producer<T> {
    /// Moves `item` into the ring, or hands it back at once.
    ///
    /// Returns [`TrySendError::Closed`] if the consumer is gone (checked first: a closed ring
    /// never reports `Full`), [`TrySendError::Full`] if the ring holds `capacity` items.
    /// Never blocks, spins or makes a system call.
    #[inline]
    pub fn try_send(&mut self, item: T) -> Result<(), TrySendError<T>> {
        if self.shared.closed.load(Ordering::Relaxed) {
            return Err(TrySendError::Closed(item));
        }
        if distance(self.capacity, self.head_cache, self.tail) == self.capacity {
            // Acquire: the consumer's reads of the slots it frees happen-before we reuse them.
            self.head_cache = self.shared.head.load(Ordering::Acquire);
            if distance(self.capacity, self.head_cache, self.tail) == self.capacity {
                return Err(TrySendError::Full(item));
            }
        }
        // SAFETY: the ring is not full by a `head` no newer than the real one, so the slot of
        // `tail` is free, and this is the producer.
        unsafe { self.shared.write(self.tail, item) };
        self.tail = advance(self.capacity, self.tail, 1);
        // Release: publishes the slot write to the consumer's Acquire load of `tail`.
        self.shared.tail.store(self.tail, Ordering::Release);
        Ok(())
    }

    /// Moves as many items as fit from the front of `items` into the ring, in order, with one
    /// index store (and at most one load of the consumer's index).
    ///
    /// Returns how many were moved; the rest stay in `items`, so nothing is lost. `Ok(0)`
    /// with `items` non-empty means the ring is full. If the consumer is gone, returns
    /// [`ClosedError`] and leaves `items` untouched. Never blocks or spins.
    pub fn send_batch(&mut self, items: &mut VecDeque<T>) -> Result<usize, ClosedError> {
        if self.shared.closed.load(Ordering::Relaxed) {
            return Err(ClosedError);
        }
        let wanted = items.len();
        if wanted == 0 {
            return Ok(0);
        }
        let mut free = self.capacity - distance(self.capacity, self.head_cache, self.tail);
        if free < wanted {
            // Acquire: as in `try_send`.
            self.head_cache = self.shared.head.load(Ordering::Acquire);
            free = self.capacity - distance(self.capacity, self.head_cache, self.tail);
        }
        let n = free.min(wanted);
        if n == 0 {
            return Ok(0);
        }
        // The free positions `tail .. tail + n` are at most two runs of slots: up to the end
        // of the array, then from its start.
        let start = slot(self.capacity, self.tail);
        let first = n.min(self.capacity - start);
        let mut drained = items.drain(..n);
        for run in [
            &self.shared.slots[start..start + first],
            &self.shared.slots[..n - first],
        ] {
            for (cell, item) in run.iter().zip(&mut drained) {
                cell.with_mut(|ptr| {
                    // SAFETY: the cells walked are those of positions `tail .. tail + n` with
                    // `n <= free`, so each is free (invariant 3) and only the producer
                    // touches it.
                    unsafe { ptr.write(MaybeUninit::new(item)) }
                });
            }
        }
        drop(drained);
        self.tail = advance(self.capacity, self.tail, n);
        // Release: publishes all `n` slot writes at once.
        self.shared.tail.store(self.tail, Ordering::Release);
        Ok(n)
    }

    /// Moves items pulled from `items` into the ring, in order, with one index store (and at
    /// most one load of the consumer's index). Pulls an item only once it has a free slot for
    /// it, so the items not sent are still in the iterator: nothing is lost.
    ///
    /// Returns how many were moved (`Ok(0)`: the ring is full or `items` was empty), or
    /// [`ClosedError`] without pulling anything if the consumer is gone. If `items` panics,
    /// the items already pulled are leaked (not dropped, never received); the ring stays
    /// consistent.
    pub fn send_iter<I: Iterator<Item = T>>(
        &mut self,
        items: &mut I,
    ) -> Result<usize, ClosedError> {
        if self.shared.closed.load(Ordering::Relaxed) {
            return Err(ClosedError);
        }
        let mut free = self.capacity - distance(self.capacity, self.head_cache, self.tail);
        if free < items.size_hint().0.max(1) {
            // Acquire: as in `try_send`.
            self.head_cache = self.shared.head.load(Ordering::Acquire);
            free = self.capacity - distance(self.capacity, self.head_cache, self.tail);
        }
        let start = slot(self.capacity, self.tail);
        let first = free.min(self.capacity - start);
        let mut n = 0;
        'fill: for run in [
            &self.shared.slots[start..start + first],
            &self.shared.slots[..free - first],
        ] {
            for cell in run {
                let Some(item) = items.next() else {
                    break 'fill;
                };
                cell.with_mut(|ptr| {
                    // SAFETY: the cells walked are those of positions `tail .. tail + free`,
                    // each free (invariant 3) and touched only by the producer.
                    unsafe { ptr.write(MaybeUninit::new(item)) }
                });
                n += 1;
            }
        }
        if n > 0 {
            self.tail = advance(self.capacity, self.tail, n);
            // Release: publishes all `n` slot writes at once.
            self.shared.tail.store(self.tail, Ordering::Release);
        }
        Ok(n)
    }

    /// The capacity the ring was created with.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Items in the ring now (the consumer may be taking some concurrently).
    pub fn len(&self) -> usize {
        distance(
            self.capacity,
            self.shared.head.load(Ordering::Acquire),
            self.tail,
        )
    }

    /// `true` if the ring holds no item now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `true` if the ring holds `capacity` items now.
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity
    }

    /// `true` once the consumer has been dropped.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Marks the ring closed. Called by `Drop`; exposed to the crate so a wrapper can close
    /// the ring and then wake the consumer (see [`super::WakingProducer`]).
    pub(super) fn close(&self) {
        // Release: orders every earlier `tail` store before `closed` (see module docs).
        self.shared.closed.store(true, Ordering::Release);
    }
}

impl<T> Drop for Producer<T> {
    fn drop(&mut self) {
        self.close();
    }
}

impl<T> Consumer<T> {
    /// Takes the oldest item out of the ring.
    ///
    /// Returns [`TryRecvError::Empty`] if there is none and the producer is alive,
    /// [`TryRecvError::Closed`] only once the ring is empty *and* the producer is gone.
    /// Never blocks, spins or makes a system call.
    #[inline]
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        if self.head == self.tail_cache {
            self.refresh_tail()?;
        }
        // SAFETY: `head != tail_cache`, `tail_cache` came from an Acquire load and is no newer
        // than the real `tail`, so the slot is initialised; this is the consumer and it
        // advances `head` right after.
        let item = unsafe { self.shared.read(self.head) };
        self.head = advance(self.capacity, self.head, 1);
        // Release: our read of the slot happens-before the producer reuses it.
        self.shared.head.store(self.head, Ordering::Release);
        Ok(item)
    }

    /// Moves up to `max` items, oldest first, onto the end of `out` with one index store (and
    /// at most one load of the producer's index). Returns how many were moved, at least one.
    ///
    /// Returns `Ok(0)` only when `max` is 0; otherwise [`TryRecvError::Empty`] or
    /// [`TryRecvError::Closed`] as [`try_recv`](Self::try_recv) does. `out` is grown before
    /// any item leaves the ring, so an allocation failure loses nothing.
    pub fn recv_batch(&mut self, out: &mut Vec<T>, max: usize) -> Result<usize, TryRecvError> {
        if max == 0 {
            return Ok(0);
        }
        if distance(self.capacity, self.head, self.tail_cache) < max {
            self.refresh_tail()?;
        }
        let n = distance(self.capacity, self.head, self.tail_cache).min(max);
        out.reserve(n);
        // Positions `head .. head + n`: at most two runs of slots, as in `send_batch`.
        let start = slot(self.capacity, self.head);
        let first = n.min(self.capacity - start);
        for run in [
            &self.shared.slots[start..start + first],
            &self.shared.slots[..n - first],
        ] {
            out.extend(run.iter().map(|cell| {
                cell.with(|ptr| {
                    // SAFETY: the cells walked are those of positions `head .. head + n` within
                    // `head .. tail_cache`, initialised and published (see `try_recv`); each
                    // is read once, and `head` moves past them below. `out` has room for all
                    // `n` already, so nothing between the reads can panic and leave `head`
                    // behind.
                    unsafe { ptr.read().assume_init() }
                })
            }));
        }
        self.head = advance(self.capacity, self.head, n);
        // Release: as in `try_recv`, for all `n` slots at once.
        self.shared.head.store(self.head, Ordering::Release);
        Ok(n)
    }

    /// Hands up to `max` items, oldest first, to `f`, then frees their slots with one index
    /// store (and at most one load of the producer's index). Returns how many, at least one;
    /// errors as [`recv_batch`](Self::recv_batch) does. No buffer in between: the items go
    /// from the ring straight to `f`.
    ///
    /// If `f` panics, the items it was given (including the one it panicked on) are gone from
    /// the ring and the others stay, in order.
    pub fn recv_with(&mut self, max: usize, mut f: impl FnMut(T)) -> Result<usize, TryRecvError> {
        if max == 0 {
            return Ok(0);
        }
        if distance(self.capacity, self.head, self.tail_cache) < max {
            self.refresh_tail()?;
        }
        let n = distance(self.capacity, self.head, self.tail_cache).min(max);
        let start = slot(self.capacity, self.head);
        let first = n.min(self.capacity - start);
        let shared = &*self.shared;
        let mut done = ReleaseHead {
            head: &mut self.head,
            shared: &shared.head,
            capacity: self.capacity,
            taken: 0,
        };
        for run in [
            &shared.slots[start..start + first],
            &shared.slots[..n - first],
        ] {
            for cell in run {
                let item = cell.with(|ptr| {
                    // SAFETY: the cells walked are those of positions `head .. head + n` within
                    // `head .. tail_cache`, initialised and published (see `try_recv`); each
                    // is read once, and `done` moves `head` past it even if `f` panics.
                    unsafe { ptr.read().assume_init() }
                });
                done.taken += 1;
                f(item);
            }
        }
        Ok(n)
    }

    /// Reloads `tail`. Errs if the ring is then empty: `Closed` if the producer is gone.
    #[inline]
    fn refresh_tail(&mut self) -> Result<(), TryRecvError> {
        // Acquire: the producer's slot writes happen-before our reads of them.
        self.tail_cache = self.shared.tail.load(Ordering::Acquire);
        if self.head != self.tail_cache {
            return Ok(());
        }
        // Acquire pairs with the producer's Release in `close`, which came after its last
        // `tail` store: reloading `tail` now sees every item it ever pushed.
        if !self.shared.closed.load(Ordering::Acquire) {
            return Err(TryRecvError::Empty);
        }
        self.tail_cache = self.shared.tail.load(Ordering::Acquire);
        if self.head == self.tail_cache {
            Err(TryRecvError::Closed)
        } else {
            Ok(())
        }
    }

    /// The capacity the ring was created with.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Items in the ring now (the producer may be adding some concurrently).
    pub fn len(&self) -> usize {
        distance(
            self.capacity,
            self.head,
            self.shared.tail.load(Ordering::Acquire),
        )
    }

    /// `true` if the ring holds no item now. Reads the producer's index afresh, so it is the
    /// check to make after [`Parker::prepare_park`](super::Parker::prepare_park).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `true` once the producer has been dropped (items may still be waiting in the ring).
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// `true` if [`try_recv`](Self::try_recv) would not return `Empty`: an item is waiting or
    /// the producer is gone. The re-check to run after
    /// [`Parker::prepare_park`](super::Parker::prepare_park).
    pub fn has_work(&self) -> bool {
        !self.is_empty() || self.is_closed()
    }
}

/// Moves the consumer's `head` past the items taken by `recv_with`, on return or unwind.
struct ReleaseHead<'a> {
    head: &'a mut usize,
    shared: &'a AtomicUsize,
    capacity: usize,
    taken: usize,
}

impl Drop for ReleaseHead<'_> {
    fn drop(&mut self) {
        if self.taken > 0 {
            *self.head = advance(self.capacity, *self.head, self.taken);
            // Release: our reads of the slots happen-before the producer reuses them.
            self.shared.store(*self.head, Ordering::Release);
        }
    }
}

impl<T> Drop for Consumer<T> {
    fn drop(&mut self) {
        // Release: nothing to publish but our `head` stores; items still in the ring are
        // dropped with `Shared` once the producer is gone too.
        self.shared.closed.store(true, Ordering::Release);
    }
}

impl<T> fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl<T> fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Why [`Producer::try_send`] did not take an item; the item comes back either way.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum TrySendError<T> {
    /// The ring holds `capacity` items. Retry after the consumer drains some, or shed.
    Full(T),
    /// The consumer is gone; no send will ever succeed.
    Closed(T),
}

impl<T> TrySendError<T> {
    /// Takes back the item that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            Self::Full(item) | Self::Closed(item) => item,
        }
    }

    /// `true` for [`TrySendError::Full`].
    pub fn is_full(&self) -> bool {
        matches!(self, Self::Full(_))
    }

    /// `true` for [`TrySendError::Closed`].
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed(_))
    }
}

// Like std's `SendError`: no `T: Debug` bound, so the error works with `?` for any item.
impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("Full(..)"),
            Self::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("sending on a full ring"),
            Self::Closed(_) => f.write_str("sending on a ring whose consumer is gone"),
        }
    }
}

impl<T> std::error::Error for TrySendError<T> {}

/// Why [`Consumer::try_recv`] or [`Consumer::recv_batch`] returned no item.
#[derive(Debug, PartialEq, Eq, Clone, Copy, thiserror::Error)]
pub enum TryRecvError {
    /// No item now; the producer is alive.
    #[error("receiving on an empty ring")]
    Empty,
    /// No item, and the producer is gone: none will ever come.
    #[error("receiving on an empty ring whose producer is gone")]
    Closed,
}

/// [`Producer::send_batch`] found the consumer gone; the items were left with the caller.
#[derive(Debug, PartialEq, Eq, Clone, Copy, thiserror::Error)]
#[error("sending on a ring whose consumer is gone")]
pub struct ClosedError;
