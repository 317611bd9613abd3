//! One datagram to many addresses with `sendmmsg(2)`: the kernel-socket fan-out floor's send.
//!
//! Every header of a call points at the same bytes (one `iovec`), each at its own destination,
//! so a copy costs the kernel its send and nothing in user space but a header: the least a
//! one-core kernel-socket relay can do per copy.
#![allow(unsafe_code)]

use socket2::SockAddr;
use std::io;
use std::os::fd::RawFd;

/// Headers for up to `batch` copies per `sendmmsg`.
pub struct FanoutSend {
    hdrs: Vec<libc::mmsghdr>,
}

/// What one [`FanoutSend::send`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    /// Copies the kernel took.
    pub sent: u64,
    /// Copies refused (an error for that destination; the rest still went).
    pub failed: u64,
    /// `sendmmsg` calls.
    pub calls: u64,
}

impl FanoutSend {
    /// Room for `batch` copies per call (at least 1, at most `UIO_MAXIOV`, 1,024).
    #[must_use]
    pub fn new(batch: usize) -> Self {
        let batch = batch.clamp(1, 1024);
        // SAFETY: mmsghdr is a plain C struct (pointers, lengths, flags); all-zero is a valid,
        // empty header.
        let hdrs = (0..batch).map(|_| unsafe { std::mem::zeroed() }).collect();
        Self { hdrs }
    }

    /// Copies per call.
    #[must_use]
    pub fn batch(&self) -> usize {
        self.hdrs.len()
    }

    /// Sends `bytes` to every address of `to`, [`FanoutSend::batch`] per call, in order. A
    /// destination the kernel refuses (an ICMP error queued on the socket) is counted in
    /// `failed` and skipped.
    pub fn send(&mut self, fd: RawFd, bytes: &[u8], to: &[SockAddr]) -> Sent {
        // The kernel only reads through it (`sendmmsg` takes `*mut` for its own reasons).
        let mut iov = libc::iovec {
            iov_base: bytes.as_ptr().cast_mut().cast(),
            iov_len: bytes.len(),
        };
        let mut out = Sent::default();
        let mut at = 0;
        while at < to.len() {
            let n = (to.len() - at).min(self.hdrs.len());
            for (h, addr) in self.hdrs.iter_mut().zip(&to[at..at + n]) {
                h.msg_hdr.msg_iov = &raw mut iov;
                h.msg_hdr.msg_iovlen = 1;
                h.msg_hdr.msg_name = addr.as_ptr().cast_mut().cast();
                h.msg_hdr.msg_namelen = addr.len();
                h.msg_len = 0;
            }
            let vlen = u32::try_from(n).unwrap_or(u32::MAX);
            // SAFETY: hdrs[..n] point at `iov` (a local that outlives the call), which points
            // at `bytes`, and at the addresses of `to[at..at + n]`, all borrowed for the call;
            // the kernel only reads them.
            let rc = unsafe { libc::sendmmsg(fd, self.hdrs.as_mut_ptr(), vlen, 0) };
            out.calls += 1;
            if rc < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The first copy of this call failed: count it and go on past it.
                out.failed += 1;
                at += 1;
                continue;
            }
            let k = usize::try_from(rc).unwrap_or(0);
            out.sent += k as u64;
            at += k.max(1);
            if k == 0 {
                out.failed += 1;
            }
        }
        out
    }
}
