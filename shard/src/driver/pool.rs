//! The memory the kernel reads and writes for a shard's datagrams: the **receive pool** (the
//! buffers multishot `recvmsg` fills, and the header it was armed with) and the **send slots**
//! (what each `sendmsg` reads). This file is the one place with the unsafe code that relies on
//! them; the rest of the driver sees only raw pointers to hand to SQEs and slices over the one
//! buffer in hand.
//!
//! ```text
//!  receive pool: one allocation of recv_buffers x buf_len bytes,
//!                buf_len = 16 + namelen (16 or 28) + controllen + max_datagram
//!  +--------------------------------------------------+--------------------------+----
//!  | buffer 0                                         | buffer 1                 | ...
//!  | recvmsg_out 16 B | name 16/28 B | payload ...    | recvmsg_out | name | ... |
//!  +--------------------------------------------------+--------------------------+----
//!    the kernel owns a buffer while the buffer ring lists it; the shard owns it from the
//!    completion that names it (a `Held` token) until `give_back` lists it again
//!  recv header: one msghdr (msg_namelen, msg_controllen), read by the kernel each time the
//!               receive is armed
//!
//!  send slots: slot i owns element i of each region, allocated once, never moved
//!  hdrs      [msghdr 0 ][msghdr 1 ] ...   msg_name -> names[i], msg_iov -> iovs[i]
//!  iovs      [iovec 0  ][iovec 1  ] ...   iov_base -> payloads[i]
//!  names     [28 B     ][28 B     ] ...   sockaddr_in / sockaddr_in6 of the destination
//!  payloads  [max B    ][max B    ] ...
//!  the pointers are written once, at start; staging writes only the name, the payload,
//!  `iov_len` and `msg_namelen` of a free slot
//!
//!  slot state (Rust side only):  Free --stage--> Staged --SQE pushed--> InFlight
//!                                  ^                                       |
//!                                  +------ completion, same generation ----+  (generation + 1)
//! ```
//!
//! **Rules.** Each region is one raw allocation reached only through raw pointers: no Rust
//! reference ever spans a region, so the kernel may read or write one element while the shard
//! works on another. A slice is built only over a receive buffer the kernel handed over (held)
//! or a send slot that is free, never over a header or slot the kernel may be reading.
//! Every send completion carries its slot's index and generation in `user_data`; a completion
//! that names no in-flight slot of that generation (a duplicate, a stale or foreign one) frees
//! nothing. A pool never frees memory the kernel may still use: dropping a receive pool that is
//! armed or registered, or send slots with sends in flight, leaks their regions instead; the
//! driver decides which (and counts it) when the shard ends.
#![allow(unsafe_code)]

use std::alloc::{Layout, alloc_zeroed, dealloc, handle_alloc_error};
use std::io;
use std::mem;
use std::net::SocketAddr;
use std::ptr::{self, NonNull};

use io_uring::IoUring;
use io_uring::types::RecvMsgOut;

use super::bufring::BufRing;
use super::sockaddr::{self, SOCKADDR_MAX_LEN};

/// Room in each receive buffer for `io_uring_recvmsg_out` ahead of the name and payload.
const RECVMSG_OUT_LEN: usize = 16;

/// Bits of a send slot's generation carried in `user_data` (above the 32 bits of its index,
/// below the driver's 8 bits of operation kind).
const GENERATION_BITS: u32 = 24;
const GENERATION_MASK: u32 = (1 << GENERATION_BITS) - 1;

/// Types whose all-zero bytes are a valid value and that hold no references: what a region
/// may hold.
///
/// # Safety
///
/// Implement only for plain C data (integers and raw pointers).
unsafe trait Plain {}
// SAFETY: an integer.
unsafe impl Plain for u8 {}
// SAFETY: integers and raw pointers; all-zero is an empty header.
unsafe impl Plain for libc::msghdr {}
// SAFETY: a raw pointer and a length; all-zero is an empty vector.
unsafe impl Plain for libc::iovec {}

/// `len` zeroed values of `T` in one allocation, reached only through raw pointers.
struct Region<T: Plain> {
    ptr: NonNull<T>,
    len: usize,
    layout: Layout,
    leaked: bool,
}

