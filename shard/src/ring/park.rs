//! Parking a consumer shard and waking it from another core, without lost wake-ups and
//! without waking a shard that is running.
//!
//! A shard with nothing to do sleeps in `io_uring_enter` (the driver does that; here it is
//! modelled by any blocking wait, e.g. [`super::EventFd::wait`]). A producer on another core
//! that pushes into one of its rings must wake it, but waking costs a system call (an eventfd
//! write or an `IORING_OP_MSG_RING`) on both sides, so it must happen only when the consumer
//! really sleeps.
//!
//! ```text
//!        consumer shard                            producer shard (any number)
//!   rings empty                                    push item(s)            (Release tail)
//!   prepare_park: parked = true                    notify:
//!   fence(SeqCst) ------------- Dekker -------------- fence(SeqCst)
//!   re-check rings (load tail)                        load parked
//!     work?  -> cancel_park: swap(parked, false)      true? -> swap(parked, false)
//!     none   -> sleep  <--------- wake --------------   won the swap? -> Wake::wake()
//!   woken   -> unparked: parked = false
//! ```
//!
//! # Why no wake-up is lost
//!
//! Each side stores one location and then loads the other's: the consumer stores `parked`
//! and loads `tail`, the producer stores `tail` and loads `parked` — the store-buffering
//! (Dekker) pattern. Acquire/Release alone allow both loads to miss both stores (on x86 the
//! stores sit in the store buffers), which is exactly the lost wake-up: the consumer sees no
//! item and sleeps, the producer sees no sleeper and does not wake. A `SeqCst` fence between
//! the store and the load on *both* sides forbids that outcome: the two fences are totally
//! ordered; whichever comes second, its thread's load sees the other thread's store. So
//! either the consumer's re-check sees the item (and cancels the park) or the producer sees
//! `parked` (and wakes it), or both (one spurious wake, harmless). The same argument covers
//! the producer's drop, whose `closed` store plays the role of the `tail` store.
//!
//! The fence is the only costly instruction (`mfence` or a locked op on x86), so a producer
//! should push a batch and call [`Notifier::notify`] once, not after every item.
//!
//! # Why only one wake, and never for a running consumer
//!
//! The producer claims the wake with `swap(parked, false)`: of many producers (or of a
//! producer and the consumer cancelling) exactly one sees `true`. A consumer that is running
//! has `parked == false` (it cleared it on waking or cancelling), so `should_wake` returns
//! `false` without a write. A producer may still see a stale `true` from a park that has just
//! been cancelled, and the consumer may wake for another reason (a datagram) after a producer
//! claimed it; both cost at most one spurious wake, never a lost one.
//!
//! # Why `prepare_park` swaps
//!
//! Every write to `parked` is a `swap`, even `prepare_park`'s, where a plain store would do in
//! the C++ memory model: there, a producer's claim (an RMW that read `false`) is ordered
//! before the consumer's next `parked = true`, so a producer whose fence comes after the
//! consumer's must read `true`. Loom keeps each location's modification order as a partial
//! order and misses that inference; with a store it reports a lost wake-up that cannot
//! happen. A swap makes the order explicit to loom, and costs nothing that matters on the
//! path to sleeping (on x86 an `xchg`, next to the `mfence` that follows).
//!
//! [`Parker::prepare_park`] plus a re-check plus [`Parker::cancel_park`] is the low-level
//! protocol; [`Parker::park`] wraps it. [`super::recv_blocking`] is the whole consumer loop
//! for tests and benchmarks.
#![forbid(unsafe_code)]

use std::io;

use crossbeam_utils::CachePadded;

use super::sync::{Arc, AtomicBool, AtomicU32, Ordering, fence};

/// How a producer wakes a parked consumer: an eventfd write ([`super::EventFd`]), an
/// `IORING_OP_MSG_RING` from the producer's own ring, or a test double.
pub trait Wake {
    /// Makes the consumer's sleep return. Must not block.
    fn wake(&self) -> io::Result<()>;

    /// The consumer's io_uring fd, when it sleeps in `io_uring_enter` and may be woken with an
    /// `IORING_OP_MSG_RING` from the producer's own ring instead; the producer falls back to
    /// [`Wake::wake`] when that cannot be done. `None` (the default): only `wake`.
    fn ring_fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }
}

impl<W: Wake + ?Sized> Wake for &W {
    fn wake(&self) -> io::Result<()> {
        (**self).wake()
    }

    fn ring_fd(&self) -> Option<std::os::fd::RawFd> {
        (**self).ring_fd()
    }
}

impl<W: Wake + ?Sized> Wake for std::sync::Arc<W> {
    fn wake(&self) -> io::Result<()> {
        (**self).wake()
    }

