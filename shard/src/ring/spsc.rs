//! A bounded, wait-free, single-producer single-consumer ring.
//!
//! # Layout
//!
//! ```text
//!  Producer<T> (producer core)          Consumer<T> (consumer core)
//!  +----------------------+             +----------------------+
//!  | tail, tail_slot      |             | head, head_slot      |
//!  | head_cache  (stale)  |             | tail_cache  (stale)  |
//!  | slots ptr, capacity  |             | slots ptr, capacity  |
//!  +----------+-----------+             +-----------+----------+
//!             |        Arc<Shared<T>>               |
//!             v                                     v
//!  +------------------------------------------------------------------+
//!  | head: CachePadded<AtomicU64>     written by consumer only         |  cache line A
//!  +------------------------------------------------------------------+
//!  | tail: CachePadded<AtomicU64>     written by producer only         |  cache line B
//!  +------------------------------------------------------------------+
//!  | closed: AtomicBool | capacity | slots          (read-mostly)      |  cache line C
//!  +------------------------------------------------------------------+
//!  slots: [UnsafeCell<MaybeUninit<T>>; capacity]
//!         +-----+-----+-----+-----+-----+
//!         |     |  x  |  x  |  x  |     |     x = initialised item
//!         +-----+-----+-----+-----+-----+
//!                  ^                 ^
//!              head_slot         tail_slot
//! ```
//!
//! `head` and `tail` are free-running `u64` *positions*: they only ever grow (by wrapping
//! addition), and the number of items in the ring is `tail - head` (wrapping subtraction),
//! which tells a full ring (`capacity`) from an empty one (`0`) without wasting a slot, so the
//! capacity is exactly the one asked for. A `u64` position wraps after 2^64 items, more than
//! five centuries at a billion items a second, so `position mod capacity` is the slot of a
//! position for the life of any ring. Each end keeps the slot of its own position
//! (`tail_slot`, `head_slot`) and advances it with a compare and subtract (a compare and
//! select of zero for a single item), never a division.
//!
//! Each end also keeps a private copy of the other end's position (`head_cache`,
//! `tail_cache`) and reloads the shared one only when the copy says it cannot proceed
//! (producer: "full"; consumer: "empty"), and a private copy of the slot pointer and the
//! capacity, so an operation whose cached position suffices reads no shared line at all but
//! the read-mostly `closed` flag (producer only). In steady state the producer writes line B
//! and the consumer writes line A, and neither reads the other's line on every operation:
//! that is the rigtorp / rtrb technique, worth more than an order of magnitude on a cross-core
//! ring. The `Arc` is touched only when an end is created or dropped, and an end drops it
//! from a copy of the pointer, so that the end's own address never escapes and a loop over
//! its operations can keep its positions in registers (`release_shared`).
//!
//! # Lazy publication of the consumer's position
//!
//! [`Consumer::try_recv`] stores `head` only every `publish_every` items (an eighth of the
//! capacity, at least 1, at most 32: every item on a ring below 16 slots), and always before
//! it returns an error (the ring is then empty, so the producer sees all of it free); batch
//! receives, [`Consumer::flush`] and the consumer's drop store it at once. A producer that
//! finds the ring full reloads `head` as before, so the consumer's stores and the producer's
//! reloads of that line happen once per `publish_every` items instead of once per item when
//! the producer runs ahead and keeps the ring near full (D83). The price: while the consumer
//! is between two stores, the producer sees up to `publish_every - 1` freed slots late, so
//! [`Producer::try_send`] can return `Full` with that many slots taken but not yet published,
//! and [`Producer::len`] counts them. It never sees a slot early, and a consumer that drains
//! until `Empty`, receives in batches or calls `flush` when it stops leaves nothing
//! unpublished.
//!
//! Batch operations on buffers ([`Producer::send_batch`], [`Consumer::recv_batch`]) move items
//! with block copies: the slots of positions `p .. p + n` are at most two runs (up to the end
//! of the array, then from its start), so a batch is at most two `memcpy`s per contiguous run
//! of the caller's buffer. The items are moved, not cloned: the copy in the ring owns them and
//! the caller's buffer forgets them.
//!
//! # Invariants
//!
//! 1. Only the producer stores `tail`; only the consumer stores `head`.
//! 2. `0 <= tail - head <= capacity`; the slots of positions `head .. tail` hold initialised
//!    items and every other slot is uninitialised.
//! 3. The producer touches only slots of positions in `tail .. head + capacity` (free), the
//!    consumer only those in `head .. tail` (full); a cached position is never ahead of the
//!    real one, so a stale cache can only make an end see *less* room or *fewer* items, never
//!    more.
//! 4. `tail_slot == tail mod capacity` and `head_slot == head mod capacity`.
//! 5. `closed` goes from `false` to `true` once, when either end is dropped, after that end's
//!    last position store.
//! 6. Items still in the ring when both ends are gone are dropped by `Shared::drop`, which
//!    runs exactly once (when the last `Arc` goes); items are moved out by `try_recv` /
//!    `recv_batch` and then owned by the caller. So every item is dropped exactly once.
//! 7. The stored `head` lags the consumer's own by less than `publish_every` (a lag only
//!    ever delays the producer's reuse of a slot, as a stale cache does), and equals it
//!    whenever a receive has just returned an error and once the consumer is dropped (so
//!    `Shared::drop` in 6 never drops an item the consumer took).
//!
//! # Memory ordering
//!
//! * Producer: write slot(s), then `tail.store(Release)`. Consumer: `tail.load(Acquire)`, then
//!   read slot(s). The Release/Acquire pair makes the slot writes happen-before the reads of
//!   every position the consumer observes as filled. Nothing stronger is needed: there is one
//!   writer per position, so no read-modify-write and no total order are involved.
//! * Consumer: read (move out of) slot(s), then `head.store(Release)`. Producer:
//!   `head.load(Acquire)`, then overwrite slot(s). This pair makes the consumer's reads
//!   happen-before the producer's reuse of the slot, so a slot is never overwritten while it
//!   is being read.
//! * Close: an end's drop does `closed.store(true, Release)` after its last position store.
//!   The consumer, seeing the ring empty, loads `closed` with Acquire and, if set, reloads
//!   `tail`: the Acquire synchronises with the producer's Release, so that reload sees the
//!   producer's final `tail` and no item pushed before the drop is reported as `Closed`. The
//!   producer reads `closed` Relaxed: it only decides whether to hand the item back, and a
//!   producer that races a consumer's drop has its item dropped with the ring, like any
//!   channel.
//! * Each operation costs at most one Acquire load of the other end's position (only when the
//!   cached copy is exhausted), one Release store of its own position (a single-item receive:
//!   one per `publish_every` items), and (producer) one load
//!   of `closed`, a line that is never written in steady state. On x86 the Acquire and Release
//!   are plain `mov`s. Batch operations move any number of items for the same cost.
//!
//! Nothing here blocks, spins, yields or enters the kernel: a full ring returns
//! [`TrySendError::Full`] at once (compare the freenet node hung in crossbeam's unbounded
//! back-off on a full channel). Waking a parked consumer is a separate, explicit step
//! (see [`super::park`]).
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::fmt;
use std::mem::{ManuallyDrop, MaybeUninit};