impl<T: Plain> Region<T> {
    /// Allocates `len` zeroed values (aborts on out-of-memory, as a `Vec` would).
    fn zeroed(len: usize) -> Self {
        let layout = match Layout::array::<T>(len) {
            Ok(layout) => layout,
            // Beyond isize::MAX bytes: the validated configuration never asks for this.
            Err(e) => panic!("region of {len} elements: {e}"),
        };
        let ptr = if layout.size() == 0 {
            NonNull::dangling()
        } else {
            // SAFETY: the layout has a non-zero size and `T`'s alignment.
            let raw = unsafe { alloc_zeroed(layout) };
            NonNull::new(raw.cast::<T>()).unwrap_or_else(|| handle_alloc_error(layout))
        };
        Self {
            ptr,
            len,
            layout,
            leaked: false,
        }
    }

    /// Element `i`. Panics when `i` is out of range: an index bug must never become a wild
    /// pointer handed to the kernel. (For set-up and tests; the data path uses
    /// [`Region::at_unchecked`] where its index is already proven in range.)
    fn at(&self, i: usize) -> *mut T {
        assert!(i < self.len, "element {i} of a region of {}", self.len);
        // SAFETY: i < len (checked above).
        unsafe { self.at_unchecked(i) }
    }

    /// Element `i`, without the range check.
    ///
    /// # Safety
    ///
    /// `i` must be less than the region's length.
    unsafe fn at_unchecked(&self, i: usize) -> *mut T {
        debug_assert!(i < self.len, "element {i} of a region of {}", self.len);
        // SAFETY: the caller guarantees i < len, so the offset stays inside the allocation.
        unsafe { self.ptr.as_ptr().add(i) }
    }

    /// Never free this memory: the kernel may still use it.
    fn leak(&mut self) {
        self.leaked = true;
    }
}

impl Region<u8> {
    /// The first byte of chunk `i` of `stride` bytes; panics unless the whole chunk is inside.
    fn chunk(&self, i: usize, stride: usize) -> *mut u8 {
        let start = i * stride;
        assert!(
            start + stride <= self.len,
            "chunk {i} x {stride} of a {}-byte region",
            self.len
        );
        self.at(start)
    }
}

impl<T: Plain> Drop for Region<T> {
    fn drop(&mut self) {
        if self.leaked || self.layout.size() == 0 {
            return;
        }
        // SAFETY: allocated in `zeroed` with this layout; the owners leak (set `leaked`)
        // whenever the kernel may still use the memory.
        unsafe { dealloc(self.ptr.as_ptr().cast(), self.layout) };
    }
}

/// A receive buffer the kernel handed over with a completion. The pool lists it for the
/// kernel again only when this token comes back ([`RecvPool::give_back`]); a token that is
/// lost (a handler panicked) keeps its buffer out of the kernel's reach for good.
#[must_use = "a held buffer returns to the kernel only through give_back"]
#[derive(Debug)]
pub(crate) struct Held {
    bid: u16,
}

/// The receive buffers of one shard, the provided-buffer ring that lists them for the
/// kernel, and the `msghdr` the multishot `recvmsg` is armed with.
pub(crate) struct RecvPool {
    bufs: Region<u8>,
    buf_len: usize,
    /// Per buffer: handed to the shard by a completion and not yet given back.
    held: Vec<bool>,
    ring: BufRing,
    /// The header the kernel reads when a receive is armed (only `msg_namelen` and
    /// `msg_controllen` are set).
    hdr: Region<libc::msghdr>,
    /// The same values for parsing completions, never shown to the kernel.
    parse_hdr: libc::msghdr,
    /// A multishot receive naming this pool may be in the kernel.
    armed: bool,
}