    fn ring_fd(&self) -> Option<std::os::fd::RawFd> {
        (**self).ring_fd()
    }
}

/// `parked` while the consumer runs.
const RUNNING: u32 = 0;
/// `parked` between `prepare_park` and the wake claim / cancel / `unparked`.
const PARKED: u32 = 1;

/// The word a consumer shard shares with every producer that may wake it.
struct ParkState {
    /// [`RUNNING`] or [`PARKED`]. A `u32` so that the consumer can sleep on it as a futex
    /// word: "sleep while it is still `PARKED`" is exactly what `FUTEX_WAIT` checks, atomically
    /// with going to sleep.
    parked: CachePadded<AtomicU32>,
    /// Set while the consumer sleeps on `parked` with a futex wait (see
    /// [`Parker::sleep_on_futex`]): a claimed wake is then a futex wake on the word.
    futex: AtomicBool,
}

/// The consumer side of the park / wake protocol: one per consumer shard, owned by it.
///
/// Hand a [`Notifier`] (from [`Parker::notifier`]) to every producer that feeds this shard.
pub struct Parker {
    state: Arc<ParkState>,
}

/// What [`Parker::park`] decided.
#[must_use = "the consumer must either sleep or go back to its rings"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParkDecision {
    /// The rings were still empty after `parked` was published: sleep until woken, then call
    /// [`Parker::unparked`].
    Sleep,
    /// Work arrived while parking; the park is cancelled, go back to the rings.
    Cancelled {
        /// A producer had already claimed the wake, so one wake (an eventfd count, a CQE) is
        /// on its way and will make the next sleep return at once; drain it or ignore it.
        wake_in_flight: bool,
    },
}

impl Parker {
    /// A parker for a consumer that is running (not parked).
    pub fn new() -> Self {
        Self {
            state: Arc::new(ParkState {
                parked: CachePadded::new(AtomicU32::new(RUNNING)),
                futex: AtomicBool::new(false),
            }),
        }
    }

    /// A producer-side handle that wakes this consumer through `waker`.
    pub fn notifier<W: Wake>(&self, waker: W) -> Notifier<W> {
        Notifier {
            state: Arc::clone(&self.state),
            waker,
            wakes: 0,
        }
    }

    /// Publishes "about to sleep". The caller must then re-check every ring it consumes (with
    /// fresh loads: [`Consumer::has_work`](super::Consumer::has_work)) and either sleep or
    /// call [`cancel_park`](Self::cancel_park).
    pub fn prepare_park(&self) {
        // A swap, not a store: see "Why `prepare_park` swaps" in the module docs.
        let _ = self.state.parked.swap(PARKED, Ordering::Relaxed);
        // SeqCst fence between our `parked` store and the caller's re-check loads: the
        // consumer half of the Dekker pair (module docs).
        fence(Ordering::SeqCst);
    }

    /// Withdraws a [`prepare_park`](Self::prepare_park) because work arrived. Returns `true`
    /// if a producer had already claimed the wake, which is then in flight.
    pub fn cancel_park(&self) -> bool {
        self.state.parked.swap(RUNNING, Ordering::Relaxed) == RUNNING
    }

    /// `prepare_park`, then `has_work()` as the re-check, then sleep or cancel.
    pub fn park(&self, has_work: impl FnOnce() -> bool) -> ParkDecision {
        self.prepare_park();
        if has_work() {
            ParkDecision::Cancelled {
                wake_in_flight: self.cancel_park(),
            }
        } else {
            ParkDecision::Sleep
        }
    }

    /// To be called when the consumer returns from its sleep, for whatever reason. Returns
    /// `true` if a producer claimed the wake (as opposed to the sleep ending for another
    /// reason, such as a datagram).
    pub fn unparked(&self) -> bool {
        self.state.parked.swap(RUNNING, Ordering::Relaxed) == RUNNING
    }

    /// `true` between `prepare_park` and the wake claim / cancel / `unparked`.
    pub fn is_parked(&self) -> bool {
        self.state.parked.load(Ordering::Relaxed) == PARKED
    }

    /// Tells producers whether this consumer sleeps on its parked word with a futex wait
    /// (`IORING_OP_FUTEX_WAIT` armed on [`Parker::futex_word`] expecting
    /// [`Parker::FUTEX_PARKED`], or [`super::futex::wait`]). While set, a producer that claims
    /// a wake delivers it with a futex wake on the word instead of its [`Wake`]. Set it before
    /// the first sleep on the word; clear it before giving the futex wait up for good.
    pub fn sleep_on_futex(&self, on: bool) {
        self.state.futex.store(on, Ordering::Relaxed);
    }

