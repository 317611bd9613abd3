//! The memory the kernel reads and writes for a shard's datagrams: the **receive pool** (the
//! buffers multishot `recvmsg` fills, and the header it was armed with) and the **send slots**
//! (what each `sendmsg` reads). This file is the one place with the unsafe code that relies on
//! them; the rest of the driver sees only raw pointers to hand to SQEs and slices over the one
//! buffer in hand.
//!
//! ```text
//!  receive pool: one allocation of count x buf_len bytes, buf_len a multiple of 64 of at least
//!                16 + namelen (16 or 28) + controllen (48) + room; count and room are
//!                recv_buffers and max_datagram, or with GRO gro_buffers and 65,535
//!  +--------------------------------------------------+--------------------------+----
//!  | buffer 0                                         | buffer 1                 | ...
//!  | recvmsg_out 16 B | name 16/28 B | control | payload ... | recvmsg_out | ... |
//!  +--------------------------------------------------+--------------------------+----
//!    the kernel owns a buffer while the buffer ring lists it; the shard owns it from the
//!    completion that names it (a `Held` token) until `give_back` returns it to the spares
//!  spares: the buffers neither listed nor held, last given back on top; `publish` lists
//!    from the top until the ring lists twice the most the kernel recently took in one turn
//!    (at least 64; all of them at start), so a light load cycles a few warm buffers
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
//!  with GSO, per group g (a send that carries several slots' datagrams; count / 2 groups):
//!  gathers   [iovec g.0 .. iovec g.63]    -> one group buffer, or the payloads of the lead
//!                                            and each joined slot
//!  controls  [24 B cmsg UDP_SEGMENT = the lead's length]
//!  the lead's header: msg_iov -> gathers[g], msg_iovlen = 1 (a group buffer) or datagrams,
//!  msg_control -> controls[g]; pointed back at its own vector, without control, when the
//!  group's completion frees it
//!  buffers   [64 KiB][64 KiB] ...         min(count / 2, 64) group buffers: a group that gets
//!                                         one (LIFO) has its datagrams copied there end to end
//!                                         (the lead's from its slot when the second joins),
//!                                         one vector for the kernel's send copy; without one
//!                                         free, the gather list names the slots
//!
//!  slot state (Rust side only):  Free --stage--> Staged --SQE pushed--> InFlight
//!                                  ^   \                                   |
//!                                  |    +--stage, joins the last staged--> Joined (its lead's)
//!                                  +------ completion, same generation ----+  (generation + 1;
//!                                          a lead's frees its group's Joined slots with it)
//! ```
//!
//! **Rules.** Each region is one raw allocation reached only through raw pointers: no Rust
//! reference ever spans a region, so the kernel may read or write one element while the shard
//! works on another. A slice is built only over a receive buffer the kernel handed over (held)
//! or a send slot that is free, never over a header or slot the kernel may be reading.
//! A datagram joins a group only while the group's lead is staged (this turn, no SQE yet), and
//! only the last staged send: so a group is a run of consecutive datagrams, and the order of
//! datagrams as staged is the order of sends.
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
use super::cmsg::{self, SEGMENT_CONTROL_LEN};
use super::offload::{MAX_GSO_BYTES, MAX_SEGMENTS};

/// Most group buffers a shard has (fewer with fewer than 128 send slots): contiguous memory a
/// GSO send's datagrams are copied into end to end, so that the kernel's send copy reads one
/// vector instead of a gather list of one per datagram (docs/DECISIONS.md D69). A group formed
/// while all are in use names its slots through its gather list instead.
pub(crate) const GROUP_BUFFERS: usize = 64;

/// Bytes of one group buffer: a whole GSO send, rounded up to a cache line.
const GROUP_BUFFER_LEN: usize = MAX_GSO_BYTES.next_multiple_of(64);
use super::sockaddr::{self, SOCKADDR_MAX_LEN};

/// Room in each receive buffer for `io_uring_recvmsg_out` ahead of the name and payload.
const RECVMSG_OUT_LEN: usize = 16;

/// Fewest receive buffers the ring lists (or all of them, if fewer) however little the kernel
/// takes (docs/DECISIONS.md D69): arrivals a light load may bring while the shard is held off
/// its core (3.2 ms at 20,000 datagrams/s; 16, the first minimum, ran dry there, D76). The
/// kernel writes only each datagram's bytes into a listed buffer, so a larger minimum costs
/// no memory, only a few more buffer heads in the cache.
const MIN_LISTED: u32 = 64;

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

/// Where the datagram a handler is being handed lies in its held receive buffer: what
/// [`SendSlots::stage_received`] needs to send (part of) it without copying. Made only by
/// [`RecvPool::received`], for a buffer a completion handed over.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Received {
    bid: u16,
    /// The payload's first byte, derived from the pool's region pointer.
    at: *const u8,
    /// Where the payload's bytes lie, as addresses (compared with a handler's slice).
    start: usize,
    len: usize,
}

impl Received {
    /// Where `payload` starts within the received datagram, if it lies entirely inside it.
    fn offset_of(&self, payload: &[u8]) -> Option<usize> {
        let p = payload.as_ptr() as usize;
        let offset = p.checked_sub(self.start)?;
        (offset + payload.len() <= self.len && !payload.is_empty()).then_some(offset)
    }
}

/// The receive buffers of one shard, the provided-buffer ring that lists them for the
/// kernel, and the `msghdr` the multishot `recvmsg` is armed with.
pub(crate) struct RecvPool {
    bufs: Region<u8>,
    buf_len: usize,
    /// Per buffer: handed to the shard by a completion and not yet given back.
    held: Vec<bool>,
    /// Per buffer: held for sends that read it ([`RecvPool::lend_out`]) until the last of
    /// them completes ([`RecvPool::return_lent`]).
    lent: Vec<bool>,
    ring: BufRing,
    /// Buffers neither listed nor held; the last given back on top, listed first.
    spares: Vec<u16>,
    /// Buffers listed in the ring and not yet named by a completion.
    listed: u32,
    /// Buffers completions named since the last [`RecvPool::publish`].
    taken: u32,
    /// The most buffers taken between two publishes, lately: the largest such count, less one
    /// for each publish since.
    peak: u32,
    /// The header the kernel reads when a receive is armed (only `msg_namelen` and
    /// `msg_controllen` are set).
    hdr: Region<libc::msghdr>,
    /// The same values for parsing completions, never shown to the kernel.
    parse_hdr: libc::msghdr,
    /// A multishot receive naming this pool may be in the kernel.
    armed: bool,
}