impl RecvPool {
    /// `count` buffers (a power of two, at most 32768) for datagrams of up to `max_datagram`
    /// bytes from addresses of `namelen` bytes with up to `controllen` bytes of control
    /// messages, every one listed in a fresh buffer ring with group id `bgid` (register it with
    /// [`RecvPool::register`]).
    pub(crate) fn new(
        count: u32,
        namelen: u32,
        controllen: usize,
        max_datagram: usize,
        bgid: u16,
    ) -> io::Result<Self> {
        let mut ring = BufRing::new(count, bgid)?;
        let buf_len = RECVMSG_OUT_LEN + namelen as usize + controllen + max_datagram;
        let len = u32::try_from(buf_len).map_err(io::Error::other)?;
        let count = count as usize;
        let bufs = Region::<u8>::zeroed(count * buf_len);
        for bid in 0..count {
            // `BufRing::new` accepted `count`, so every bid fits a u16.
            ring.push(bid as u16, bufs.chunk(bid, buf_len), len);
        }
        ring.publish();
        // SAFETY: msghdr is plain data; all-zero is an empty header.
        let mut parse_hdr: libc::msghdr = unsafe { mem::zeroed() };
        parse_hdr.msg_namelen = namelen;
        parse_hdr.msg_controllen = controllen;
        let hdr = Region::<libc::msghdr>::zeroed(1);
        // SAFETY: element 0 exists, and no receive is armed yet, so the kernel reads nothing.
        unsafe { hdr.at(0).write(parse_hdr) };
        Ok(Self {
            bufs,
            buf_len,
            held: vec![false; count],
            ring,
            hdr,
            parse_hdr,
            armed: false,
        })
    }

    /// Registers the buffer ring with `ring`.
    pub(crate) fn register(&mut self, ring: &IoUring) -> io::Result<()> {
        self.ring.register(ring)
    }

    /// The header a multishot `recvmsg` SQE names. Stable for the pool's life.
    pub(crate) fn recv_hdr(&self) -> *const libc::msghdr {
        self.hdr.at(0)
    }

    /// The buffer group id a receive SQE draws from.
    pub(crate) fn bgid(&self) -> u16 {
        self.ring.bgid()
    }

    /// Records whether a multishot receive naming this pool may be in the kernel.
    pub(crate) fn set_armed(&mut self, armed: bool) {
        self.armed = armed;
    }

    /// Whether a multishot receive naming this pool may be in the kernel.
    pub(crate) fn armed(&self) -> bool {
        self.armed
    }

    /// Takes buffer `bid` from the kernel, as a completion names it. `None` when `bid` is no
    /// buffer of this pool or is already held: a completion the kernel should never post.
    #[inline]
    pub(crate) fn take(&mut self, bid: u16) -> Option<Held> {
        let held = self.held.get_mut(usize::from(bid))?;
        if *held {
            return None;
        }
        *held = true;
        Some(Held { bid })
    }

    /// The first byte of `held`'s buffer.
    fn buffer(&self, held: &Held) -> *mut u8 {
        // SAFETY: a `Held` is made only by `take`, for a bid below `self.held.len()`, the
        // buffer count, so the buffer lies inside the region of count x buf_len bytes.
        unsafe { self.bufs.at_unchecked(usize::from(held.bid) * self.buf_len) }
    }

    /// The datagram the kernel wrote into `held`'s buffer, `len` bytes of it (the completion's
    /// result; clamped to the buffer). `Err` when the bytes are too short for the header.
    #[inline]
    pub(crate) fn datagram(&self, held: &Held, len: usize) -> Result<RecvMsgOut<'_>, ()> {
        // SAFETY: the slice covers (part of) one buffer, inside the region (`buffer`). The
        // kernel handed this buffer over with a completion and `Held` proves it has not been
        // listed again, so nothing writes it while the slice lives; the region was zeroed at
        // allocation, so every byte is initialised.
        let bytes = unsafe { std::slice::from_raw_parts(self.buffer(held), len.min(self.buf_len)) };
        RecvMsgOut::parse(bytes, &self.parse_hdr)
    }

    /// Lists `held`'s buffer for the kernel again (visible after [`RecvPool::publish`]).
    #[inline]
    pub(crate) fn give_back(&mut self, held: Held) {
        let addr = self.buffer(&held);
        if let Some(h) = self.held.get_mut(usize::from(held.bid)) {
            *h = false;
        }
        self.ring.push(held.bid, addr, self.buf_len as u32);
    }

    /// Makes every buffer given back so far visible to the kernel (one release store).
    pub(crate) fn publish(&self) {
        self.ring.publish();
    }

    /// Unregisters the buffer ring once no receive is armed, so that the pool's memory may be
    /// freed. Returns whether it may (false: still armed, or the kernel refused).
    pub(crate) fn release(&mut self, ring: &IoUring) -> bool {
        !self.armed && self.ring.unregister(ring).is_ok()
    }

    /// Never free this pool's memory: the kernel may still use it.
    pub(crate) fn leak(&mut self) {
        self.bufs.leak();
        self.hdr.leak();
        self.ring.leak();
    }
}