use crossbeam_utils::CachePadded;

use super::sync::{Arc, AtomicBool, AtomicU64, Ordering, UnsafeCell};

/// One slot of the ring. `UnsafeCell` and `MaybeUninit` are both `repr(transparent)`, so an
/// array of slots has the layout of an array of `T` (the block copies rely on it).
type Slot<T> = UnsafeCell<MaybeUninit<T>>;

/// The state both ends share. See the module documentation for the layout and invariants.
struct Shared<T> {
    /// Next position the consumer reads. Stored only by the consumer.
    head: CachePadded<AtomicU64>,
    /// Next position the producer writes. Stored only by the producer.
    tail: CachePadded<AtomicU64>,
    /// Set once, when either end is dropped.
    closed: AtomicBool,
    capacity: usize,
    slots: Box<[Slot<T>]>,
}

/// Number of items between positions `head` and `tail` (at most the capacity, a `usize`).
#[inline(always)]
fn distance(head: u64, tail: u64) -> usize {
    tail.wrapping_sub(head) as usize
}

/// The slot `n` places after slot `slot`. Requires `slot < capacity` and `n <= capacity`.
#[inline(always)]
fn slot_after(capacity: usize, slot: usize, n: usize) -> usize {
    debug_assert!(slot < capacity && n <= capacity);
    let next = slot + n;
    if next >= capacity {
        next - capacity
    } else {
        next
    }
}

