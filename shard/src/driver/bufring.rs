//! A provided-buffer ring (kernel 5.19+): the buffers multishot `recvmsg` fills.
//!
//! ```text
//!   ring (page-aligned, entries x 16 bytes, shared with the kernel)
//!   +-------------------------------+-------------------------------+----
//!   | addr u64 | len u32 | bid u16 | tail u16 | addr | len | bid | resv | ...
//!   +-------------------------------+-------------------------------+----
//!     entry 0 (its last 2 bytes are the ring's tail)   entry 1
//!
//!   buffers: one allocation, entries x buf_len bytes; buffer `bid` starts at bid * buf_len
//! ```
//!
//! The kernel consumes entries from its private head; we publish entries by writing them at
//! `tail & mask` and then storing the new tail with `Release`, so the kernel never sees an entry
//! before its fields. Entry 0's last field doubles as the tail, so entries are written field by
//! field and never as a whole struct. Buffer memory and ring memory must stay valid until the
//! ring is unregistered or the io_uring is gone: the driver unregisters before dropping this, or
//! leaks it when in-flight receives could not be drained.
#![allow(unsafe_code)]

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::IoUring;

const ENTRY_SIZE: usize = 16;
const TAIL_OFFSET: usize = 14;

/// One shard's buffer ring and the buffers it hands out.
pub(crate) struct BufRing {
    ring: NonNull<u8>,
    layout: Layout,
    mask: u16,
    tail: u16,
    bufs: Vec<u8>,
    buf_len: usize,
    bgid: u16,
    registered: bool,
}

impl BufRing {
    /// Allocates `entries` (a power of two, at most 32768) buffers of `buf_len` bytes each.
    pub(crate) fn new(entries: u32, buf_len: usize, bgid: u16) -> io::Result<Self> {
        let count = u16::try_from(entries)
            .ok()
            .filter(|e| e.is_power_of_two() && *e <= 32768)
            .ok_or_else(|| {
                io::Error::other("buffer ring entries must be a power of two <= 32768")
            })?;
        let layout = Layout::from_size_align(usize::from(count) * ENTRY_SIZE, 4096)
            .map_err(io::Error::other)?;
        // SAFETY: the layout has a non-zero size (count >= 1) and a valid power-of-two alignment.
        let raw = unsafe { alloc_zeroed(layout) };
        let ring = NonNull::new(raw).ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        let mut this = Self {
            ring,
            layout,
            mask: count - 1,
            tail: 0,
            bufs: vec![0; usize::from(count) * buf_len],
            buf_len,
            bgid,
            registered: false,
        };
        for bid in 0..count {
            this.push(bid);
        }
        this.publish();
        Ok(this)
    }

    /// Registers the ring with `ring` under this ring's buffer group id.
    pub(crate) fn register(&mut self, ring: &IoUring) -> io::Result<()> {
        let entries = self.mask + 1;
        // SAFETY: `self.ring` points to `entries` zero-initialised 16-byte entries, page aligned,
        // and stays allocated until `self` is dropped; the driver unregisters (or leaks `self`)
        // before that, and the buffers the entries point to live in `self.bufs`, which is never
        // resized.
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                self.ring.as_ptr() as u64,
                entries,
                self.bgid,
                0,
            )?;
        }
        self.registered = true;
        Ok(())
    }

    /// Unregisters from `ring`; after this the kernel no longer reads the ring.
    pub(crate) fn unregister(&mut self, ring: &IoUring) -> io::Result<()> {
        if self.registered {
            ring.submitter().unregister_buf_ring(self.bgid)?;
            self.registered = false;
        }
        Ok(())
    }

    /// The buffer group id SQEs name to draw from this ring.
    pub(crate) fn bgid(&self) -> u16 {
        self.bgid
    }

    /// Buffer `bid`, `len` bytes of it (clamped to the buffer's size).
    pub(crate) fn buffer(&self, bid: u16, len: usize) -> &[u8] {
        let start = usize::from(bid) * self.buf_len;
        &self.bufs[start..start + len.min(self.buf_len)]
    }

    /// Whether `bid` names one of this ring's buffers.
    pub(crate) fn contains(&self, bid: u16) -> bool {
        bid <= self.mask
    }

    /// Gives buffer `bid` back to the kernel (visible after the next [`BufRing::publish`]).
    pub(crate) fn push(&mut self, bid: u16) {
        let idx = usize::from(self.tail & self.mask);
        let start = usize::from(bid) * self.buf_len;
        let addr = self.bufs[start..].as_ptr() as u64;
        let len = self.buf_len as u32;
        // SAFETY: idx <= mask, so the entry lies inside the ring allocation; the kernel only
        // reads entries between its head and the published tail, and this one is past the
        // published tail until `publish`. The three fields are written separately so that
        // entry 0's trailing bytes (the tail) are never touched here. Offsets 0, 8 and 12 are
        // aligned for u64, u32 and u16 within a page-aligned ring of 16-byte entries.
        unsafe {
            let entry = self.ring.as_ptr().add(idx * ENTRY_SIZE);
            entry.cast::<u64>().write_volatile(addr);
            entry.add(8).cast::<u32>().write_volatile(len);
            entry.add(12).cast::<u16>().write_volatile(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes every pushed entry visible to the kernel.
    pub(crate) fn publish(&self) {
        // SAFETY: the tail lives at byte 14 of the ring, 2-byte aligned, inside the allocation;
        // the kernel reads it with acquire semantics, and we are its only writer.
        let tail = unsafe { &*self.ring.as_ptr().add(TAIL_OFFSET).cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; the driver unregisters the ring before
        // dropping it (or leaks it instead), so the kernel no longer reads it.
        unsafe { dealloc(self.ring.as_ptr(), self.layout) };
    }
}
