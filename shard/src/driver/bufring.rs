//! A provided-buffer ring (kernel 5.19+): the ring of entries through which the kernel learns
//! which receive buffers it may fill. The buffers themselves belong to the receive pool
//! (`pool.rs`), which pushes each one's address here.
//!
//! ```text
//!   ring (page-aligned, entries x 16 bytes, shared with the kernel)
//!   +-------------------------------+-------------------------------+----
//!   | addr u64 | len u32 | bid u16 | tail u16 | addr | len | bid | resv | ...
//!   +-------------------------------+-------------------------------+----
//!     entry 0 (its last 2 bytes are the ring's tail)   entry 1
//! ```
//!
//! The kernel consumes entries from its private head; we publish entries by writing them at
//! `tail & mask` and then storing the new tail with `Release`, so the kernel never sees an entry
//! before its fields. Entry 0's last field doubles as the tail, so entries are written field by
//! field and never as a whole struct. The ring memory must stay valid while the ring is
//! registered: dropping a registered (or leaked) ring leaks its memory instead of freeing it.
#![allow(unsafe_code)]

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::IoUring;

const ENTRY_SIZE: usize = 16;
const TAIL_OFFSET: usize = 14;

/// One shard's buffer ring: the entries, not the buffers they name.
pub(crate) struct BufRing {
    ring: NonNull<u8>,
    layout: Layout,
    mask: u16,
    tail: u16,
    bgid: u16,
    registered: bool,
    leaked: bool,
}

impl BufRing {
    /// Allocates a ring of `entries` (a power of two, at most 32768) entries, all empty.
    pub(crate) fn new(entries: u32, bgid: u16) -> io::Result<Self> {
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
        Ok(Self {
            ring,
            layout,
            mask: count - 1,
            tail: 0,
            bgid,
            registered: false,
            leaked: false,
        })
    }

    /// Registers the ring with `ring` under this ring's buffer group id.
    pub(crate) fn register(&mut self, ring: &IoUring) -> io::Result<()> {
        let entries = self.mask + 1;
        // SAFETY: `self.ring` points to `entries` zero-initialised 16-byte entries, page aligned,
        // and stays allocated while registered (`Drop` leaks a registered ring). The buffers the
        // entries name belong to the receive pool, which outlives the registration the same way.
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

    /// Whether the kernel may read the ring.
    pub(crate) fn is_registered(&self) -> bool {
        self.registered
    }

    /// Never free the ring's memory: the kernel may still read it.
    pub(crate) fn leak(&mut self) {
        self.leaked = true;
    }

    /// The buffer group id SQEs name to draw from this ring.
    pub(crate) fn bgid(&self) -> u16 {
        self.bgid
    }

    /// Offers the kernel buffer `bid`, `len` bytes at `addr` (visible after the next
    /// [`BufRing::publish`]). The caller keeps that memory valid while the ring is registered.
    pub(crate) fn push(&mut self, bid: u16, addr: *mut u8, len: u32) {
        let idx = usize::from(self.tail & self.mask);
        let addr = addr as u64;
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

    /// Test support: the buffer ids of the last `n` entries pushed, in push order.
    #[cfg(test)]
    pub(crate) fn last_pushed(&self, n: usize) -> Vec<u16> {
        (0..n)
            .map(|k| {
                let at = self.tail.wrapping_sub((n - k) as u16);
                let idx = usize::from(at & self.mask);
                // SAFETY: idx <= mask, so the entry lies inside the ring allocation; test only,
                // on a ring no kernel reads (never registered).
                unsafe {
                    self.ring
                        .as_ptr()
                        .add(idx * ENTRY_SIZE + 12)
                        .cast::<u16>()
                        .read_volatile()
                }
            })
            .collect()
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
        if self.registered || self.leaked {
            return;
        }
        // SAFETY: allocated in `new` with this layout, and unregistered (checked above), so the
        // kernel no longer reads it.
        unsafe { dealloc(self.ring.as_ptr(), self.layout) };
    }
}