/// The slot after slot `slot`, for the single-item paths. Requires `slot < capacity`, so the
/// next slot is at most `capacity` and "wrapped" is an equality: the step compiles to an
/// increment, a compare and a conditional move of zero, where [`slot_after`]'s general
/// `n` needs a subtraction as well.
#[inline(always)]
fn slot_after_one(capacity: usize, slot: usize) -> usize {
    debug_assert!(slot < capacity);
    let next = slot + 1;
    if next == capacity { 0 } else { next }
}

/// Writes `item` into slot `slot` of the array at `slots`.
///
/// # Safety
///
/// `slot` is in bounds of a live slot array, the slot is free (uninitialised) and only the
/// producer, which is the caller, touches it (invariant 3).
#[inline(always)]
unsafe fn write_slot<T>(slots: *const Slot<T>, slot: usize, item: T) {
    // SAFETY: in bounds and live by the caller's contract.
    let cell = unsafe { &*slots.add(slot) };
    cell.with_mut(|ptr| {
        // SAFETY: the caller guarantees exclusive access to this free slot, so writing
        // cannot race a read and overwrites no live item.
        unsafe { ptr.write(MaybeUninit::new(item)) }
    });
}

/// Moves the item out of slot `slot` of the array at `slots`.
///
/// # Safety
///
/// `slot` is in bounds of a live slot array and holds an initialised item published to the
/// caller (the consumer, or `Shared::drop` with both ends gone), which reads it at most once
/// per filling.
#[inline(always)]
unsafe fn read_slot<T>(slots: *const Slot<T>, slot: usize) -> T {
    // SAFETY: in bounds and live by the caller's contract.
    let cell = unsafe { &*slots.add(slot) };
    cell.with(|ptr| {
        // SAFETY: initialised and published by the caller's contract; no one writes it
        // until `head` moves past it.
        unsafe { ptr.read().assume_init() }
    })
}

/// Moves `count` items from `src` into slots `at .. at + count` (one run, no wrap): a
/// `memcpy`, or (under loom) one tracked write per slot.
///
/// # Safety
///
/// As [`write_slot`] for every slot of the run; `src` is valid for reading `count` items,
/// which the caller then treats as moved (never drops or reads again).
#[inline(always)]
unsafe fn copy_to_slots<T>(slots: *const Slot<T>, at: usize, src: *const T, count: usize) {
    #[cfg(not(loom))]
    if count > 0 {
        // SAFETY: the slots are in bounds, free and the producer's alone (caller); `Slot<T>`
        // has `T`'s layout; `src` is valid for `count` reads and cannot overlap the ring's
        // array. Writing through the pointer is allowed: every byte is inside an `UnsafeCell`.
        unsafe { std::ptr::copy_nonoverlapping(src, slots.add(at).cast::<T>().cast_mut(), count) };
    }
    #[cfg(loom)]
    for i in 0..count {
        // SAFETY: as above, slot by slot, so that loom sees each access.
        unsafe { write_slot(slots, at + i, src.add(i).read()) };
    }
}

/// Moves `count` items out of slots `at .. at + count` (one run, no wrap) to `dst`: a
/// `memcpy`, or (under loom) one tracked read per slot.
///
/// # Safety
///
/// As [`read_slot`] for every slot of the run; `dst` is valid for writing `count` items and
/// does not overlap the ring's array.
#[inline(always)]
unsafe fn copy_from_slots<T>(slots: *const Slot<T>, at: usize, dst: *mut T, count: usize) {
    #[cfg(not(loom))]
    if count > 0 {
        // SAFETY: the slots are in bounds, initialised and published to the consumer
        // (caller); `Slot<T>` has `T`'s layout; `dst` is valid for `count` writes and does not
        // overlap.
        unsafe { std::ptr::copy_nonoverlapping(slots.add(at).cast::<T>(), dst, count) };
    }
    #[cfg(loom)]
    for i in 0..count {
        // SAFETY: as above, slot by slot, so that loom sees each access.
        unsafe { dst.add(i).write(read_slot(slots, at + i)) };
    }
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        if !std::mem::needs_drop::<T>() {
            return;
        }
        // The last `Arc` is going: both ends are gone and `Arc`'s drop made their position
        // stores visible, so Relaxed loads read the final positions.
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Relaxed);
        // Invariant 4; the one division in the module.
        let mut slot = (head % self.capacity as u64) as usize;
        for _ in 0..distance(head, tail) {
            // SAFETY: no end exists any more, so this thread has exclusive access; the slots
            // of positions `head .. tail` are initialised (invariant 2) and each is read
            // exactly once here.
            drop(unsafe { read_slot(self.slots.as_ptr(), slot) });
            slot = slot_after(self.capacity, slot, 1);
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
/// // Below 16 slots `try_recv` publishes every slot at once, so this send finds room; on a
/// // larger ring the consumer would call `rx.flush()` first to guarantee it.
/// assert_eq!(tx.try_send(3), Ok(()));
/// drop(tx);
/// assert_eq!(rx.try_recv(), Ok(2));
/// assert_eq!(rx.try_recv(), Ok(3));
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
/// ```
pub fn channel<T>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    assert!(capacity >= 1, "ring capacity must be at least 1");
    assert!(
        capacity <= usize::MAX / 4,
        "ring capacity {capacity} is too large"
    );
    with_publish_interval(capacity, publish_interval(capacity))
}