impl Drop for RecvPool {
    fn drop(&mut self) {
        if self.armed || self.ring.is_registered() {
            self.leak();
        }
    }
}

/// Why [`SendSlots::stage`] refused a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Every slot is staged or in flight.
    Full,
    /// The payload is larger than a slot (`max` bytes).
    TooLarge {
        /// The largest payload a slot holds.
        max: usize,
    },
}

/// A send completion that names no in-flight slot of its generation: a duplicate, a stale or a
/// foreign one. Nothing was freed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UnknownSend;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    /// Nothing refers to the slot; [`SendSlots::stage`] may fill it.
    Free,
    /// Filled by the handler this turn; no SQE names it yet.
    Staged,
    /// An SQE names it: the kernel may read its header, name and payload until the
    /// completion.
    InFlight,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    state: SlotState,
    /// Bumped when the slot is freed; carried in `user_data` so that a completion for an
    /// earlier use of the slot is recognised.
    generation: u32,
    tag: u64,
}

/// Fixed pool of send slots for one shard: each slot is a `msghdr`, an `iovec`, a destination
/// and `max` bytes of payload, at addresses fixed for the pool's life.
pub(crate) struct SendSlots {
    max: usize,
    hdrs: Region<libc::msghdr>,
    iovs: Region<libc::iovec>,
    names: Region<u8>,
    payloads: Region<u8>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    staged: Vec<u32>,
    in_flight: usize,
}

impl SendSlots {
    /// `count` slots of `max` bytes each.
    pub(crate) fn new(count: usize, max: usize) -> Self {
        let hdrs = Region::<libc::msghdr>::zeroed(count);
        let iovs = Region::<libc::iovec>::zeroed(count);
        let names = Region::<u8>::zeroed(count * SOCKADDR_MAX_LEN);
        let payloads = Region::<u8>::zeroed(count * max);
        for i in 0..count {
            let iov = iovs.at(i);
            // SAFETY: every pointer is element i of its region (checked by `at` / `chunk`);
            // no SQE names any slot yet, so the kernel reads none of this. The writes go through
            // raw pointers: no reference to a header or vector is ever made.
            unsafe {
                (*iov).iov_base = payloads.chunk(i, max).cast();
                let hdr = hdrs.at(i);
                (*hdr).msg_name = names.chunk(i, SOCKADDR_MAX_LEN).cast();
                (*hdr).msg_iov = iov;
                (*hdr).msg_iovlen = 1;
            }
        }
        let slot = Slot {
            state: SlotState::Free,
            generation: 0,
            tag: 0,
        };
        Self {
            max,
            hdrs,
            iovs,
            names,
            payloads,
            slots: vec![slot; count],
            free: (0..count as u32).rev().collect(),
            staged: Vec::with_capacity(count),
            in_flight: 0,
        }
    }

    /// Copies `payload` for `peer` into a free slot, which becomes staged; `tag` (0: none)
    /// comes back with the completion.
    #[inline]
    pub(crate) fn stage(
        &mut self,
        peer: SocketAddr,
        payload: &[u8],
        tag: u64,
    ) -> Result<(), Refused> {
        if payload.len() > self.max {
            return Err(Refused::TooLarge { max: self.max });
        }
        let Some(slot) = self.free.pop() else {
            return Err(Refused::Full);
        };
        let i = slot as usize;
        if self.slots[i].state != SlotState::Free {
            // Unreachable while the free list holds only free slots; refusing keeps a broken
            // invariant from overwriting memory the kernel may be reading.
            debug_assert!(
                false,
                "slot {i} on the free list is {:?}",
                self.slots[i].state
            );
            return Err(Refused::Full);
        }
        // SAFETY: slot i is free (checked above): no SQE names it, so the kernel reads none of
        // its memory, and nothing else refers to it. `i < count` (`self.slots[i]` exists), so
        // each pointer is slot i's element of its region; `payload.len() <= max` (checked
        // above); the handler's bytes never lie inside these regions, which nothing outside
        // this type can reach. The name is written in place through a reference to exactly
        // the slot's name bytes; header and vector fields through raw pointers.
        unsafe {
            ptr::copy_nonoverlapping(
                payload.as_ptr(),
                self.payloads.at_unchecked(i * self.max),
                payload.len(),
            );
            let name = &mut *self
                .names
                .at_unchecked(i * SOCKADDR_MAX_LEN)
                .cast::<[u8; SOCKADDR_MAX_LEN]>();
            let namelen = sockaddr::encode(peer, name);
            (*self.iovs.at_unchecked(i)).iov_len = payload.len();
            (*self.hdrs.at_unchecked(i)).msg_namelen = namelen;
        }
        let s = &mut self.slots[i];
        s.state = SlotState::Staged;
        s.tag = tag;
        self.staged.push(slot);
        Ok(())
    }

