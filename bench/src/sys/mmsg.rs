//! Batched datagram I/O with `recvmmsg(2)` / `sendmmsg(2)`.
//!
//! ```text
//!   hdrs[i].msg_hdr ──msg_iov──▶ iovecs[i] ──iov_base──▶ bufs[i*cap .. (i+1)*cap]
//!                  └─msg_name─▶ addrs[i]   (only when built `with_addrs`)
//! ```
//!
//! Invariant: the four vectors are allocated once in [`MmsgBatch::new`] and
//! never resized, so the pointers stored in `hdrs` and `iovecs` stay valid for
//! the life of the batch (moving the struct moves only the `Vec` handles, not
//! their heap storage). That is also why the batch is neither `Send` nor
//! `Sync`: it holds raw pointers and belongs to the thread that made it.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::RawFd;

/// `count` datagram slots of `cap` bytes each, with their headers.
pub struct MmsgBatch {
    cap: usize,
    with_addrs: bool,
    bufs: Vec<u8>,
    iovecs: Vec<libc::iovec>,
    #[expect(dead_code, reason = "owned here because `hdrs` point into it")]
    addrs: Vec<libc::sockaddr_storage>,
    hdrs: Vec<libc::mmsghdr>,
}

const ADDR_LEN: libc::socklen_t = size_of::<libc::sockaddr_storage>() as libc::socklen_t;

impl MmsgBatch {
    /// `count` slots of `cap` bytes. `with_addrs`: record each datagram's
    /// source on receive and send each to that address (unconnected sockets);
    /// without it, sends go to the socket's connected peer.
    #[must_use]
    pub fn new(count: usize, cap: usize, with_addrs: bool) -> Self {
        let count = count.max(1);
        let mut bufs = vec![0u8; count * cap];
        let mut iovecs: Vec<libc::iovec> = (0..count)
            .map(|i| libc::iovec {
                iov_base: bufs[i * cap..].as_mut_ptr().cast(),
                iov_len: cap,
            })
            .collect();
        // SAFETY: sockaddr_storage is a plain C struct; all-zero is valid.
        let mut addrs: Vec<libc::sockaddr_storage> =
            (0..count).map(|_| unsafe { std::mem::zeroed() }).collect();
        let hdrs = (0..count)
            .map(|i| {
                // SAFETY: mmsghdr is a plain C struct (pointers, lengths,
                // flags); all-zero is a valid, empty header.
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                h.msg_hdr.msg_iov = &raw mut iovecs[i];
                h.msg_hdr.msg_iovlen = 1;
                if with_addrs {
                    h.msg_hdr.msg_name = (&raw mut addrs[i]).cast();
                    h.msg_hdr.msg_namelen = ADDR_LEN;
                }
                h
            })
            .collect();
        Self {
            cap,
            with_addrs,
            bufs,
            iovecs,
            addrs,
            hdrs,
        }
    }

    /// Number of slots.
    #[must_use]
    pub fn count(&self) -> usize {
        self.hdrs.len()
    }

    /// Receives up to `max` datagrams from `fd` into slots `0..n`; returns `n`.
    pub fn recv(&mut self, fd: RawFd, max: usize, flags: libc::c_int) -> io::Result<usize> {
        let n = max.min(self.count());
        for i in 0..n {
            self.iovecs[i].iov_len = self.cap;
            self.hdrs[i].msg_len = 0;
            if self.with_addrs {
                self.hdrs[i].msg_hdr.msg_namelen = ADDR_LEN;
            }
        }
        let vlen = u32::try_from(n).unwrap_or(u32::MAX);
        // SAFETY: hdrs[..n] point at iovecs, addrs and bufs owned by `self`,
        // valid and unaliased for the call (see the module invariant); each
        // iovec covers exactly its `cap`-byte slot.
        let rc = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                vlen,
                flags,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(usize::try_from(rc).unwrap_or(0))
    }

    /// The datagram received into slot `i` by the last [`MmsgBatch::recv`].
    #[must_use]
    pub fn received(&self, i: usize) -> &[u8] {
        let len = (self.hdrs[i].msg_len as usize).min(self.cap);
        &self.bufs[i * self.cap..i * self.cap + len]
    }

    /// Slot `i`'s whole buffer, to fill before [`MmsgBatch::send`].
    pub fn slot_mut(&mut self, i: usize) -> &mut [u8] {
        &mut self.bufs[i * self.cap..(i + 1) * self.cap]
    }

    /// Slots `0..n` as one run of bytes: the datagrams to send when every one of them fills
    /// its slot (`cap` bytes), as a GSO send takes them.
    #[must_use]
    pub fn filled(&self, n: usize) -> &[u8] {
        &self.bufs[..n.min(self.count()) * self.cap]
    }

    /// The bytes slot `i`'s next send transmits (its length as last set).
    #[must_use]
    pub fn staged(&self, i: usize) -> &[u8] {
        &self.bufs[i * self.cap..i * self.cap + self.iovecs[i].iov_len.min(self.cap)]
    }

    /// Sets how many bytes of slot `i` the next send transmits.
    pub fn set_len(&mut self, i: usize, len: usize) {
        self.iovecs[i].iov_len = len.min(self.cap);
    }

    /// Turns the datagrams just received into replies: each slot keeps its
    /// length and (with addresses) is sent back to where it came from.
    pub fn reflect_received(&mut self, n: usize) {
        for i in 0..n.min(self.count()) {
            self.iovecs[i].iov_len = self.hdrs[i].msg_len as usize;
        }
    }

    /// Sends slots `start..end` with one `sendmmsg`; returns how many went.
    pub fn send(
        &mut self,
        fd: RawFd,
        start: usize,
        end: usize,
        flags: libc::c_int,
    ) -> io::Result<usize> {
        let end = end.min(self.count());
        if start >= end {
            return Ok(0);
        }
        let vlen = u32::try_from(end - start).unwrap_or(u32::MAX);
        // SAFETY: `start < end <= count`, so the pointer and the `vlen`
        // headers after it are inside `hdrs`; each header points at buffers
        // owned by `self` (module invariant) that the kernel only reads.
        let rc = unsafe { libc::sendmmsg(fd, self.hdrs.as_mut_ptr().add(start), vlen, flags) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(usize::try_from(rc).unwrap_or(0))
    }
}