/// [`channel`] with the consumer's single-item publication interval given (`1 ..= capacity`).
fn with_publish_interval<T>(capacity: usize, publish_every: usize) -> (Producer<T>, Consumer<T>) {
    let slots = (0..capacity)
        .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
        .collect::<Box<[_]>>();
    let shared = Arc::new(Shared {
        head: CachePadded::new(AtomicU64::new(0)),
        tail: CachePadded::new(AtomicU64::new(0)),
        closed: AtomicBool::new(false),
        capacity,
        slots,
    });
    // The array never moves: it is boxed inside the `Arc`, which both ends keep alive.
    let slots = shared.slots.as_ptr();
    let producer = Producer {
        shared: ManuallyDrop::new(Arc::clone(&shared)),
        slots,
        capacity,
        tail: 0,
        tail_slot: 0,
        head_cache: 0,
    };
    let consumer = Consumer {
        shared: ManuallyDrop::new(shared),
        slots,
        capacity,
        head: 0,
        head_slot: 0,
        tail_cache: 0,
        published: 0,
        publish_every: publish_every as u64,
    };
    (producer, consumer)
}

/// How many single items [`Consumer::try_recv`] takes between two stores of `head` on a ring
/// of `capacity`: an eighth of the ring, at least 1 (eager below 16 slots), at most 32.
fn publish_interval(capacity: usize) -> usize {
    (capacity / 8).clamp(1, 32)
}

/// [`channel`] whose consumer stores `head` every `publish_every` single items: for the loom
/// models, which need the lazy path at capacities loom can explore.
#[cfg(loom)]
pub fn channel_publishing_every<T>(
    capacity: usize,
    publish_every: usize,
) -> (Producer<T>, Consumer<T>) {
    assert!((1..=capacity).contains(&publish_every));
    with_publish_interval(capacity, publish_every)
}

/// The sending end of a ring. Dropping it closes the ring; the consumer still receives the
/// items already in it, then [`TryRecvError::Closed`].
pub struct Producer<T> {
    /// Released by `Drop`, which takes it out first (see `release_shared`).
    shared: ManuallyDrop<Arc<Shared<T>>>,
    /// `shared.slots`' array, valid as long as `shared` is.
    slots: *const Slot<T>,
    capacity: usize,
    /// Mirror of `shared.tail`; this end is its only writer.
    tail: u64,
    /// `tail mod capacity`.
    tail_slot: usize,
    /// Last `shared.head` seen; never ahead of the real one.
    head_cache: u64,
}

/// The receiving end of a ring. Dropping it closes the ring: further sends return
/// [`TrySendError::Closed`] with the item.
pub struct Consumer<T> {
    /// Released by `Drop`, which takes it out first (see `release_shared`).
    shared: ManuallyDrop<Arc<Shared<T>>>,
    /// `shared.slots`' array, valid as long as `shared` is.
    slots: *const Slot<T>,
    capacity: usize,
    /// Mirror of `shared.head`; this end is its only writer.
    head: u64,
    /// `head mod capacity`.
    head_slot: usize,
    /// Last `shared.tail` seen; never ahead of the real one.
    tail_cache: u64,
    /// Last value stored to `shared.head`; `head - published < publish_every` always.
    published: u64,
    /// `try_recv` stores `head` once `head - published` reaches this (see the module docs).
    publish_every: u64,
}