    /// The value of the parked word while parked: what a futex wait on
    /// [`Parker::futex_word`] expects.
    pub const FUTEX_PARKED: u32 = PARKED;

    /// The parked word, for a futex wait (`IORING_OP_FUTEX_WAIT` takes its address). The
    /// kernel only reads it (atomically, when the wait is armed) and uses the address as the
    /// wait's key: no Rust reference is aliased by a kernel write. It lives as long as this
    /// parker or any of its notifiers.
    #[cfg(not(loom))]
    pub fn futex_word(&self) -> &std::sync::atomic::AtomicU32 {
        &self.state.parked
    }

    /// The parked word's address, for an `IORING_OP_FUTEX_WAIT` SQE (see
    /// [`Parker::futex_word`]). Null under loom, which has no futexes.
    pub fn futex_addr(&self) -> *const u32 {
        #[cfg(not(loom))]
        return self.state.parked.as_ptr().cast_const();
        #[cfg(loom)]
        return std::ptr::null();
    }
}

impl Default for Parker {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Parker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parker")
            .field("parked", &self.is_parked())
            .finish()
    }
}

/// The producer side of the park / wake protocol: wakes one consumer shard when, and only
/// when, it is parked. One per producer per consumer; counts the wakes it sent.
pub struct Notifier<W> {
    state: Arc<ParkState>,
    waker: W,
    wakes: u64,
}

impl<W: Wake> Notifier<W> {
    /// Call after pushing: `true` if the consumer is parked *and* this call claimed the wake,
    /// in which case the caller must wake it. At most one claimant per park; `false` (without
    /// a write to the shared line) while the consumer runs.
    #[must_use = "a claimed wake must be delivered or the consumer may sleep forever"]
    pub fn should_wake(&self) -> bool {
        // SeqCst fence between the caller's `tail` (or `closed`) store and our `parked` load:
        // the producer half of the Dekker pair (module docs).
        fence(Ordering::SeqCst);
        self.state.parked.load(Ordering::Relaxed) == PARKED
            && self.state.parked.swap(RUNNING, Ordering::Relaxed) == PARKED
    }

    /// `true` if the consumer sleeps on its parked word with a futex wait
    /// ([`Parker::sleep_on_futex`]): a claimed wake must then be delivered with
    /// [`Notifier::wake_futex`].
    pub fn consumer_sleeps_on_futex(&self) -> bool {
        self.state.futex.load(Ordering::Relaxed)
    }

    /// Delivers a claimed wake with a futex wake on the consumer's parked word (one
    /// `futex(2)` system call): the consumer's futex wait, armed while the word read
    /// `PARKED`, returns; one armed after the claim finds the word `RUNNING` and returns at
    /// once. Call only after [`Notifier::should_wake`] returned `true`.
    pub fn wake_futex(&self) -> io::Result<()> {
        #[cfg(not(loom))]
        return super::futex::wake(&self.state.parked).map(drop);
        #[cfg(loom)]
        return Err(io::ErrorKind::Unsupported.into());
    }

    /// Call after pushing one or more items: wakes the consumer if it is parked. Returns
    /// whether a wake was sent.
    ///
    /// If the wake fails, the claim is given back (`parked` is set again) so a later call
    /// retries; the worst case is then one spurious wake.
    pub fn notify(&mut self) -> io::Result<bool> {
        if !self.should_wake() {
            return Ok(false);
        }
        let woken = if self.consumer_sleeps_on_futex() {
            self.wake_futex()
        } else {
            self.waker.wake()
        };
        match woken {
            Ok(()) => {
                self.wakes += 1;
                Ok(true)
            }
            Err(e) => {
                let _ = self.state.parked.swap(PARKED, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// `true` if the consumer has published "about to sleep" and no one has claimed the wake
    /// yet. A snapshot for tests and statistics; use [`notify`](Self::notify) to act on it.
    pub fn consumer_parked(&self) -> bool {
        self.state.parked.load(Ordering::Relaxed) == PARKED
    }

    /// Gives back a wake claimed with [`Notifier::should_wake`] that could not be delivered:
    /// the consumer counts as parked again, so the next claim retries. At worst one spurious
    /// wake follows.
    pub fn give_back(&self) {
        self.state.parked.store(PARKED, Ordering::Relaxed);
    }

    /// Wakes sent by this notifier so far.
    pub fn wakes(&self) -> u64 {
        self.wakes
    }

    /// The waker this notifier delivers through.
    pub fn waker(&self) -> &W {
        &self.waker
    }
}

impl<W> std::fmt::Debug for Notifier<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field(
                "parked",
                &(self.state.parked.load(Ordering::Relaxed) == PARKED),
            )
            .field("wakes", &self.wakes)
            .finish()
    }
}