    /// Free slots.
    pub(crate) fn free(&self) -> usize {
        self.free.len()
    }

    /// Slots an SQE names whose completion has not come back.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// The `nth` staged slot, oldest first: the header its `sendmsg` SQE names and the token
    /// (slot and generation, the low 56 bits of `user_data`) its completion will carry.
    #[inline]
    pub(crate) fn staged(&self, nth: usize) -> Option<(*const libc::msghdr, u64)> {
        let slot = *self.staged.get(nth)?;
        let generation = self.slots[slot as usize].generation;
        let token = (u64::from(generation) << 32) | u64::from(slot);
        // SAFETY: `self.slots[slot]` exists, so slot < count, the header region's length.
        let hdr = unsafe { self.hdrs.at_unchecked(slot as usize) };
        Some((hdr, token))
    }

    /// Test support: what the kernel would read for the `nth` staged slot's `sendmsg`
    /// (destination, payload), following the header's pointers as the kernel does.
    #[cfg(test)]
    pub(crate) fn staged_datagram(&self, nth: usize) -> (Option<SocketAddr>, Vec<u8>) {
        let Some((hdr, _)) = self.staged(nth) else {
            return (None, Vec::new());
        };
        // SAFETY: test only; the slot is staged, so no SQE names it and the kernel reads none
        // of it. The header's pointers were set by `SendSlots::new` into the pool's own
        // regions, and its lengths by `stage` to what was written there.
        unsafe {
            let name =
                std::slice::from_raw_parts((*hdr).msg_name.cast::<u8>(), (*hdr).msg_namelen as _);
            let iov = *(*hdr).msg_iov;
            let payload = std::slice::from_raw_parts(iov.iov_base.cast::<u8>(), iov.iov_len);
            assert_eq!((*hdr).msg_iovlen, 1);
            (sockaddr::parse(name), payload.to_vec())
        }
    }

    /// The first `n` staged slots now have SQEs: they are in flight.
    #[inline]
    pub(crate) fn mark_submitted(&mut self, n: usize) {
        for &slot in &self.staged[..n] {
            let s = &mut self.slots[slot as usize];
            debug_assert_eq!(s.state, SlotState::Staged, "slot {slot}");
            // An SQE names the slot now, whatever it was: it is in flight.
            if s.state != SlotState::InFlight {
                s.state = SlotState::InFlight;
                self.in_flight += 1;
            }
        }
        if n == self.staged.len() {
            self.staged.clear();
        } else {
            self.staged.drain(..n);
        }
    }

    /// A completion carrying `token`: frees its slot and returns the slot's tag, if the token
    /// names an in-flight slot of the current generation.
    #[inline]
    pub(crate) fn complete(&mut self, token: u64) -> Result<u64, UnknownSend> {
        let slot = (token & 0xffff_ffff) as usize;
        let generation = (token >> 32) as u32 & GENERATION_MASK;
        let s = self.slots.get_mut(slot).ok_or(UnknownSend)?;
        if s.state != SlotState::InFlight || s.generation != generation {
            return Err(UnknownSend);
        }
        s.state = SlotState::Free;
        s.generation = (s.generation + 1) & GENERATION_MASK;
        self.in_flight -= 1;
        self.free.push(slot as u32);
        Ok(s.tag)
    }