// SAFETY: a `Producer` moves `T`s into the ring and nothing else can reach them through it
// (the consumer only takes them out), so sending the producer to another thread is sound
// when `T: Send`. The shared positions are atomics; the slot pointer points into the array
// its `Arc` keeps alive. It is not `Sync`: its methods take `&mut`.
unsafe impl<T: Send> Send for Producer<T> {}

// SAFETY: as for `Producer`: the consumer only moves `T`s out, one owner at a time.
unsafe impl<T: Send> Send for Consumer<T> {}

impl<T> Producer<T> {
    /// Free slots by the cached `head`; reloads `head` (Acquire: the consumer's reads of the
    /// slots it frees happen-before we reuse them) when fewer than `wanted` are free.
    #[inline(always)]
    fn free(&mut self, wanted: usize) -> usize {
        let free = self.capacity - distance(self.head_cache, self.tail);
        if free >= wanted {
            return free;
        }
        self.head_cache = self.shared.head.load(Ordering::Acquire);
        self.capacity - distance(self.head_cache, self.tail)
    }

    /// Publishes `n` slots just written (Release: the slot writes happen-before the
    /// consumer's Acquire load of `tail`).
    #[inline(always)]
    fn publish(&mut self, n: usize) {
        self.tail = self.tail.wrapping_add(n as u64);
        self.tail_slot = slot_after(self.capacity, self.tail_slot, n);
        self.shared.tail.store(self.tail, Ordering::Release);
    }

    /// Moves `item` into the ring, or hands it back at once.
    ///
    /// Returns [`TrySendError::Closed`] if the consumer is gone (checked first: a closed ring
    /// never reports `Full`), [`TrySendError::Full`] if the ring holds `capacity` items by
    /// the consumer's last published position: up to `publish_every - 1` of them may already
    /// have been taken by [`Consumer::try_recv`] and not yet published (see the module docs;
    /// none on a ring below 16 slots, none once the consumer has seen the ring empty).
    /// Never blocks, spins or makes a system call.
    #[inline]
    pub fn try_send(&mut self, item: T) -> Result<(), TrySendError<T>> {
        if self.shared.closed.load(Ordering::Relaxed) {
            return Err(TrySendError::Closed(item));
        }
        if self.free(1) == 0 {
            return Err(TrySendError::Full(item));
        }
        // SAFETY: the ring is not full by a `head` no newer than the real one, so the slot of
        // `tail` is free (invariants 3 and 4), and this is the producer.
        unsafe { write_slot(self.slots, self.tail_slot, item) };
        self.tail = self.tail.wrapping_add(1);
        self.tail_slot = slot_after_one(self.capacity, self.tail_slot);
        // Release, as in `publish`.
        self.shared.tail.store(self.tail, Ordering::Release);
        Ok(())
    }

    /// Moves as many items as fit from the front of `items` into the ring, in order, with one
    /// position store (and at most one load of the consumer's position): at most four block
    /// copies (the deque's two halves, each into at most two runs of slots).
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
        let n = self.free(wanted).min(wanted);
        if n == 0 {
            return Ok(0);
        }
        let (front, back) = items.as_slices();
        let from_front = n.min(front.len());
        let mut slot = self.tail_slot;
        for part in [&front[..from_front], &back[..n - from_front]] {
            // The free slots from `slot` are at most two runs: up to the end of the array,
            // then from its start.
            let first = part.len().min(self.capacity - slot);
            // SAFETY: the slots of positions `tail .. tail + n` are free (invariant 3:
            // `n <= free`) and the producer's alone; `part` is `items`' memory, outside the
            // ring, and its items are forgotten by `items` right below without being read.
            unsafe {
                copy_to_slots(self.slots, slot, part.as_ptr(), first);
                copy_to_slots(self.slots, 0, part.as_ptr().add(first), part.len() - first);
            }
            slot = slot_after(self.capacity, slot, part.len());
        }
        // The ring's copies own the items now: take them off the deque without dropping
        // them. For a `T` without drop glue this is only the deque's index arithmetic.
        items.drain(..n).for_each(std::mem::forget);
        self.publish(n);
        Ok(n)
    }

    /// Moves items pulled from `items` into the ring, in order, with one position store (and
    /// at most one load of the consumer's position). Pulls an item only once it has a free
    /// slot for it, so the items not sent are still in the iterator: nothing is lost.
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
        let free = self.free(items.size_hint().0.max(1));
        let start = self.tail_slot;
        let first = free.min(self.capacity - start);
        let mut n = 0;
        'fill: for (from, len) in [(start, first), (0, free - first)] {
            for slot in from..from + len {
                let Some(item) = items.next() else {
                    break 'fill;
                };
                // SAFETY: the slots walked are those of positions `tail .. tail + free`, each
                // free (invariant 3) and touched only by the producer.
                unsafe { write_slot(self.slots, slot, item) };
                n += 1;
            }
        }
        if n > 0 {
            self.publish(n);
        }
        Ok(n)
    }

    /// The capacity the ring was created with.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Items in the ring now by the consumer's published position (the consumer may be taking
    /// some concurrently, and may have taken up to `publish_every - 1` it has not published).
    pub fn len(&self) -> usize {
        distance(self.shared.head.load(Ordering::Acquire), self.tail)
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
        release_shared(&mut self.shared);
    }
}

