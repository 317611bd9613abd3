//! Batched datagram I/O with `recvmmsg(2)` / `sendmmsg(2)`.
//!
//! ```text
//!   hdrs[i].msg_hdr ──msg_iov──▶ iovecs[i] ──iov_base──▶ bufs[i*cap .. (i+1)*cap]
//!                  └─msg_name─▶ addrs[i]   (only when built `with_addrs`)
//! ```
//!
//! Invariant: the vectors are allocated once in [`MmsgBatch::new`] (and
//! [`MmsgBatch::with_timestamps`]) and never resized, so the pointers stored in
//! `hdrs` and `iovecs` stay valid for the life of the batch (moving the struct
//! moves only the `Vec` handles, not their heap storage). That is also why the
//! batch is neither `Send` nor `Sync`: it holds raw pointers and belongs to the
//! thread that made it.
//!
//! With timestamps, each header also points at its own control buffer, where
//! the kernel writes the `SCM_TIMESTAMPNS` of a socket with `SO_TIMESTAMPNS`
//! on ([`enable_timestamps`]): when the datagram entered the receive path, on
//! loopback inside the sender's `sendmsg`.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::RawFd;

/// `count` datagram slots of `cap` bytes each, with their headers.
pub struct MmsgBatch {
    cap: usize,
    with_addrs: bool,
    bufs: Vec<u8>,
    iovecs: Vec<libc::iovec>,
    addrs: Vec<libc::sockaddr_storage>,
    hdrs: Vec<libc::mmsghdr>,
    /// Control buffers, [`CONTROL_WORDS`] per slot (empty without timestamps); `u64`s so
    /// that each is aligned for a `cmsghdr`.
    control: Vec<u64>,
}

/// A control buffer's size in `u64`s: room for one `SCM_TIMESTAMPNS` message (a header and a
/// `timespec`, 32 bytes on 64-bit Linux) with some to spare.
const CONTROL_WORDS: usize = 8;

/// `SO_TIMESTAMPNS` (and its control message type `SCM_TIMESTAMPNS`) on Linux with a 64-bit
/// `time_t` outside MIPS, SPARC and PA-RISC (`asm-generic/socket.h`), which `libc` does not
/// export for every target.
const SO_TIMESTAMPNS: libc::c_int = 35;

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
            control: Vec::new(),
        }
    }

    /// Gives every slot a control buffer for the kernel's receive timestamp
    /// ([`MmsgBatch::kernel_time`]); the sockets read into it need [`enable_timestamps`].
    #[must_use]
    pub fn with_timestamps(mut self) -> Self {
        self.control = vec![0; self.hdrs.len() * CONTROL_WORDS];
        for (i, h) in self.hdrs.iter_mut().enumerate() {
            h.msg_hdr.msg_control = (&raw mut self.control[i * CONTROL_WORDS]).cast();
            h.msg_hdr.msg_controllen = CONTROL_WORDS * size_of::<u64>();
        }
        self
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
            if !self.control.is_empty() {
                self.hdrs[i].msg_hdr.msg_controllen = CONTROL_WORDS * size_of::<u64>();
            }
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

    /// Where the datagram in slot `i` came from (batches built `with_addrs`; `None` otherwise
    /// or for an address family other than IPv4 and IPv6).
    #[must_use]
    pub fn source(&self, i: usize) -> Option<std::net::SocketAddr> {
        if !self.with_addrs || i >= self.hdrs.len() {
            return None;
        }
        let len = self.hdrs[i].msg_hdr.msg_namelen.min(ADDR_LEN);
        // SAFETY: `try_init` hands a zeroed `sockaddr_storage` and its length; the copy writes
        // slot `i`'s address (a whole `sockaddr_storage`, which the last `recvmmsg` filled up
        // to `len`) into it, and the length set is at most the storage's size.
        let (_, addr) = unsafe {
            socket2::SockAddr::try_init(|storage, out_len| {
                std::ptr::copy_nonoverlapping(
                    (&raw const self.addrs[i]).cast::<u8>(),
                    storage.cast::<u8>(),
                    size_of::<libc::sockaddr_storage>(),
                );
                *out_len = len;
                Ok(())
            })
        }
        .ok()?;
        addr.as_socket()
    }

    /// When the datagram in slot `i` entered the kernel's receive path (`CLOCK_REALTIME`), if
    /// the batch was built [`MmsgBatch::with_timestamps`] and its socket has `SO_TIMESTAMPNS` on.
    #[must_use]
    pub fn kernel_time(&self, i: usize) -> Option<std::time::SystemTime> {
        if self.control.is_empty() || i >= self.hdrs.len() {
            return None;
        }
        let hdr = &self.hdrs[i].msg_hdr;
        // SAFETY: `hdr` is slot `i`'s header, whose control buffer (owned by `self`) the last
        // `recvmmsg` filled up to `msg_controllen`; the CMSG macros only read inside it and
        // return null past its end.
        let mut c = unsafe { libc::CMSG_FIRSTHDR(hdr) };
        while !c.is_null() {
            // SAFETY: `c` is non-null and points at a complete `cmsghdr` inside the buffer.
            let (level, kind) = unsafe { ((*c).cmsg_level, (*c).cmsg_type) };
            if level == libc::SOL_SOCKET && kind == SO_TIMESTAMPNS {
                // SAFETY: an `SCM_TIMESTAMPNS` message carries one `timespec`, which may not
                // be aligned for it inside the buffer, so it is read unaligned.
                let ts: libc::timespec =
                    unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(c).cast()) };
                let secs = u64::try_from(ts.tv_sec).ok()?;
                let nanos = u32::try_from(ts.tv_nsec).ok()?;
                return std::time::UNIX_EPOCH.checked_add(std::time::Duration::new(secs, nanos));
            }
            // SAFETY: as above; `CMSG_NXTHDR` returns null past the buffer's end.
            c = unsafe { libc::CMSG_NXTHDR(hdr, c) };
        }
        None
    }

    /// [`MmsgBatch::kernel_time`] as nanoseconds after `epoch` (a wall-clock instant taken
    /// for the run's monotonic epoch), saturating; `None` without a stamp, or for a stamp
    /// before `epoch`.
    #[must_use]
    pub fn kernel_ns_since(&self, i: usize, epoch: Option<std::time::SystemTime>) -> Option<u64> {
        let d = self.kernel_time(i)?.duration_since(epoch?).ok()?;
        Some(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
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

/// Turns on `SO_TIMESTAMPNS` on `fd`: every datagram it receives carries the time it entered
/// the kernel's receive path ([`MmsgBatch::kernel_time`]).
pub fn enable_timestamps(fd: RawFd) -> io::Result<()> {
    super::gso::set_int(fd, libc::SOL_SOCKET, SO_TIMESTAMPNS, 1)
}