    /// Never free the slots' memory: the kernel may still read it.
    pub(crate) fn leak(&mut self) {
        self.hdrs.leak();
        self.iovs.leak();
        self.names.leak();
        self.payloads.leak();
    }
}

impl Drop for SendSlots {
    fn drop(&mut self) {
        if self.in_flight > 0 {
            self.leak();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_recycled() {
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let v6: SocketAddr = "[::1]:7".parse().unwrap();
        let mut slots = SendSlots::new(2, 8);
        assert_eq!(slots.stage(peer, b"a", 0), Ok(()));
        assert_eq!(slots.stage(v6, b"bc", 7), Ok(()));
        assert_eq!(slots.stage(peer, b"d", 0), Err(Refused::Full));
        assert_eq!(
            slots.stage(peer, &[0; 9], 0),
            Err(Refused::TooLarge { max: 8 })
        );
        assert_eq!(slots.staged_datagram(0), (Some(peer), b"a".to_vec()));
        assert_eq!(slots.staged_datagram(1), (Some(v6), b"bc".to_vec()));
        let (_, first) = slots.staged(0).unwrap();
        let (_, second) = slots.staged(1).unwrap();
        slots.mark_submitted(2);
        assert_eq!(slots.in_flight(), 2);
        assert!(slots.staged(0).is_none());
        assert_eq!(slots.complete(second), Ok(7));
        assert_eq!(slots.free(), 1);
        assert_eq!(slots.stage(peer, b"e", 0), Ok(()));
        assert_eq!(slots.staged_datagram(0), (Some(peer), b"e".to_vec()));
        assert_eq!(slots.complete(first), Ok(0));
        assert_eq!(slots.in_flight(), 0);
    }

    #[test]
    fn duplicate_stale_and_foreign_completions_free_nothing() {
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut slots = SendSlots::new(1, 8);
        slots.stage(peer, b"a", 1).unwrap();
        let (_, token) = slots.staged(0).unwrap();
        // Staged, not in flight: no completion can be for it yet.
        assert_eq!(slots.complete(token), Err(UnknownSend));
        slots.mark_submitted(1);
        assert_eq!(slots.complete(token), Ok(1));
        // The same completion again: the slot is free, nothing to free twice.
        assert_eq!(slots.complete(token), Err(UnknownSend));
        assert_eq!(slots.free(), 1);
        // The slot's next use has a new generation: the old token is stale.
        slots.stage(peer, b"b", 2).unwrap();
        let (_, next) = slots.staged(0).unwrap();
        assert_ne!(next, token);
        slots.mark_submitted(1);
        assert_eq!(slots.complete(token), Err(UnknownSend));
        assert_eq!(slots.in_flight(), 1);
        // A slot that does not exist.
        assert_eq!(slots.complete(5), Err(UnknownSend));
        assert_eq!(slots.complete(next), Ok(2));
        assert_eq!(slots.free(), 1);
    }

    #[test]
    fn generations_wrap_within_their_bits() {
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut slots = SendSlots::new(1, 8);
        slots.slots[0].generation = GENERATION_MASK;
        slots.stage(peer, b"a", 0).unwrap();
        let (_, token) = slots.staged(0).unwrap();
        assert_eq!(token >> 32, u64::from(GENERATION_MASK));
        assert!(token < 1 << 56, "the token leaves the kind byte alone");
        slots.mark_submitted(1);
        assert_eq!(slots.complete(token), Ok(0));
        assert_eq!(slots.slots[0].generation, 0);
    }

    #[test]
    fn a_buffer_is_held_once_until_given_back() {
        let mut pool = RecvPool::new(4, 16, 0, 64, 0).unwrap();
        let held = pool.take(2).unwrap();
        assert!(
            pool.take(2).is_none(),
            "a second completion for a held buffer"
        );
        assert!(pool.take(4).is_none(), "no such buffer");
        // Zeroed memory parses as an empty header: no name, no payload.
        let msg = pool.datagram(&held, RECVMSG_OUT_LEN + 16).unwrap();
        assert!(msg.payload_data().is_empty());
        assert!(pool.datagram(&held, 3).is_err(), "too short for the header");
        pool.give_back(held);
        assert!(pool.take(2).is_some());
    }
}