impl<T> Consumer<T> {
    /// Items available by the cached `tail`; reloads it when fewer than `wanted` are cached.
    /// Errs if the ring is then empty: `Closed` if the producer is gone.
    #[inline(always)]
    fn available(&mut self, wanted: usize) -> Result<usize, TryRecvError> {
        let cached = distance(self.head, self.tail_cache);
        if cached >= wanted {
            return Ok(cached);
        }
        self.refresh_tail()?;
        Ok(distance(self.head, self.tail_cache))
    }

    /// Frees `n` slots just read, and every slot `try_recv` left unpublished.
    #[inline(always)]
    fn advance(&mut self, n: usize) {
        self.head = self.head.wrapping_add(n as u64);
        self.head_slot = slot_after(self.capacity, self.head_slot, n);
        self.publish_head();
    }

    /// Stores `head` (Release: our reads of the slots it frees happen-before the producer
    /// reuses them).
    #[inline(always)]
    fn publish_head(&mut self) {
        self.published = self.head;
        self.shared.head.store(self.head, Ordering::Release);
    }

    /// Makes every slot freed by [`try_recv`](Self::try_recv) visible to the producer now.
    ///
    /// `try_recv` publishes its freed slots only every few items (see the module docs), and
    /// always when it returns an error; batch receives publish at once. A consumer that stops
    /// taking items while some are still in the ring, and wants the producer to have every
    /// slot it freed meanwhile, calls this. Costs one store, none if nothing is pending.
    pub fn flush(&mut self) {
        if self.published != self.head {
            self.publish_head();
        }
    }