impl RecvPool {
    /// `count` buffers (a power of two, at most 32768) for payloads of up to `room` bytes from
    /// addresses of `namelen` bytes with up to `controllen` bytes of control messages, every
    /// one listed in a fresh buffer ring with group id `bgid` (register it with
    /// [`RecvPool::register`]). Buffers start on 64-byte boundaries.
    pub(crate) fn new(
        count: u32,
        namelen: u32,
        controllen: usize,
        room: usize,
        bgid: u16,
    ) -> io::Result<Self> {
        let mut ring = BufRing::new(count, bgid)?;
        let buf_len = (RECVMSG_OUT_LEN + namelen as usize + controllen + room).next_multiple_of(64);
        let len = u32::try_from(buf_len).map_err(io::Error::other)?;
        let count = count as usize;
        let bufs = Region::<u8>::zeroed(count * buf_len);
        for bid in 0..count {
            // `BufRing::new` accepted `count`, so every bid fits a u16.
            ring.push(bid as u16, bufs.chunk(bid, buf_len), len);
        }
        ring.publish();
        // Every buffer listed at start: as many as the peak of a full ring asks for.
        let listed = count as u32;
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
            lent: vec![false; count],
            ring,
            spares: Vec::with_capacity(count),
            listed,
            taken: 0,
            peak: listed.div_ceil(2),
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
        self.listed = self.listed.saturating_sub(1);
        self.taken += 1;
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

    /// Where `payload`, a datagram the kernel wrote into `held`'s buffer (a slice of
    /// [`RecvPool::datagram`]'s bytes), lies: what a send that reads it in place needs.
    #[inline]
    pub(crate) fn received(&self, held: &Held, payload: &[u8]) -> Received {
        let buffer = self.buffer(held);
        let offset = (payload.as_ptr() as usize).wrapping_sub(buffer as usize);
        // A payload outside the buffer (never: it is a slice of `datagram`'s) lends nothing.
        let len = if offset.saturating_add(payload.len()) <= self.buf_len {
            payload.len()
        } else {
            0
        };
        Received {
            bid: held.bid,
            at: buffer.wrapping_add(offset).cast_const(),
            start: payload.as_ptr() as usize,
            len,
        }
    }

    /// `held`'s buffer stays out of the kernel's reach: sends read it
    /// ([`SendSlots::is_lent`]). It goes to the spares when the last of them completes
    /// ([`RecvPool::return_lent`]).
    #[inline]
    pub(crate) fn lend_out(&mut self, held: Held) {
        if let Some(l) = self.lent.get_mut(usize::from(held.bid)) {
            *l = true;
        }
    }

    /// The last send that read buffer `bid` completed ([`SendSlots::pop_returned`]): the
    /// buffer goes to the spares as [`RecvPool::give_back`] would. A buffer not lent out
    /// (its token was lost to a handler panic mid-datagram) stays held.
    /// Returns whether it did.
    #[inline]
    pub(crate) fn return_lent(&mut self, bid: u16) -> bool {
        let i = usize::from(bid);
        if self.lent.get(i) != Some(&true) {
            return false;
        }
        self.lent[i] = false;
        self.held[i] = false;
        self.spares.push(bid);
        true
    }

    /// Returns `held`'s buffer to the spares, on top: the next [`RecvPool::publish`] lists it
    /// for the kernel first.
    #[inline]
    pub(crate) fn give_back(&mut self, held: Held) {
        if let Some(h) = self.held.get_mut(usize::from(held.bid)) {
            *h = false;
        }
        self.spares.push(held.bid);
    }

    /// Lists spare buffers, the last given back first, until the ring lists twice the most
    /// the kernel lately took between two publishes (at least [`MIN_LISTED`], at most every
    /// buffer), and makes them visible to the kernel (one release store).
    ///
    /// The kernel fills listed buffers in the order they were listed; listing only what the
    /// load needs keeps it cycling through a few buffers that are still in cache, where
    /// listing all of them would have it write each coalesced buffer into memory untouched
    /// for hundreds of buffers (D30, D69). A turn that takes every listed buffer ends the
    /// multishot receive with `ENOBUFS` (counted; the driver re-arms it, nothing is lost
    /// while the socket buffer holds the datagrams) and doubles the listing at the next
    /// publish; the listing shrinks by at most two buffers a publish.
    pub(crate) fn publish(&mut self) {
        self.peak = self.taken.max(self.peak.saturating_sub(1));
        self.taken = 0;
        let want = self.peak.saturating_mul(2).max(MIN_LISTED);
        while self.listed < want
            && let Some(bid) = self.spares.pop()
        {
            // SAFETY: a spare buffer is neither listed nor held, so listing it once more
            // never lists it twice; its bid is below the buffer count (it came from `take`).
            let addr = unsafe { self.bufs.at_unchecked(usize::from(bid) * self.buf_len) };
            self.ring.push(bid, addr, self.buf_len as u32);
            self.listed += 1;
        }
        self.ring.publish();
    }

    /// The multishot receive ended with `ENOBUFS`: the kernel found the ring empty.
    pub(crate) fn ran_dry(&mut self) {
        // What the completions before this one took already says so; this keeps the count
        // true whatever it missed.
        self.listed = 0;
    }

    /// Test support: buffers listed, spare, held (lent ones included).
    #[cfg(test)]
    fn census(&self) -> (u32, usize, usize) {
        let held = self.held.iter().filter(|h| **h).count();
        (self.listed, self.spares.len(), held)
    }

    /// Test support: buffers lent out to sends.
    #[cfg(test)]
    pub(crate) fn lent_out(&self) -> usize {
        self.lent.iter().filter(|l| **l).count()
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

/// Where [`SendSlots::stage_received`] put a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placed {
    /// The send reads it in its receive buffer.
    InPlace,
    /// Copied into a send slot: the bytes were not the received datagram's.
    Copied,
    /// Copied into a send slot: half the receive buffers were lent already.
    CopiedOverCap,
}

/// A send completion that names no in-flight slot of its generation: a duplicate, a stale or a
/// foreign one. Nothing was freed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UnknownSend;

/// What a send completion freed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    /// One slot sent alone, and its tag.
    One {
        /// The tag it was staged with (0: none).
        tag: u64,
    },
    /// A GSO send of `datagrams` datagrams. When any of them was tagged, every datagram's
    /// tag and length, in send order, are in [`SendSlots::group_done`] until the next
    /// completion.
    Group {
        /// Datagrams the send carried.
        datagrams: u32,
        /// Whether any was tagged.
        tagged: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    /// Nothing refers to the slot; [`SendSlots::stage`] may fill it.
    Free,
    /// Filled by the handler this turn; no SQE names it yet.
    Staged,
    /// An SQE names it: the kernel may read its header, name and payload until the
    /// completion.
    InFlight,
    /// A datagram of a group another slot leads: the kernel reads its payload (through the
    /// group's gather list) from when the lead's SQE is pushed until the lead's completion.
    Joined,
}

/// No group / no next member.
const NONE: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Slot {
    state: SlotState,
    /// Bumped when the slot is freed; carried in `user_data` so that a completion for an
    /// earlier use of the slot is recognised.
    generation: u32,
    tag: u64,
    /// Payload length (a lead's length is its group's segment size).
    len: u32,
    /// The group this slot leads ([`NONE`]: sent alone).
    group: u32,
    /// The next datagram of the group this slot leads or joined ([`NONE`]: the last).
    next: u32,
    /// The receive buffer its datagram is sent from, in place ([`NONE`]: its own payload,
    /// copied). A lent lead's vector names that buffer until its completion.
    lent: u32,
}

/// A GSO send being built or in flight: its lead slot's header names the group's gather list
/// and `UDP_SEGMENT` control message.
#[derive(Debug, Clone, Copy)]
struct Group {
    /// Segment size: the lead's length.
    segment: u16,
    /// Datagrams carried, the lead's included.
    datagrams: u16,
    /// Payload bytes carried.
    bytes: u32,
    /// The last datagram's slot (where the next one is linked).
    tail: u32,
    /// A datagram shorter than the segment size came last: nothing may follow it.
    closed: bool,
    /// Some datagram of the group has a tag (its completion is reported per datagram).
    tagged: bool,
    /// The group buffer holding the datagrams end to end ([`NONE`]: the gather list names
    /// the slots, or for datagrams sent in place, ranges of receive buffers).
    buffer: u32,
    /// Vectors of the gather list in use (datagrams sent in place from one buffer, back to
    /// back, share one).
    vectors: u16,
    /// Slots the send holds, the lead's included: one per datagram, except that a run staged
    /// whole ([`SendSlots::stage_received_run`]) takes one slot for all its datagrams.
    slots: u16,
}

impl Default for Group {
    fn default() -> Self {
        Self {
            segment: 0,
            datagrams: 0,
            bytes: 0,
            tail: NONE,
            closed: false,
            tagged: false,
            buffer: NONE,
            vectors: 0,
            slots: 0,
        }
    }
}

/// Fixed pool of send slots for one shard: each slot is a `msghdr`, an `iovec`, a destination
/// and `max` bytes of payload, at addresses fixed for the pool's life; with GSO, also gather
/// lists and control messages for sends that carry several slots' datagrams.
pub(crate) struct SendSlots {
    max: usize,
    hdrs: Region<libc::msghdr>,
    iovs: Region<libc::iovec>,
    names: Region<u8>,
    payloads: Region<u8>,
    /// Per group: [`MAX_SEGMENTS`] vectors, one per datagram, in send order.
    gathers: Region<libc::iovec>,
    /// Per group: its `UDP_SEGMENT` control message.
    controls: Region<u8>,
    /// Group buffers, [`GROUP_BUFFER_LEN`] bytes each.
    buffers: Region<u8>,
    slots: Vec<Slot>,
    groups: Vec<Group>,
    free: Vec<u32>,
    free_groups: Vec<u32>,
    /// Free group buffers; the last freed is used first, so the few in use stay in cache.
    free_buffers: Vec<u32>,
    /// Groups formed while every group buffer was in use (sent through their gather list).
    gathered: u64,
    staged: Vec<u32>,
    in_flight: usize,
    /// Datagrams to one destination may join a staged send (GSO); off for good once the
    /// socket refuses it ([`SendSlots::stop_gso`]).
    gso: bool,
    /// The datagrams (tag, length) of the group the last completion freed, if any was
    /// tagged.
    done: Vec<(u64, usize)>,
    /// Per receive buffer: staged and in-flight datagrams sent from it in place.
    lends: Vec<u32>,
    /// Receive buffers with a datagram sent from them in place.
    lent_buffers: u32,
    /// Most receive buffers lent at once: half of them ([`SendSlots::lend_from`]).
    lend_cap: u32,
    /// Receive buffers whose last send in place completed, for the receive pool to take back.
    returned: Vec<u16>,
}

impl SendSlots {
    /// `count` slots of `max` bytes each, every datagram sent alone (test support).
    #[cfg(test)]
    pub(crate) fn new(count: usize, max: usize) -> Self {
        Self::with_gso(count, max, false)
    }

    /// `count` slots of `max` bytes each; with `gso`, consecutive datagrams of one size to one
    /// destination share one send (a group), up to [`MAX_SEGMENTS`] datagrams and
    /// [`MAX_GSO_BYTES`] bytes. Groups need at least two slots each, so `count / 2` gather
    /// lists are never short: 1 KiB of vectors and 24 bytes of control message each; up to
    /// [`GROUP_BUFFERS`] of them at a time hold their datagrams in a group buffer instead.
    pub(crate) fn with_gso(count: usize, max: usize, gso: bool) -> Self {
        let groups = if gso { (count / 2).max(1) } else { 0 };
        let buffers = groups.min(GROUP_BUFFERS);
        let hdrs = Region::<libc::msghdr>::zeroed(count);
        let iovs = Region::<libc::iovec>::zeroed(count);
        let names = Region::<u8>::zeroed(count * SOCKADDR_MAX_LEN);
        let payloads = Region::<u8>::zeroed(count * max);
        for i in 0..count {
            // SAFETY: `i < count`, so every pointer is element i of its region (`at` and
            // `chunk` check it again); no SQE names any slot yet, so the kernel reads none of
            // this. The writes go through raw pointers: no reference to a header or vector is
            // ever made.
            unsafe {
                (*iovs.at(i)).iov_base = payloads.chunk(i, max).cast();
                point_at_own(&hdrs, &iovs, &names, i);
            }
        }
        let controls = Region::<u8>::zeroed(groups * SEGMENT_CONTROL_LEN);
        let slot = Slot {
            state: SlotState::Free,
            generation: 0,
            tag: 0,
            len: 0,
            group: NONE,
            next: NONE,
            lent: NONE,
        };
        Self {
            max,
            hdrs,
            iovs,
            names,
            payloads,
            gathers: Region::<libc::iovec>::zeroed(groups * MAX_SEGMENTS),
            controls,
            buffers: Region::<u8>::zeroed(buffers * GROUP_BUFFER_LEN),
            slots: vec![slot; count],
            groups: vec![Group::default(); groups],
            free: (0..count as u32).rev().collect(),
            free_groups: (0..groups as u32).rev().collect(),
            free_buffers: (0..buffers as u32).rev().collect(),
            gathered: 0,
            staged: Vec::with_capacity(count),
            in_flight: 0,
            gso,
            done: Vec::with_capacity(MAX_SEGMENTS),
            lends: Vec::new(),
            lent_buffers: 0,
            lend_cap: 0,
            returned: Vec::new(),
        }
    }

    /// Datagrams may be sent in place from the `buffers` receive buffers, at most half of them
    /// at once: the other half stay for the kernel to receive into (docs/DECISIONS.md D76).
    pub(crate) fn lend_from(&mut self, buffers: u32) {
        self.lends = vec![0; buffers as usize];
        self.lent_buffers = 0;
        self.lend_cap = buffers / 2;
        self.returned = Vec::with_capacity(buffers as usize);
    }

    /// A free slot for a datagram of `len` bytes, taken off the free list: refused when the
    /// datagram is larger than a slot or no slot is free.
    #[inline(always)]
    fn take_free(&mut self, len: usize) -> Result<u32, Refused> {
        if len > self.max {
            return Err(Refused::TooLarge { max: self.max });
        }
        let Some(slot) = self.free.pop() else {
            return Err(Refused::Full);
        };
        let state = self.slots[slot as usize].state;
        if state != SlotState::Free {
            // Unreachable while the free list holds only free slots; refusing keeps a broken
            // invariant from overwriting memory the kernel may be reading.
            debug_assert!(false, "slot {slot} on the free list is {state:?}");
            return Err(Refused::Full);
        }
        Ok(slot)
    }

    /// Copies `payload` for `peer` into a free slot, which becomes staged; `tag` (0: none)
    /// comes back with the completion. With GSO, a datagram for the destination of the last
    /// staged send, no longer than its segment size, joins that send instead.
    #[inline]
    pub(crate) fn stage(
        &mut self,
        peer: SocketAddr,
        payload: &[u8],
        tag: u64,
    ) -> Result<(), Refused> {
        let slot = self.take_free(payload.len())?;
        let i = slot as usize;
        // The destination is encoded on the stack and compared there: reading the slot's name
        // back right after the payload copy and the name's field-by-field stores is where a
        // profile of a 1,200-byte echo put most of this function's time (docs/DECISIONS.md
        // D60). A datagram that joins a send needs no name of its own.
        let mut name = [0u8; SOCKADDR_MAX_LEN];
        let namelen = sockaddr::encode(peer, &mut name);
        let len = payload.len() as u32;
        if self.gso
            && let Some(&lead) = self.staged.last()
            && self.may_join(lead, &name, namelen, len, false)
        {
            // The payload goes where the group keeps its datagrams (D69).
            self.join(lead, slot, payload, tag);
            return Ok(());
        }
        // SAFETY: slot i is free (`take_free`): no SQE names it, so the kernel reads none of
        // its memory, and nothing else refers to it. `i < count` (`self.slots[i]` exists), so
        // the pointer is slot i's payload; `payload.len() <= max` (`take_free`); the
        // handler's bytes never lie inside these regions, which nothing outside this type can
        // reach.
        unsafe {
            ptr::copy_nonoverlapping(
                payload.as_ptr(),
                self.payloads.at_unchecked(i * self.max),
                payload.len(),
            );
        }
        self.stage_alone(slot, &name, namelen, len, tag);
        Ok(())
    }

    /// Stages free `slot` (from [`SendSlots::take_free`]) as a send of its own to `name`
    /// (`namelen` bytes), `len` bytes from wherever its vector's base points (its payload, or
    /// a lent receive buffer).
    #[inline(always)]
    fn stage_alone(
        &mut self,
        slot: u32,
        name: &[u8; SOCKADDR_MAX_LEN],
        namelen: libc::socklen_t,
        len: u32,
        tag: u64,
    ) {
        let i = slot as usize;
        // SAFETY: slot i is free (`take_free`): no SQE names it, so the kernel reads none of
        // its name, vector or header; `i < count` (`self.slots[i]` exists). The name bytes are
        // written as one array, header and vector fields through raw pointers.
        unsafe {
            self.names
                .at_unchecked(i * SOCKADDR_MAX_LEN)
                .cast::<[u8; SOCKADDR_MAX_LEN]>()
                .write(*name);
            (*self.iovs.at_unchecked(i)).iov_len = len as usize;
            (*self.hdrs.at_unchecked(i)).msg_namelen = namelen;
        }
        let s = &mut self.slots[i];
        s.state = SlotState::Staged;
        s.tag = tag;
        s.len = len;
        self.staged.push(slot);
    }

    /// Whether a datagram of `len` bytes to `name` (`namelen` bytes, encoded), sent in place
    /// from a receive buffer or not (`lent`), may join the send `lead` (staged) leads or would
    /// lead. A send's datagrams are all sent in place or all copied.
    #[inline]
    fn may_join(
        &self,
        lead: u32,
        name: &[u8; SOCKADDR_MAX_LEN],
        namelen: u32,
        len: u32,
        lent: bool,
    ) -> bool {
        let l = &self.slots[lead as usize];
        // The lead's length is the segment size: no datagram of a send may be longer.
        if len == 0
            || len > l.len
            || (l.lent != NONE) != lent
            || !self.same_name(lead, name, namelen)
        {
            return false;
        }
        let len = len as usize;
        match self.groups.get(l.group as usize) {
            // A lone datagram becomes a group of two.
            None => {
                l.len as usize + len <= MAX_GSO_BYTES
                    && l.len <= u32::from(u16::MAX)
                    && !self.free_groups.is_empty()
            }
            Some(g) => {
                !g.closed
                    && usize::from(g.datagrams) < MAX_SEGMENTS
                    && g.bytes as usize + len <= MAX_GSO_BYTES
            }
        }
    }

    /// Whether `name` (`namelen` bytes, encoded) is the staged `lead`'s destination: the same
    /// encoded socket address, byte for byte.
    #[inline]
    fn same_name(&self, lead: u32, name: &[u8; SOCKADDR_MAX_LEN], namelen: u32) -> bool {
        let lead = lead as usize;
        // SAFETY: `lead` is staged (the caller's state): no SQE names it, so the kernel touches
        // neither its name nor its header, and the index is below the slot count
        // (`self.slots[lead]` held it). The read copies exactly one slot's name bytes
        // (initialised: the region was zeroed, then `stage` wrote them).
        let (lead_len, a) = unsafe {
            let a = self
                .names
                .at_unchecked(lead * SOCKADDR_MAX_LEN)
                .cast::<[u8; SOCKADDR_MAX_LEN]>()
                .read();
            ((*self.hdrs.at_unchecked(lead)).msg_namelen, a)
        };
        // Both start with the family, so equal lengths and equal bytes up to them are the same
        // address (16 bytes for IPv4, all 28 for IPv6; the rest of an IPv4 lead's bytes may be
        // an earlier destination's).
        let v4 = sockaddr::SOCKADDR_IN_LEN as usize;
        lead_len == namelen
            && a[..v4] == name[..v4]
            && (namelen == sockaddr::SOCKADDR_IN_LEN || a == *name)
    }

    /// Adds `payload` for `slot` (free, popped from the free list) to the send `lead` leads,
    /// making that send a group first if it is a lone datagram: copied to the end of the
    /// group's buffer, or into the slot and named by the group's gather list when the group
    /// has no buffer. `may_join` said yes.
    #[inline(always)]
    fn join(&mut self, lead: u32, slot: u32, payload: &[u8], tag: u64) {
        let len = payload.len() as u32;
        let li = lead as usize;
        let mut g = self.slots[li].group;
        if g == NONE {
            let Some(opened) = self.open_group(lead, true) else {
                return debug_assert!(false, "may_join checked for a free group");
            };
            g = opened;
        }
        self.add_to_group(g, slot, len, tag);
        let group = &self.groups[g as usize];
        let k = usize::from(group.datagrams) - 1;
        let at = group.bytes as usize - len as usize;
        let buffer = group.buffer;
        let si = slot as usize;
        if buffer == NONE {
            // Entry k of group g's gather list (checked: `may_join` keeps k below
            // MAX_SEGMENTS, and a broken promise must panic rather than write past the
            // group's list).
            assert!(k < MAX_SEGMENTS, "datagram {k} of a GSO send");
            let v = self.gathers.at(g as usize * MAX_SEGMENTS + k);
            // SAFETY: as above, the lead is staged and the group is its own, so the kernel
            // reads neither; slot si is free (popped from the free list), so nothing reads
            // its payload; `v` is inside the gather region (checked above), `si < count` and
            // `len <= max` (`stage` checked it); the handler's bytes never lie in our regions.
            unsafe {
                let own = self.payloads.at_unchecked(si * self.max);
                ptr::copy_nonoverlapping(payload.as_ptr(), own, payload.len());
                (*v).iov_base = own.cast();
                (*v).iov_len = len as usize;
                (*self.hdrs.at_unchecked(li)).msg_iovlen = k + 1;
            }
        } else {
            // The datagram's bytes go right after the group's (checked: `may_join` keeps a
            // group within MAX_GSO_BYTES, and a broken promise must panic rather than write
            // past the buffer).
            assert!(
                at + payload.len() <= GROUP_BUFFER_LEN,
                "{at} + {len} bytes of a group buffer"
            );
            let dst = self
                .buffers
                .chunk(buffer as usize, GROUP_BUFFER_LEN)
                .wrapping_add(at);
            // SAFETY: the group is staged (its lead is), so the kernel reads neither its buffer
            // nor its gather list; `dst .. dst + len` lies inside buffer `buffer` (checked
            // above; `chunk` checked the buffer is inside the region); gather entry 0 of group
            // g is inside its region (`g < groups`); the handler's bytes never lie in our
            // regions.
            unsafe {
                ptr::copy_nonoverlapping(payload.as_ptr(), dst, payload.len());
                (*self.gathers.at_unchecked(g as usize * MAX_SEGMENTS)).iov_len = at + len as usize;
            }
        }
    }

    /// Makes the lone staged send `lead` a group of one datagram, `None` when no group is free
    /// (`may_join` checks first). Its gather list's first vector names the lead's bytes where
    /// its own vector does (its slot, or its receive buffer when sent in place), copied into a
    /// group buffer first when `buffered` and one is free; the lead's header names the list
    /// and a `UDP_SEGMENT` message of the lead's length.
    #[inline(always)]
    fn open_group(&mut self, lead: u32, buffered: bool) -> Option<u32> {
        let li = lead as usize;
        let l = &self.slots[li];
        let (lead_len, lead_tag) = (l.len, l.tag);
        let g = self.free_groups.pop()?;
        let buffer = if buffered {
            let buffer = self.free_buffers.pop().unwrap_or(NONE);
            self.gathered += u64::from(buffer == NONE);
            buffer
        } else {
            NONE
        };
        self.groups[g as usize] = Group {
            segment: lead_len as u16,
            datagrams: 1,
            bytes: lead_len,
            tail: lead,
            closed: false,
            tagged: lead_tag != 0,
            buffer,
            vectors: 1,
            slots: 1,
        };
        let gather = g as usize * MAX_SEGMENTS;
        let control = cmsg::segment_message(lead_len as u16);
        // SAFETY: the lead is staged (it is in `staged`, whose slots no SQE names yet) and
        // group g and its buffer were free, so the kernel reads none of the lead's header,
        // vector, payload, the group's gather list, control message or buffer. `g < groups` (a
        // free group index), `buffer < buffers` (a free buffer index) and `li < count`, so
        // every pointer is inside its region: gather entry 0 of group g, group g's control
        // bytes, the buffer's first `lead_len <= max` bytes, the lead's vector and header. The
        // lead's vector names `lead_len` bytes: its own payload, or a held receive buffer's
        // that a lend keeps from the kernel (`stage_received`). The regions never overlap one
        // another. Writes go through raw pointers.
        unsafe {
            let v = self.gathers.at_unchecked(gather);
            let own = (*self.iovs.at_unchecked(li)).iov_base.cast::<u8>();
            (*v).iov_base = if buffer == NONE {
                own.cast()
            } else {
                let b = self
                    .buffers
                    .at_unchecked(buffer as usize * GROUP_BUFFER_LEN);
                ptr::copy_nonoverlapping(own, b, lead_len as usize);
                b.cast()
            };
            (*v).iov_len = lead_len as usize;
            let c = self.controls.at_unchecked(g as usize * SEGMENT_CONTROL_LEN);
            ptr::copy_nonoverlapping(control.as_ptr(), c, SEGMENT_CONTROL_LEN);
            let hdr = self.hdrs.at_unchecked(li);
            (*hdr).msg_iov = v;
            (*hdr).msg_iovlen = 1;
            (*hdr).msg_control = c.cast();
            (*hdr).msg_controllen = SEGMENT_CONTROL_LEN;
        }
        self.slots[li].group = g;
        Some(g)
    }

    /// Counts `slot`'s datagram (`len` bytes, `tag`) into group `g`, after its last, and marks
    /// the slot joined. The caller writes its bytes or vector.
    #[inline(always)]
    fn add_to_group(&mut self, g: u32, slot: u32, len: u32, tag: u64) {
        let group = &mut self.groups[g as usize];
        let tail = group.tail as usize;
        group.datagrams += 1;
        group.slots += 1;
        group.bytes += len;
        group.tail = slot;
        group.closed = len < u32::from(group.segment);
        group.tagged |= tag != 0;
        self.slots[tail].next = slot;
        let s = &mut self.slots[slot as usize];
        s.state = SlotState::Joined;
        s.tag = tag;
        s.len = len;
        s.next = NONE;
    }

    /// Like [`SendSlots::stage`], but when `payload` lies inside the datagram `received`
    /// describes, the send reads it there instead of from a copy: the slot's vector (or its
    /// group's gather list, where datagrams back to back in one buffer share a vector) names
    /// the receive buffer, which the driver keeps from the kernel ([`SendSlots::is_lent`])
    /// until the send completes. Copied as `stage` does when `payload` lies elsewhere, or when
    /// half the receive buffers are lent already ([`Placed::CopiedOverCap`]).
    #[inline]
    pub(crate) fn stage_received(
        &mut self,
        peer: SocketAddr,
        received: &Received,
        payload: &[u8],
        tag: u64,
    ) -> Result<Placed, Refused> {
        let (offset, bid) = match self.lendable(received, payload) {
            Ok(at) => at,
            Err(copied) => return self.stage(peer, payload, tag).map(|()| copied),
        };
        let slot = self.take_free(payload.len())?;
        let i = slot as usize;
        let mut name = [0u8; SOCKADDR_MAX_LEN];
        let namelen = sockaddr::encode(peer, &mut name);
        let len = payload.len() as u32;
        let at = received.at.wrapping_add(offset);
        if self.gso
            && let Some(&lead) = self.staged.last()
            && self.may_join(lead, &name, namelen, len, true)
        {
            self.join_in_place(lead, slot, at, len, tag);
        } else {
            // SAFETY: slot i is free (`take_free`): no SQE names it, so the kernel reads none
            // of its memory; `i < count` (`self.slots[i]` exists). Its vector is pointed at
            // `len` bytes inside the held receive buffer `received` describes (`offset_of`
            // checked the range; `at` is derived from the pool's region pointer), which the
            // lend taken below keeps from the kernel's receives until this send's completion
            // gives it back; nothing writes it meanwhile and no reference to it outlives the
            // handler's call, which ends before the SQE is pushed.
            unsafe {
                (*self.iovs.at_unchecked(i)).iov_base = at.cast_mut().cast();
            }
            self.stage_alone(slot, &name, namelen, len, tag);
        }
        self.lend(i, bid);
        Ok(Placed::InPlace)
    }

    /// Where `bytes` lie in the receive buffer `received` describes, `(offset, buffer id)`, if
    /// a send may read them there: `Err(Placed::Copied)` when they lie elsewhere,
    /// `Err(Placed::CopiedOverCap)` when lending this buffer would pass the cap of half the
    /// receive buffers.
    #[inline(always)]
    fn lendable(&self, received: &Received, bytes: &[u8]) -> Result<(usize, usize), Placed> {
        let offset = received.offset_of(bytes).ok_or(Placed::Copied)?;
        let bid = usize::from(received.bid);
        let &lends = self.lends.get(bid).ok_or(Placed::Copied)?;
        if lends == 0 && self.lent_buffers >= self.lend_cap {
            return Err(Placed::CopiedOverCap);
        }
        Ok((offset, bid))
    }

    /// Slot `i`, just staged to read receive buffer `bid` in place, holds a lend of it until
    /// its send completes.
    #[inline(always)]
    fn lend(&mut self, i: usize, bid: usize) {
        self.slots[i].lent = bid as u32;
        self.lent_buffers += u32::from(self.lends[bid] == 0);
        self.lends[bid] += 1;
    }

    /// Adds the datagram of `len` bytes at `at` (inside a lent receive buffer) for `slot`
    /// (free, popped from the free list) to the send `lead` leads, whose datagrams are all
    /// sent in place, making it a group first if it is a lone datagram: the gather list's last
    /// vector grows when the bytes follow it, else the next vector names them. `may_join` said
    /// yes.
    #[inline(always)]
    fn join_in_place(&mut self, lead: u32, slot: u32, at: *const u8, len: u32, tag: u64) {
        let li = lead as usize;
        let mut g = self.slots[li].group;
        if g == NONE {
            let Some(opened) = self.open_group(lead, false) else {
                return debug_assert!(false, "may_join checked for a free group");
            };
            g = opened;
        }
        self.add_to_group(g, slot, len, tag);
        let group = &mut self.groups[g as usize];
        let gather = g as usize * MAX_SEGMENTS;
        let last = self
            .gathers
            .at(gather + usize::from(group.vectors).saturating_sub(1));
        // SAFETY: the lead is staged and the group is its own, so the kernel reads neither
        // its header nor its gather list; `last` is inside the gather region (checked by
        // `at`). Only the vector's fields are read and written, through raw pointers.
        let follows = unsafe {
            (*last)
                .iov_base
                .cast::<u8>()
                .cast_const()
                .wrapping_add((*last).iov_len)
                == at
        };
        if follows {
            // SAFETY: as above; the grown vector names bytes of one held receive buffer
            // (these follow the previous ones in it), kept from the kernel by the lends.
            unsafe { (*last).iov_len += len as usize };
            return;
        }
        // Checked: at most one vector per datagram, and `may_join` keeps those below
        // MAX_SEGMENTS; a broken promise must panic rather than write past the group's list.
        let v = self.gathers.at(gather + usize::from(group.vectors));
        assert!(
            usize::from(group.vectors) < MAX_SEGMENTS,
            "vector {} of a GSO send",
            group.vectors
        );
        group.vectors += 1;
        // SAFETY: as above: `v` is inside group g's list (checked), which the kernel does not
        // read yet; it names `len` bytes of a held receive buffer that the lends keep from the
        // kernel until the completion.
        unsafe {
            (*v).iov_base = at.cast_mut().cast();
            (*v).iov_len = len as usize;
            (*self.hdrs.at_unchecked(li)).msg_iovlen = usize::from(group.vectors);
        }
    }

    /// Stages `run`, datagrams of `segment` bytes back to back (the last may be shorter) for
    /// `peer`, as GSO sends that read them in place: each send takes **one** slot for up to
    /// [`MAX_SEGMENTS`] datagrams and [`MAX_GSO_BYTES`] bytes, its gather list one vector over
    /// the receive buffer (docs/DECISIONS.md D81). Returns the bytes staged, from the start of
    /// `run`: all of them, or a prefix of whole datagrams when slots or groups ran out or one
    /// datagram would be left (which [`SendSlots::stage_received`] sends alone), or 0 when this
    /// path does not apply: GSO off, `run` not inside the datagrams `received` describes, a
    /// segment larger than a slot, or half the receive buffers lent already. What is not
    /// staged here is for the caller to stage one datagram at a time.
    #[inline]
    pub(crate) fn stage_received_run(
        &mut self,
        peer: SocketAddr,
        received: &Received,
        run: &[u8],
        segment: usize,
    ) -> usize {
        if !self.gso || segment == 0 || segment > self.max || segment > usize::from(u16::MAX) {
            return 0;
        }
        let Ok((offset, bid)) = self.lendable(received, run) else {
            return 0;
        };
        // Whole datagrams per send: the kernel's segment count and one IPv4 datagram's bytes.
        let per = MAX_SEGMENTS.min(MAX_GSO_BYTES / segment);
        let mut name = [0u8; SOCKADDR_MAX_LEN];
        let namelen = sockaddr::encode(peer, &mut name);
        let control = cmsg::segment_message(segment as u16);
        let mut staged = 0;
        // A send of one datagram is left to the caller: it may join a send or go alone.
        while per >= 2 && run.len() - staged > segment {
            let bytes = (run.len() - staged).min(per * segment);
            let Ok(slot) = self.take_free(segment) else {
                break;
            };
            let Some(g) = self.free_groups.pop() else {
                self.free.push(slot);
                break;
            };
            let i = slot as usize;
            let at = received.at.wrapping_add(offset + staged);
            let gather = g as usize * MAX_SEGMENTS;
            // SAFETY: slot i is free (`take_free`) and group g was free, so no SQE names the
            // slot's header or name, or the group's gather list or control message: the kernel
            // reads none of them. `i < count` (`self.slots[i]` exists) and `g < groups` (a
            // free group index), so every pointer is inside its region. The gather vector
            // names `bytes` bytes inside the held receive buffer `received` describes
            // (`offset_of` checked `run`'s range, `staged + bytes <= run.len()`; `at` is
            // derived from the pool's region pointer), which the lend taken below keeps from
            // the kernel's receives until this send's completion; nothing writes it meanwhile
            // and no reference to it outlives the handler's call, which ends before the SQE is
            // pushed. Writes go through raw pointers.
            unsafe {
                self.names
                    .at_unchecked(i * SOCKADDR_MAX_LEN)
                    .cast::<[u8; SOCKADDR_MAX_LEN]>()
                    .write(name);
                let v = self.gathers.at_unchecked(gather);
                (*v).iov_base = at.cast_mut().cast();
                (*v).iov_len = bytes;
                let c = self.controls.at_unchecked(g as usize * SEGMENT_CONTROL_LEN);
                ptr::copy_nonoverlapping(control.as_ptr(), c, SEGMENT_CONTROL_LEN);
                let hdr = self.hdrs.at_unchecked(i);
                (*hdr).msg_namelen = namelen;
                (*hdr).msg_iov = v;
                (*hdr).msg_iovlen = 1;
                (*hdr).msg_control = c.cast();
                (*hdr).msg_controllen = SEGMENT_CONTROL_LEN;
            }
            self.groups[g as usize] = Group {
                segment: segment as u16,
                datagrams: bytes.div_ceil(segment) as u16,
                bytes: bytes as u32,
                tail: slot,
                closed: !bytes.is_multiple_of(segment),
                tagged: false,
                buffer: NONE,
                vectors: 1,
                slots: 1,
            };
            let s = &mut self.slots[i];
            s.state = SlotState::Staged;
            s.tag = 0;
            s.len = segment as u32;
            s.group = g;
            s.next = NONE;
            self.staged.push(slot);
            self.lend(i, bid);
            staged += bytes;
        }
        staged
    }

    /// Whether sends staged or in flight read `held`'s buffer in place: then the driver lends
    /// it out ([`RecvPool::lend_out`]) instead of giving it back.
    #[inline]
    pub(crate) fn is_lent(&self, held: &Held) -> bool {
        self.lends
            .get(usize::from(held.bid))
            .is_some_and(|n| *n > 0)
    }

    /// A receive buffer whose last send in place completed, for [`RecvPool::return_lent`].
    #[inline]
    pub(crate) fn pop_returned(&mut self) -> Option<u16> {
        self.returned.pop()
    }

    /// Test support: receive buffers sends read in place now (staged or in flight).
    #[cfg(test)]
    pub(crate) fn lent_buffers(&self) -> u32 {
        self.lent_buffers
    }

    /// Slot `i`'s send completed: if it was sent in place, its vector names its own payload
    /// again and its receive buffer loses a lend (returned after the last).
    #[inline]
    fn unlend(&mut self, i: usize) {
        let bid = mem::replace(&mut self.slots[i].lent, NONE);
        if bid == NONE {
            return;
        }
        // SAFETY: slot i's send completed (or its group's did), so the kernel reads neither its
        // vector nor the receive buffer it named; `i < count` (`self.slots[i]` exists).
        unsafe {
            (*self.iovs.at_unchecked(i)).iov_base = self.payloads.at_unchecked(i * self.max).cast();
        }
        if let Some(n) = self.lends.get_mut(bid as usize)
            && *n > 0
        {
            *n -= 1;
            if *n == 0 {
                self.lent_buffers -= 1;
                self.returned.push(bid as u16);
            }
        }
    }

    /// Free slots.
    pub(crate) fn free(&self) -> usize {
        self.free.len()
    }

    /// Slots an SQE names (directly or through their group's lead) whose completion has not
    /// come back.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Groups formed so far while every group buffer was in use: their datagrams went through
    /// a gather list.
    pub(crate) fn gathered(&self) -> u64 {
        self.gathered
    }

    /// Whether datagrams may still share sends (GSO).
    pub(crate) fn gso(&self) -> bool {
        self.gso
    }

    /// The socket refused a GSO send: send every datagram alone from now on (groups already
    /// staged or in flight go as they are).
    pub(crate) fn stop_gso(&mut self) {
        self.gso = false;
    }

    /// Staged sends (each one SQE to be).
    #[inline]
    pub(crate) fn staged_len(&self) -> usize {
        self.staged.len()
    }

    /// The `nth` staged send, oldest first: the header its `sendmsg` SQE names and the token
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

    /// Test support: what the kernel would send for the `nth` staged send (destination,
    /// datagrams), following the header's pointers and control message as the kernel does.
    #[cfg(test)]
    pub(crate) fn staged_datagrams(&self, nth: usize) -> (Option<SocketAddr>, Vec<Vec<u8>>) {
        let Some((hdr, _)) = self.staged(nth) else {
            return (None, Vec::new());
        };
        // SAFETY: test only; the send is staged, so no SQE names it and the kernel reads none
        // of it. The header's pointers were set by this type into its own regions, and its
        // lengths to what was written there.
        unsafe {
            let name =
                std::slice::from_raw_parts((*hdr).msg_name.cast::<u8>(), (*hdr).msg_namelen as _);
            let mut payload = Vec::new();
            for k in 0..(*hdr).msg_iovlen {
                let iov = *(*hdr).msg_iov.add(k);
                payload.extend_from_slice(std::slice::from_raw_parts(
                    iov.iov_base.cast::<u8>(),
                    iov.iov_len,
                ));
            }
            let control: &[u8] = if (*hdr).msg_controllen == 0 {
                &[]
            } else {
                std::slice::from_raw_parts(
                    (*hdr).msg_control.cast::<u8>().cast_const(),
                    (*hdr).msg_controllen,
                )
            };
            let segment = match control {
                [] => payload.len().max(1),
                c => usize::from(u16::from_ne_bytes([c[16], c[17]])),
            };
            let datagrams = if payload.is_empty() {
                vec![Vec::new()]
            } else {
                payload.chunks(segment).map(<[u8]>::to_vec).collect()
            };
            (sockaddr::parse(name), datagrams)
        }
    }

    /// Test support: the `nth` staged send, which must carry one datagram.
    #[cfg(test)]
    pub(crate) fn staged_datagram(&self, nth: usize) -> (Option<SocketAddr>, Vec<u8>) {
        let (to, mut datagrams) = self.staged_datagrams(nth);
        assert!(datagrams.len() <= 1, "a GSO send of {}", datagrams.len());
        (to, datagrams.pop().unwrap_or_default())
    }

    /// The first `n` staged sends now have SQEs: they (and their groups' datagrams) are in
    /// flight.
    #[inline]
    pub(crate) fn mark_submitted(&mut self, n: usize) {
        for &slot in &self.staged[..n] {
            let s = &mut self.slots[slot as usize];
            debug_assert_eq!(s.state, SlotState::Staged, "slot {slot}");
            // An SQE names the slot now, whatever it was: it is in flight.
            if s.state != SlotState::InFlight {
                s.state = SlotState::InFlight;
                self.in_flight += if s.group == NONE {
                    1
                } else {
                    usize::from(self.groups[s.group as usize].slots)
                };
            }
        }
        if n == self.staged.len() {
            self.staged.clear();
        } else {
            self.staged.drain(..n);
        }
    }

    /// A completion carrying `token`: frees its slot (and its group's slots) if the token
    /// names an in-flight slot of the current generation, and says what was sent.
    #[inline]
    pub(crate) fn complete_send(&mut self, token: u64) -> Result<Sent, UnknownSend> {
        let slot = (token & 0xffff_ffff) as usize;
        let generation = (token >> 32) as u32 & GENERATION_MASK;
        let s = self.slots.get_mut(slot).ok_or(UnknownSend)?;
        if s.state != SlotState::InFlight || s.generation != generation {
            return Err(UnknownSend);
        }
        s.state = SlotState::Free;
        s.generation = (s.generation + 1) & GENERATION_MASK;
        let (tag, group) = (s.tag, s.group);
        if group == NONE {
            self.in_flight -= 1;
            self.unlend(slot);
            self.free.push(slot as u32);
            return Ok(Sent::One { tag });
        }
        let Group {
            datagrams, tagged, ..
        } = self.groups[group as usize];
        self.free_group(slot, group, tagged);
        Ok(Sent::Group {
            datagrams: u32::from(datagrams),
            tagged,
        })
    }

    /// Frees the slots of group `g`, led by `lead` (already marked free); with `tagged`, lists
    /// their tags and lengths in `done`.
    fn free_group(&mut self, lead: usize, g: u32, tagged: bool) {
        self.done.clear();
        let mut at = lead as u32;
        let mut freed = 0;
        while at != NONE {
            let s = &mut self.slots[at as usize];
            if tagged {
                self.done.push((s.tag, s.len as usize));
            }
            freed += 1;
            if at as usize != lead {
                debug_assert_eq!(s.state, SlotState::Joined, "slot {at}");
                s.state = SlotState::Free;
                s.generation = (s.generation + 1) & GENERATION_MASK;
            }
            let next = s.next;
            s.next = NONE;
            self.unlend(at as usize);
            self.free.push(at);
            at = next;
        }
        self.in_flight -= freed;
        self.slots[lead].group = NONE;
        self.free_groups.push(g);
        let buffer = mem::replace(&mut self.groups[g as usize].buffer, NONE);
        if buffer != NONE {
            self.free_buffers.push(buffer);
        }
        // SAFETY: the completion of the lead's SQE came back, so the kernel is done with the
        // lead's header; `lead < count`. The header is pointed back at the slot's own vector,
        // without a control message, as `with_gso` set it up.
        unsafe { point_at_own(&self.hdrs, &self.iovs, &self.names, lead) };
    }

    /// The datagrams of the group the last [`Sent::Group`] completion freed, if any was
    /// tagged: (tag, length), in send order (empty otherwise).
    pub(crate) fn group_done(&self) -> &[(u64, usize)] {
        &self.done
    }

    /// Test support: completes `token` as [`SendSlots::complete_send`] and returns the tag of
    /// a lone datagram (of a group: its first datagram's).
    #[cfg(test)]
    pub(crate) fn complete(&mut self, token: u64) -> Result<u64, UnknownSend> {
        match self.complete_send(token)? {
            Sent::One { tag } => Ok(tag),
            Sent::Group { .. } => Ok(self.done.first().map_or(0, |d| d.0)),
        }
    }

    /// Never free the slots' memory: the kernel may still read it.
    pub(crate) fn leak(&mut self) {
        self.hdrs.leak();
        self.iovs.leak();
        self.names.leak();
        self.payloads.leak();
        self.gathers.leak();
        self.controls.leak();
        self.buffers.leak();
    }
}

/// Points slot `i`'s header at its own name and vector, one datagram, no control message.
///
/// # Safety
///
/// `i` must be below the regions' slot count, and no SQE may name slot `i` (the kernel must
/// not be reading its header).
unsafe fn point_at_own(
    hdrs: &Region<libc::msghdr>,
    iovs: &Region<libc::iovec>,
    names: &Region<u8>,
    i: usize,
) {
    // SAFETY: the caller guarantees i is in range for every region (one header, one vector and
    // SOCKADDR_MAX_LEN name bytes per slot) and that the kernel is not reading the header.
    unsafe {
        let hdr = hdrs.at_unchecked(i);
        (*hdr).msg_name = names.at_unchecked(i * SOCKADDR_MAX_LEN).cast();
        (*hdr).msg_iov = iovs.at_unchecked(i);
        (*hdr).msg_iovlen = 1;
        (*hdr).msg_control = ptr::null_mut();
        (*hdr).msg_controllen = 0;
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

    fn lens(datagrams: &[Vec<u8>]) -> Vec<usize> {
        datagrams.iter().map(Vec::len).collect()
    }

    #[test]
    fn consecutive_datagrams_of_one_size_to_one_destination_share_a_send() {
        let a: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:10".parse().unwrap();
        let mut slots = SendSlots::with_gso(16, 100, true);
        for (i, tag) in [1, 2, 3].into_iter().enumerate() {
            slots.stage(a, &[i as u8; 50], tag).unwrap();
        }
        // Another destination, then a larger datagram: new sends.
        slots.stage(b, &[7; 50], 4).unwrap();
        slots.stage(b, &[8; 60], 5).unwrap();
        // A shorter one ends b's group of one 60 ...
        slots.stage(b, &[9; 10], 6).unwrap();
        // ... so an equal one after it starts a new send.
        slots.stage(b, &[9; 10], 7).unwrap();
        assert_eq!(slots.free(), 16 - 7);
        let (to, first) = slots.staged_datagrams(0);
        assert_eq!(to, Some(a));
        assert_eq!(first, vec![vec![0; 50], vec![1; 50], vec![2; 50]]);
        assert_eq!(slots.staged_datagrams(1), (Some(b), vec![vec![7; 50]]));
        let (_, third) = slots.staged_datagrams(2);
        assert_eq!(lens(&third), [60, 10]);
        assert_eq!(lens(&slots.staged_datagrams(3).1), [10]);
        assert!(slots.staged(4).is_none());
        let tokens: Vec<u64> = (0..4).map(|n| slots.staged(n).unwrap().1).collect();
        slots.mark_submitted(4);
        assert_eq!(slots.in_flight(), 7, "every datagram's slot is in flight");
        let three = Sent::Group {
            datagrams: 3,
            tagged: true,
        };
        assert_eq!(slots.complete_send(tokens[0]), Ok(three));
        assert_eq!(slots.group_done(), [(1, 50), (2, 50), (3, 50)]);
        assert_eq!(slots.in_flight(), 4);
        assert_eq!(slots.complete_send(tokens[1]), Ok(Sent::One { tag: 4 }));
        let two = Sent::Group {
            datagrams: 2,
            tagged: true,
        };
        assert_eq!(slots.complete_send(tokens[2]), Ok(two));
        assert_eq!(slots.group_done(), [(5, 60), (6, 10)]);
        assert_eq!(slots.complete_send(tokens[3]), Ok(Sent::One { tag: 7 }));
        assert_eq!(
            slots.complete_send(tokens[0]),
            Err(UnknownSend),
            "a duplicate"
        );
        assert_eq!((slots.in_flight(), slots.free()), (0, 16));
        // A former lead sends alone again: its header no longer names the gather list.
        for n in 0..16 {
            slots
                .stage(if n % 2 == 0 { a } else { b }, &[n as u8; 3], 0)
                .unwrap();
        }
        for n in 0..16 {
            let (_, d) = slots.staged_datagrams(n);
            assert_eq!(d, vec![vec![n as u8; 3]]);
        }
    }

    #[test]
    fn only_the_same_address_byte_for_byte_joins() {
        let v6: SocketAddr = "[::1]:9".parse().unwrap();
        let other_scope = SocketAddr::V6(std::net::SocketAddrV6::new(
            std::net::Ipv6Addr::LOCALHOST,
            9,
            0,
            3,
        ));
        let v4: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut slots = SendSlots::with_gso(16, 100, true);
        for to in [v6, v6, other_scope, v4, v4, v6] {
            slots.stage(to, b"abc", 0).unwrap();
        }
        let sends: Vec<(Option<SocketAddr>, usize)> = (0..4)
            .map(|n| {
                let (to, d) = slots.staged_datagrams(n);
                (to, d.len())
            })
            .collect();
        assert_eq!(
            sends,
            [
                (Some(v6), 2),
                (Some(other_scope), 1),
                (Some(v4), 2),
                (Some(v6), 1)
            ]
        );
    }

    #[test]
    fn reused_slots_send_to_their_new_destination_and_join_only_it() {
        let v6: SocketAddr = "[::1]:9".parse().unwrap();
        let v4: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let v4b: SocketAddr = "127.0.0.2:9".parse().unwrap();
        let mut slots = SendSlots::with_gso(2, 100, true);
        // Both slots used once: slot 0 held an IPv6 destination (all 28 name bytes), slot 1
        // joined its send (no name of its own).
        slots.stage(v6, b"abc", 0).unwrap();
        slots.stage(v6, b"abc", 0).unwrap();
        let (_, token) = slots.staged(0).unwrap();
        slots.mark_submitted(1);
        slots.complete_send(token).unwrap();
        // IPv4 datagrams in these slots (an IPv4 name leaves the old IPv6 bytes after its 16):
        // the same IPv4 address joins the lead, another does not (and finds no slot left).
        for to in [v4, v4, v4b] {
            match slots.stage(to, b"abc", 0) {
                Ok(()) | Err(Refused::Full) => {}
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(
            slots.staged_datagrams(0),
            (Some(v4), vec![b"abc".to_vec(); 2])
        );
        let (_, token) = slots.staged(0).unwrap();
        slots.mark_submitted(1);
        slots.complete_send(token).unwrap();
        // Each slot now leads a send of its own, the one that only ever joined included, to
        // its own destination.
        slots.stage(v4b, b"de", 0).unwrap();
        slots.stage(v6, b"f", 0).unwrap();
        assert_eq!(slots.staged_datagram(0), (Some(v4b), b"de".to_vec()));
        assert_eq!(slots.staged_datagram(1), (Some(v6), b"f".to_vec()));
    }

    #[test]
    fn a_send_carries_at_most_64_datagrams_and_65507_bytes() {
        let a: SocketAddr = "[::1]:9".parse().unwrap();
        let mut slots = SendSlots::with_gso(256, 2048, true);
        for _ in 0..MAX_SEGMENTS + 1 {
            slots.stage(a, &[1; 10], 0).unwrap();
        }
        assert_eq!(slots.staged_datagrams(0).1.len(), MAX_SEGMENTS);
        assert_eq!(slots.staged_datagrams(1).1.len(), 1);
        let mut slots = SendSlots::with_gso(256, 2048, true);
        for _ in 0..60 {
            slots.stage(a, &[1; 1200], 0).unwrap();
        }
        let per_send = MAX_GSO_BYTES / 1200;
        assert_eq!(slots.staged_datagrams(0).1.len(), per_send);
        assert_eq!(slots.staged_datagrams(1).1.len(), 60 - per_send);
    }

    #[test]
    fn empty_datagrams_and_stopped_gso_send_alone() {
        let a: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut slots = SendSlots::with_gso(8, 100, true);
        slots.stage(a, b"", 0).unwrap();
        slots.stage(a, b"", 0).unwrap();
        assert!(
            slots.staged(1).is_some(),
            "empty datagrams never share a send"
        );
        slots.mark_submitted(2);
        let mut slots = SendSlots::with_gso(8, 100, true);
        slots.stage(a, b"xy", 0).unwrap();
        slots.stop_gso();
        slots.stage(a, b"xy", 0).unwrap();
        assert!(!slots.gso());
        assert!(slots.staged(1).is_some());
        // Without GSO from the start, nothing is ever grouped.
        let mut slots = SendSlots::new(8, 100);
        slots.stage(a, b"xy", 0).unwrap();
        slots.stage(a, b"xy", 0).unwrap();
        assert!(slots.staged(1).is_some());
    }

    #[test]
    fn a_group_is_never_joined_once_submitted() {
        let a: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut slots = SendSlots::with_gso(8, 100, true);
        slots.stage(a, b"ab", 0).unwrap();
        slots.stage(a, b"cd", 0).unwrap();
        let (_, token) = slots.staged(0).unwrap();
        slots.mark_submitted(1);
        slots.stage(a, b"ef", 0).unwrap();
        assert_eq!(lens(&slots.staged_datagrams(0).1), [2], "a new send");
        let untagged = Sent::Group {
            datagrams: 2,
            tagged: false,
        };
        assert_eq!(slots.complete_send(token), Ok(untagged));
        assert!(slots.group_done().is_empty(), "no tags to report");
        assert_eq!(slots.in_flight(), 0);
    }

    /// Group buffers: a group gets one while one is free, its datagrams end to end in it (the
    /// lead's copied there when the second joins); groups formed while all are in use name
    /// their slots through the gather list; both send the same datagrams, and a completion
    /// frees its group's buffer for the next group (the last freed first).
    #[test]
    fn groups_use_a_buffer_while_one_is_free_and_a_gather_list_after() {
        let a: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:10".parse().unwrap();
        let count = 4 * GROUP_BUFFERS;
        let mut slots = SendSlots::with_gso(count, 2048, true);
        // GROUP_BUFFERS + 1 groups of two, alternating destinations, each datagram its own
        // bytes; the last group's second datagram is shorter.
        let datagram = |n: usize, k: usize| vec![(n * 2 + k) as u8; if k == 1 { 7 } else { 9 }];
        for n in 0..=GROUP_BUFFERS {
            let to = if n % 2 == 0 { a } else { b };
            slots.stage(to, &datagram(n, 0), 0).unwrap();
            slots.stage(to, &datagram(n, 1), n as u64 + 1).unwrap();
        }
        assert_eq!(slots.gathered(), 1, "one group found every buffer in use");
        for n in 0..=GROUP_BUFFERS {
            let (to, d) = slots.staged_datagrams(n);
            assert_eq!(to, Some(if n % 2 == 0 { a } else { b }));
            assert_eq!(d, vec![datagram(n, 0), datagram(n, 1)], "send {n}");
            let (hdr, _) = slots.staged(n).unwrap();
            // SAFETY: test only; the send is staged, so the kernel reads none of it.
            let iovlen = unsafe { (*hdr).msg_iovlen };
            assert_eq!(iovlen, if n < GROUP_BUFFERS { 1 } else { 2 }, "send {n}");
        }
        let tokens: Vec<u64> = (0..=GROUP_BUFFERS)
            .map(|n| slots.staged(n).unwrap().1)
            .collect();
        slots.mark_submitted(GROUP_BUFFERS + 1);
        // The first group's completion frees its buffer and reports its tagged datagram.
        let two = Sent::Group {
            datagrams: 2,
            tagged: true,
        };
        assert_eq!(slots.complete_send(tokens[0]), Ok(two));
        assert_eq!(slots.group_done(), [(0, 9), (1, 7)]);
        // The next group takes that buffer: one vector again.
        slots.stage(a, &[5; 30], 0).unwrap();
        slots.stage(a, &[6; 30], 0).unwrap();
        slots.stage(a, &[7; 12], 0).unwrap();
        assert_eq!(slots.gathered(), 1);
        assert_eq!(
            slots.staged_datagrams(0),
            (Some(a), vec![vec![5; 30], vec![6; 30], vec![7; 12]])
        );
        let (hdr, token) = slots.staged(0).unwrap();
        // SAFETY: test only; the send is staged, so the kernel reads none of it.
        assert_eq!(unsafe { (*hdr).msg_iovlen }, 1);
        slots.mark_submitted(1);
        for t in tokens.into_iter().skip(1).chain([token]) {
            slots.complete_send(t).unwrap();
        }
        assert_eq!((slots.in_flight(), slots.free()), (0, count));
        assert_eq!(slots.free_buffers.len(), GROUP_BUFFERS);
    }

    /// A group in a buffer holds up to 65,507 bytes: the datagram that would pass that starts
    /// the next send, which gets a buffer of its own.
    #[test]
    fn a_group_buffer_is_filled_to_the_gso_limit_and_no_further() {
        let a: SocketAddr = "[::1]:9".parse().unwrap();
        let mut slots = SendSlots::with_gso(256, 2048, true);
        let sizes = [2000usize; 40];
        for (n, len) in sizes.iter().enumerate() {
            slots.stage(a, &vec![n as u8; *len], 0).unwrap();
        }
        let per_send = MAX_GSO_BYTES / 2000;
        let (_, first) = slots.staged_datagrams(0);
        assert_eq!(first.len(), per_send);
        assert!(
            first
                .iter()
                .enumerate()
                .all(|(n, d)| *d == vec![n as u8; 2000])
        );
        let (_, second) = slots.staged_datagrams(1);
        assert_eq!(second.len(), 40 - per_send);
        assert_eq!(second[0], vec![per_send as u8; 2000]);
        assert_eq!(slots.gathered(), 0);
    }

    /// Few slots, few groups: a pool of 2 slots has one group and one buffer; without GSO
    /// none.
    #[test]
    fn group_buffers_are_bounded_by_the_groups() {
        let slots = SendSlots::with_gso(2, 100, true);
        assert_eq!(slots.free_buffers.len(), 1);
        let slots = SendSlots::with_gso(4096, 100, true);
        assert_eq!(slots.free_buffers.len(), GROUP_BUFFERS);
        let slots = SendSlots::with_gso(4096, 100, false);
        assert!(slots.free_buffers.is_empty());
    }

    /// Writes `bytes` into `held`'s buffer at `offset` as the kernel would, and returns them
    /// as the driver hands them to a handler: a slice of the held buffer.
    fn receive<'a>(pool: &'a RecvPool, held: &Held, offset: usize, bytes: &[u8]) -> &'a [u8] {
        assert!(offset + bytes.len() <= pool.buf_len);
        // SAFETY: test only; the buffer is held (no receive is armed on this pool, and the
        // kernel never saw it), `offset + len` lies inside it (checked above), and the slice
        // returned is the only view of those bytes while the test reads them.
        unsafe {
            let at = pool.buffer(held).add(offset);
            ptr::copy_nonoverlapping(bytes.as_ptr(), at, bytes.len());
            std::slice::from_raw_parts(at, bytes.len())
        }
    }

    /// Every buffer is listed, spare or held, and none is lent.
    fn all_back(pool: &RecvPool, slots: &SendSlots) {
        let (listed, spares, held) = pool.census();
        assert_eq!(held, 0, "every buffer back");
        assert_eq!(listed as usize + spares, pool.held.len());
        assert_eq!((pool.lent_out(), slots.lent_buffers()), (0, 0));
    }

    /// An echo of a GRO-coalesced buffer's datagrams to their sender leaves as one GSO send
    /// whose one vector is the receive buffer itself; the buffer is lent until the send's
    /// completion and then goes back to the spares, and the slots send their own bytes again.
    #[test]
    fn an_echo_of_a_coalesced_buffer_is_one_send_of_the_buffer_itself() {
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut pool = RecvPool::new(8, 16, 0, 8192, 0).unwrap();
        let mut slots = SendSlots::with_gso(64, 1500, true);
        slots.lend_from(8);
        let held = pool.take(3).unwrap();
        // Six datagrams of 1,000 bytes and a last of 300, back to back, as GRO leaves them.
        let bytes: Vec<u8> = (0..6300u32).map(|i| (i * 7 % 251) as u8).collect();
        let payload = receive(&pool, &held, 64, &bytes);
        for datagram in payload.chunks(1000) {
            let r = pool.received(&held, datagram);
            assert_eq!(
                slots.stage_received(peer, &r, datagram, 0),
                Ok(Placed::InPlace)
            );
        }
        assert!(slots.staged(1).is_none(), "one send");
        let (to, sent) = slots.staged_datagrams(0);
        assert_eq!(to, Some(peer));
        assert_eq!(lens(&sent), [1000, 1000, 1000, 1000, 1000, 1000, 300]);
        assert_eq!(
            sent.concat(),
            bytes,
            "the bytes sent are the bytes received"
        );
        let (hdr, token) = slots.staged(0).unwrap();
        // SAFETY: test only; the send is staged, so nothing but this test reads the header.
        let (iovlen, base) = unsafe { ((*hdr).msg_iovlen, (*(*hdr).msg_iov).iov_base) };
        assert_eq!(iovlen, 1, "one vector");
        assert_eq!(
            base.cast::<u8>().cast_const(),
            payload.as_ptr(),
            "the receive buffer"
        );
        assert!(slots.is_lent(&held));
        pool.lend_out(held);
        pool.publish();
        assert_eq!((pool.lent_out(), slots.lent_buffers()), (1, 1));
        slots.mark_submitted(1);
        assert_eq!(slots.pop_returned(), None, "in flight: still lent");
        assert_eq!(
            slots.complete_send(token),
            Ok(Sent::Group {
                datagrams: 7,
                tagged: false
            })
        );
        let bid = slots
            .pop_returned()
            .expect("the last send of the buffer completed");
        assert_eq!(bid, 3);
        assert!(pool.return_lent(bid));
        all_back(&pool, &slots);
        // The slots are plain slots again: copied datagrams send their own bytes.
        for n in 0..8u8 {
            slots.stage(peer, &[n; 10], 0).unwrap();
        }
        assert_eq!(
            slots.staged_datagrams(0).1,
            vec![vec![0u8; 10]; 1]
                .into_iter()
                .chain((1..8).map(|n| vec![n; 10]))
                .collect::<Vec<_>>()
        );
    }

    /// Every staged send's datagrams, in order, and how many sends there were.
    fn all_staged(slots: &SendSlots) -> (Vec<Vec<u8>>, Vec<u64>) {
        let (mut sent, mut tokens) = (Vec::new(), Vec::new());
        while let Some((_, token)) = slots.staged(tokens.len()) {
            sent.extend(slots.staged_datagrams(tokens.len()).1);
            tokens.push(token);
        }
        (sent, tokens)
    }

    /// A coalesced buffer staged whole (`stage_received_run`) is one GSO send that takes one
    /// slot, its one vector the receive buffer itself, a short last datagram included; the
    /// completion counts every datagram and returns the buffer and the slot.
    #[test]
    fn a_run_staged_whole_is_one_send_of_one_slot() {
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut pool = RecvPool::new(8, 16, 0, 8192, 0).unwrap();
        let mut slots = SendSlots::with_gso(64, 1500, true);
        slots.lend_from(8);
        let held = pool.take(5).unwrap();
        let bytes: Vec<u8> = (0..6300u32).map(|i| (i * 7 % 251) as u8).collect();
        let payload = receive(&pool, &held, 64, &bytes);
        let r = pool.received(&held, payload);
        assert_eq!(slots.stage_received_run(peer, &r, payload, 1000), 6300);
        assert_eq!(slots.free(), 63, "one slot for seven datagrams");
        let (sent, tokens) = all_staged(&slots);
        assert_eq!(tokens.len(), 1, "one send");
        assert_eq!(lens(&sent), [1000, 1000, 1000, 1000, 1000, 1000, 300]);
        assert_eq!(
            sent.concat(),
            bytes,
            "the bytes sent are the bytes received"
        );
        assert_eq!(slots.staged_datagrams(0).0, Some(peer));
        let (hdr, _) = slots.staged(0).unwrap();
        // SAFETY: test only; the send is staged, so nothing but this test reads the header.
        let (iovlen, base) = unsafe { ((*hdr).msg_iovlen, (*(*hdr).msg_iov).iov_base) };
        assert_eq!(
            (iovlen, base.cast::<u8>().cast_const()),
            (1, payload.as_ptr())
        );
        // Closed by its short last datagram: nothing joins it.
        let more = receive(&pool, &held, 7000, &[1; 300]);
        let r2 = pool.received(&held, more);
        assert_eq!(
            slots.stage_received(peer, &r2, more, 0),
            Ok(Placed::InPlace)
        );
        let (_, tokens) = all_staged(&slots);
        assert_eq!(tokens.len(), 2, "a send of its own");
        assert!(slots.is_lent(&held));
        pool.lend_out(held);
        slots.mark_submitted(2);
        assert_eq!(slots.in_flight(), 2, "two slots in flight");
        assert_eq!(
            slots.complete_send(tokens[0]),
            Ok(Sent::Group {
                datagrams: 7,
                tagged: false
            })
        );
        assert_eq!(
            slots.pop_returned(),
            None,
            "the lone send still reads the buffer"
        );
        assert_eq!(slots.complete_send(tokens[1]), Ok(Sent::One { tag: 0 }));
        assert_eq!(slots.pop_returned(), Some(5));
        assert!(pool.return_lent(5));
        all_back(&pool, &slots);
        assert_eq!((slots.free(), slots.in_flight()), (64, 0));
        // The slot sends its own bytes again.
        slots.stage(peer, &[3; 10], 0).unwrap();
        assert_eq!(slots.staged_datagram(0), (Some(peer), vec![3; 10]));
    }

    /// A run that does not divide at the segment size, longer than one send carries: cut into
    /// sends of 64 datagrams (or 65,507 bytes), the last short; a lone datagram left over is
    /// the caller's; out of slots, the part staged is returned; GSO off, another buffer's
    /// bytes, a segment larger than a slot or half the buffers lent stage nothing.
    #[test]
    fn a_run_is_cut_at_the_kernel_limits_and_staged_only_where_it_may() {
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut pool = RecvPool::new(4, 16, 0, 70_000, 0).unwrap();
        let mut slots = SendSlots::with_gso(64, 1500, true);
        slots.lend_from(4);
        let held: Vec<Held> = (0..3).map(|bid| pool.take(bid).unwrap()).collect();
        // 1,000 bytes of 7-byte datagrams: 142 whole and one of 6.
        let bytes: Vec<u8> = (0..1000u32).map(|i| (i % 253) as u8).collect();
        let payload = receive(&pool, &held[0], 64, &bytes);
        let r = pool.received(&held[0], payload);
        assert_eq!(slots.stage_received_run(peer, &r, payload, 7), 1000);
        let (sent, tokens) = all_staged(&slots);
        assert_eq!(tokens.len(), 3);
        assert_eq!(sent.len(), 143);
        assert_eq!(sent.concat(), bytes);
        assert_eq!(sent.last().map(Vec::len), Some(6));
        // 44 datagrams of 1,500 bytes: 43 fit 65,507 bytes; the 44th is left over.
        let big: Vec<u8> = (0..44 * 1500u32).map(|i| (i % 241) as u8).collect();
        let payload = receive(&pool, &held[1], 64, &big);
        let r = pool.received(&held[1], payload);
        assert_eq!(slots.stage_received_run(peer, &r, payload, 1500), 43 * 1500);
        assert_eq!(slots.staged_datagrams(3).1.concat(), big[..43 * 1500]);
        // Half of 4 buffers lent: a third buffer's run is not staged whole.
        let third = receive(&pool, &held[2], 64, &[5; 3000]);
        let r3 = pool.received(&held[2], third);
        assert_eq!(slots.stage_received_run(peer, &r3, third, 1000), 0);
        // Bytes that are not the received ones, or a segment above a slot's 1,500.
        assert_eq!(slots.stage_received_run(peer, &r, &big[..3000], 1000), 0);
        assert_eq!(slots.stage_received_run(peer, &r, payload, 3000), 0);
        // One slot left for a run of two sends (66 datagrams of 1,000): the first is staged.
        let other: SocketAddr = "127.0.0.1:10".parse().unwrap();
        while slots.free() > 1 {
            let to = if slots.free().is_multiple_of(2) {
                peer
            } else {
                other
            };
            slots.stage(to, &[0; 9], 0).unwrap();
        }
        assert_eq!(slots.stage_received_run(peer, &r, payload, 1000), 64_000);
        assert_eq!(slots.free(), 0);
        slots.stop_gso();
        assert_eq!(slots.stage_received_run(peer, &r, payload, 1000), 0);
        // Every slot, group and buffer comes back.
        let (_, tokens) = all_staged(&slots);
        slots.mark_submitted(tokens.len());
        for token in tokens {
            slots.complete_send(token).unwrap();
            while let Some(bid) = slots.pop_returned() {
                pool.lend_out(Held { bid });
                assert!(pool.return_lent(bid));
            }
        }
        pool.give_back(held.into_iter().nth(2).unwrap());
        all_back(&pool, &slots);
        assert_eq!((slots.free(), slots.in_flight()), (64, 0));
    }

    /// Part of a datagram is sent in place too; bytes from elsewhere, or a datagram beyond
    /// the bound of half the receive buffers lent, are copied; a copied datagram never joins
    /// a send in place (nor the reverse); without GSO each datagram is its own send. Every
    /// buffer comes back once every send completed, whatever the completions said.
    #[test]
    fn sends_in_place_are_bounded_and_every_buffer_comes_back() {
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        for gso in [true, false] {
            let mut pool = RecvPool::new(4, 16, 0, 4096, 0).unwrap();
            let mut slots = SendSlots::with_gso(64, 1500, gso);
            slots.lend_from(4);
            let held: Vec<Held> = (0..3).map(|bid| pool.take(bid).unwrap()).collect();
            let mut tokens = Vec::new();
            let mut expect = Vec::new();
            for (k, h) in held.iter().enumerate() {
                let datagram = receive(&pool, h, 100, &[k as u8 + 1; 200]);
                let r = pool.received(h, datagram);
                // A relay that strips a 4-byte header.
                let placed = slots.stage_received(peer, &r, &datagram[4..], 0).unwrap();
                // Half of 4 buffers may be lent: the third is copied.
                let want = if k < 2 {
                    Placed::InPlace
                } else {
                    Placed::CopiedOverCap
                };
                assert_eq!(placed, want, "buffer {k}");
                expect.push(vec![k as u8 + 1; 196]);
                // Bytes that are not the datagram's are copied, and start a send of their own.
                let other = vec![9u8; 196];
                assert_eq!(
                    slots.stage_received(peer, &r, &other, 0),
                    Ok(Placed::Copied)
                );
                expect.push(other);
            }
            let mut sent = Vec::new();
            let mut n = 0;
            while let Some((_, token)) = slots.staged(n) {
                sent.extend(slots.staged_datagrams(n).1);
                tokens.push(token);
                n += 1;
            }
            assert_eq!(sent, expect, "gso {gso}");
            // In place and copied never share a send; the last three, all copied, do.
            assert_eq!(n, if gso { 4 } else { 6 }, "gso {gso}");
            let lent: Vec<bool> = held.iter().map(|h| slots.is_lent(h)).collect();
            assert_eq!(lent, [true, true, false]);
            for h in held {
                if slots.is_lent(&h) {
                    pool.lend_out(h);
                } else {
                    pool.give_back(h);
                }
            }
            slots.mark_submitted(n);
            // Completions in any order (a failed or cancelled send completes the same way).
            for token in tokens.into_iter().rev() {
                slots.complete_send(token).unwrap();
                while let Some(bid) = slots.pop_returned() {
                    assert!(pool.return_lent(bid));
                }
            }
            all_back(&pool, &slots);
            assert_eq!((slots.free(), slots.in_flight()), (64, 0));
        }
    }

    /// The kernel takes `n` listed buffers (as completions name them, in the order they were
    /// listed) and the shard gives them back: one turn.
    fn turn(pool: &mut RecvPool, order: &mut std::collections::VecDeque<u16>, n: usize) {
        let held: Vec<Held> = (0..n)
            .map(|_| {
                let bid = order.pop_front().expect("a listed buffer");
                pool.take(bid).expect("listed, not held")
            })
            .collect();
        for h in held {
            pool.give_back(h);
        }
        let before = pool.listed as usize;
        pool.publish();
        // What publish listed, in order: the top of the spares first.
        order.extend(pool.ring.last_pushed(pool.listed as usize - before));
    }

    /// The receive pool lists only what the load takes: every buffer at start, then twice the
    /// most taken in a turn lately (at least [`MIN_LISTED`]); a turn that takes every listed buffer doubles
    /// the listing; the buffers given back last are listed first; a buffer is never listed
    /// twice, and every buffer is listed, spare or held.
    #[test]
    fn the_receive_ring_lists_what_the_load_takes() {
        let count = 8 * MIN_LISTED;
        let mut pool = RecvPool::new(count, 16, 0, 64, 0).unwrap();
        let mut order: std::collections::VecDeque<u16> = (0..count as u16).collect();
        assert_eq!(pool.census(), (count, 0, 0));
        // A light load: 3 buffers a turn. The listing shrinks to the minimum.
        for _ in 0..2 * count {
            turn(&mut pool, &mut order, 3);
            let (listed, spares, held) = pool.census();
            assert_eq!(listed as usize + spares + held, count as usize);
            assert_eq!(listed as usize, order.len());
        }
        assert_eq!(pool.census().0, MIN_LISTED);
        // The light load cycles through the minimum's listed buffers only (plus those given
        // back last): the kernel's next buffers are ones given back within the last few turns.
        let cycled: std::collections::HashSet<u16> = order.iter().copied().collect();
        assert_eq!(cycled.len(), MIN_LISTED as usize, "never listed twice");
        // A burst takes all of them: the next publish lists twice as many, and a turn that
        // takes all of those, twice as many again.
        turn(&mut pool, &mut order, MIN_LISTED as usize);
        assert_eq!(pool.census().0, 2 * MIN_LISTED);
        turn(&mut pool, &mut order, 2 * MIN_LISTED as usize);
        assert_eq!(pool.census().0, 4 * MIN_LISTED);
        let cycled: std::collections::HashSet<u16> = order.iter().copied().collect();
        assert_eq!(cycled.len(), 4 * MIN_LISTED as usize, "never listed twice");
        // The kernel ran dry: the count starts again from the ring's truth.
        pool.ran_dry();
        assert_eq!(pool.census().0, 0);
        pool.publish();
        assert!(pool.census().0 >= MIN_LISTED);
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