    /// Takes the oldest item out of the ring.
    ///
    /// Returns [`TryRecvError::Empty`] if there is none and the producer is alive,
    /// [`TryRecvError::Closed`] only once the ring is empty *and* the producer is gone.
    /// Never blocks, spins or makes a system call.
    ///
    /// Frees the item's slot for the producer lazily: every `publish_every` items, before
    /// returning an error, or at [`flush`](Self::flush) (see the module docs).
    #[inline]
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        if self.head == self.tail_cache {
            self.refresh_tail()?;
        }
        // SAFETY: `head != tail_cache`, `tail_cache` came from an Acquire load and is no newer
        // than the real `tail`, so the slot of `head` is initialised (invariants 2 and 4);
        // this is the consumer and it advances `head` right after.
        let item = unsafe { read_slot(self.slots, self.head_slot) };
        self.head = self.head.wrapping_add(1);
        self.head_slot = slot_after_one(self.capacity, self.head_slot);
        // Lazy publication (module docs): one store every `publish_every` items.
        if self.head.wrapping_sub(self.published) >= self.publish_every {
            self.publish_head();
        }
        Ok(item)
    }

    /// Moves up to `max` items, oldest first, onto the end of `out` with one position store
    /// (and at most one load of the producer's position): at most two block copies. Returns
    /// how many were moved, at least one.
    ///
    /// Returns `Ok(0)` only when `max` is 0; otherwise [`TryRecvError::Empty`] or
    /// [`TryRecvError::Closed`] as [`try_recv`](Self::try_recv) does. `out` is grown before
    /// any item leaves the ring, so an allocation failure loses nothing.
    pub fn recv_batch(&mut self, out: &mut Vec<T>, max: usize) -> Result<usize, TryRecvError> {
        if max == 0 {
            return Ok(0);
        }
        let n = self.available(max)?.min(max);
        out.reserve(n);
        let start = self.head_slot;
        let first = n.min(self.capacity - start);
        let len = out.len();
        // SAFETY: the slots of positions `head .. head + n` lie within `head .. tail_cache`,
        // initialised and published (see `try_recv`), in at most two runs; each is read once
        // and `head` moves past them below. `out` has room for `n` more items after its
        // `len`, and is not the ring's memory; they are initialised before `set_len`.
        unsafe {
            let dst = out.as_mut_ptr().add(len);
            copy_from_slots(self.slots, start, dst, first);
            copy_from_slots(self.slots, 0, dst.add(first), n - first);
            out.set_len(len + n);
        }
        self.advance(n);
        Ok(n)
    }

    /// Hands up to `max` items, oldest first, to `f`, then frees their slots with one position
    /// store (and at most one load of the producer's position). Returns how many, at least
    /// one; errors as [`recv_batch`](Self::recv_batch) does. No buffer in between: the items
    /// go from the ring straight to `f`.
    ///
    /// If `f` panics, the items it was given (including the one it panicked on) are gone from
    /// the ring and the others stay, in order.
    pub fn recv_with(&mut self, max: usize, mut f: impl FnMut(T)) -> Result<usize, TryRecvError> {
        if max == 0 {
            return Ok(0);
        }
        let n = self.available(max)?.min(max);
        let start = self.head_slot;
        let first = n.min(self.capacity - start);
        let slots = self.slots;
        let mut done = ReleaseHead {
            consumer: self,
            taken: 0,
        };
        for (from, len) in [(start, first), (0, n - first)] {
            for slot in from..from + len {
                // SAFETY: the slots walked are those of positions `head .. head + n` within
                // `head .. tail_cache`, initialised and published (see `try_recv`); each is
                // read once, and `done` moves `head` past it even if `f` panics.
                let item = unsafe { read_slot(slots, slot) };
                done.taken += 1;
                f(item);
            }
        }
        Ok(n)
    }

    /// Reloads `tail`. Errs if the ring is then empty: `Closed` if the producer is gone;
    /// before erring, publishes every slot `try_recv` freed (the ring is empty, so the
    /// producer must see all of it free).
    #[inline]
    fn refresh_tail(&mut self) -> Result<(), TryRecvError> {
        // Acquire: the producer's slot writes happen-before our reads of them.
        self.tail_cache = self.shared.tail.load(Ordering::Acquire);
        if self.head != self.tail_cache {
            return Ok(());
        }
        self.flush();
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
        distance(self.head, self.shared.tail.load(Ordering::Acquire))
    }

    /// `true` if the ring holds no item now. Reads the producer's position afresh, so it is
    /// the check to make after [`Parker::prepare_park`](super::Parker::prepare_park).
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
struct ReleaseHead<'a, T> {
    consumer: &'a mut Consumer<T>,
    taken: usize,
}

impl<T> Drop for ReleaseHead<'_, T> {
    fn drop(&mut self) {
        if self.taken > 0 {
            self.consumer.advance(self.taken);
        }
    }
}

impl<T> Drop for Consumer<T> {
    fn drop(&mut self) {
        // `Shared::drop` drops the items of positions `head .. tail`: publish the slots taken
        // since the last store, or their items would be dropped twice.
        self.flush();
        // Release: orders the `head` stores before `closed`; items still in the ring are
        // dropped with `Shared` once the producer is gone too.
        self.shared.closed.store(true, Ordering::Release);
        release_shared(&mut self.shared);
    }
}

/// Drops an end's `Arc` from a copy of the pointer, so that the end's own address never
/// reaches `Arc`'s out-of-line `drop_slow`.
///
/// Dropping the field in place would hand `&mut self.shared` to that call, and an end whose
/// address escapes anywhere in a function is memory the compiler must assume any store or
/// atomic operation may change: a loop over `try_send` or `try_recv` then reloads and stores
/// every position and cached field from memory on every call instead of keeping them in
/// registers (seen in the benchmark's generated code; rtrb, which releases its buffer from a
/// raw pointer, kept them in registers). Called once, by the end's `Drop`, last.
#[inline(always)]
fn release_shared<T>(shared: &mut ManuallyDrop<Arc<Shared<T>>>) {
    // SAFETY: called only from the end's `Drop`, as its last use of `shared`: the field is
    // never read again, so taking it out cannot produce a second owner of the `Arc`.
    drop(unsafe { ManuallyDrop::take(shared) });
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
