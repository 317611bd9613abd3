//! UDP GSO and GRO for the load generator's bulk mode and the `mmsg-gso` floor: a run of
//! equal-size datagrams sent as one `UDP_SEGMENT` send, and coalesced buffers (`UDP_GRO`)
//! received with `recvmmsg`, each with its segment size.
//!
//! ```text
//!   GroBatch: hdrs[i].msg_hdr ──msg_iov──▶ iovecs[i] ──iov_base──▶ bufs[i*64K .. (i+1)*64K]
//!                             ├─msg_name─▶ addrs[i]   (only when built `with_addrs`)
//!                             └─msg_control─▶ ctrls[i] (received: UDP_GRO; reflected: UDP_SEGMENT)
//! ```
//!
//! Invariant (as in [`super::mmsg`]): the vectors are allocated once in [`GroBatch::new`] and
//! never resized, so the pointers in `hdrs` and `iovecs` stay valid for the batch's life.
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::os::fd::RawFd;

/// Most datagrams one GSO send carries (the kernel's limit before Linux 6.14).
pub const MAX_SEGMENTS: usize = 64;
/// Most payload bytes one GSO send carries (one IPv4 UDP datagram's worth).
pub const MAX_GSO_BYTES: usize = 65_507;
/// Room for the largest coalesced buffer.
pub const GRO_BUF: usize = 65_535;

const WORD: usize = mem::size_of::<usize>();
const INT: usize = mem::size_of::<libc::c_int>();
/// `CMSG_LEN(0)`.
const CMSG_HEADER: usize = mem::size_of::<libc::cmsghdr>().next_multiple_of(WORD);
/// `CMSG_SPACE(2)`: a `UDP_SEGMENT` message.
const SEGMENT_SPACE: usize = CMSG_HEADER + 2usize.next_multiple_of(WORD);
/// Control room per received buffer (a `UDP_GRO` int and room to spare).
const CTRL_LEN: usize = 64;

/// Sets the int-valued socket option `level`/`name` of `fd` to `value`.
pub(crate) fn set_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` is a live c_int and its size is passed; `fd` is the caller's open socket.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&raw const value).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Turns `UDP_GRO` on for the socket `fd`.
pub fn enable_gro(fd: RawFd) -> io::Result<()> {
    set_int(fd, libc::SOL_UDP, libc::UDP_GRO, 1)
}

/// Whether the socket `fd` takes `UDP_SEGMENT` (set to 0: plain sends stay plain).
pub fn probe_gso(fd: RawFd) -> io::Result<()> {
    set_int(fd, libc::SOL_UDP, libc::UDP_SEGMENT, 0)
}

/// Datagrams of `segment` bytes one GSO send may carry.
#[must_use]
pub fn per_send(segment: usize) -> usize {
    (MAX_GSO_BYTES / segment.max(1)).clamp(1, MAX_SEGMENTS)
}

/// The bytes of a `UDP_SEGMENT` control message for `segment`-byte datagrams.
fn segment_message(segment: u16) -> [u8; SEGMENT_SPACE] {
    let mut out = [0u8; SEGMENT_SPACE];
    out[..WORD].copy_from_slice(&(CMSG_HEADER + 2).to_ne_bytes());
    out[WORD..WORD + INT].copy_from_slice(&libc::SOL_UDP.to_ne_bytes());
    out[WORD + INT..WORD + 2 * INT].copy_from_slice(&libc::UDP_SEGMENT.to_ne_bytes());
    out[CMSG_HEADER..CMSG_HEADER + 2].copy_from_slice(&segment.to_ne_bytes());
    out
}

/// The `UDP_GRO` segment size in a received control area, if any (reads only inside it).
fn gro_segment(control: &[u8]) -> Option<usize> {
    let mut rest = control;
    while rest.len() >= CMSG_HEADER {
        let len = usize::from_ne_bytes(rest[..WORD].try_into().ok()?);
        let level = libc::c_int::from_ne_bytes(rest[WORD..WORD + INT].try_into().ok()?);
        let kind = libc::c_int::from_ne_bytes(rest[WORD + INT..WORD + 2 * INT].try_into().ok()?);
        if len < CMSG_HEADER || len > rest.len() {
            return None;
        }
        if level == libc::SOL_UDP && kind == libc::UDP_GRO && len >= CMSG_HEADER + INT {
            let size =
                libc::c_int::from_ne_bytes(rest[CMSG_HEADER..CMSG_HEADER + INT].try_into().ok()?);
            return usize::try_from(size).ok().filter(|s| *s > 0);
        }
        rest = rest.get(len.next_multiple_of(WORD)..).unwrap_or(&[]);
    }
    None
}

/// Sends `payload`, datagrams of `segment` bytes back to back (the last may be shorter), from
/// the connected socket `fd` as GSO sends of at most [`per_send`] datagrams each; returns how
/// many datagrams went (fewer when the socket would block). An error before the first send is
/// returned; after it, the count so far.
pub fn send_segmented(fd: RawFd, payload: &[u8], segment: usize) -> io::Result<usize> {
    let segment = segment.clamp(1, usize::from(u16::MAX));
    let chunk = per_send(segment) * segment;
    let mut control = segment_message(segment as u16);
    let mut sent = 0;
    for part in payload.chunks(chunk) {
        let mut iov = libc::iovec {
            iov_base: part.as_ptr().cast_mut().cast(),
            iov_len: part.len(),
        };
        // SAFETY: msghdr is plain C data; all-zero is an empty header.
        let mut hdr: libc::msghdr = unsafe { mem::zeroed() };
        hdr.msg_iov = &raw mut iov;
        hdr.msg_iovlen = 1;
        // One segment needs no control message (and a short one would be refused).
        if part.len() > segment {
            hdr.msg_control = control.as_mut_ptr().cast();
            hdr.msg_controllen = control.len();
        }
        // SAFETY: the header names live locals (vector over `part`, control message) for the
        // call, which only reads them; `fd` is the caller's open socket.
        let rc = unsafe { libc::sendmsg(fd, &raw const hdr, 0) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return match (sent, e.kind()) {
                (0, io::ErrorKind::WouldBlock) => Ok(0),
                (0, _) => Err(e),
                _ => Ok(sent),
            };
        }
        sent += part.len().div_ceil(segment);
    }
    Ok(sent)
}

/// `count` receive buffers of [`GRO_BUF`] bytes with their headers and control areas.
pub struct GroBatch {
    with_addrs: bool,
    bufs: Vec<u8>,
    iovecs: Vec<libc::iovec>,
    #[expect(dead_code, reason = "owned here because `hdrs` point into it")]
    addrs: Vec<libc::sockaddr_storage>,
    ctrls: Vec<[u64; CTRL_LEN / 8]>,
    hdrs: Vec<libc::mmsghdr>,
}

const ADDR_LEN: libc::socklen_t = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;

impl GroBatch {
    /// `count` buffers. `with_addrs`: record each buffer's source, so that
    /// [`GroBatch::prepare_reflect`] can send it back (unconnected sockets).
    #[must_use]
    pub fn new(count: usize, with_addrs: bool) -> Self {
        let count = count.max(1);
        let mut bufs = vec![0u8; count * GRO_BUF];
        let mut iovecs: Vec<libc::iovec> = (0..count)
            .map(|i| libc::iovec {
                iov_base: bufs[i * GRO_BUF..].as_mut_ptr().cast(),
                iov_len: GRO_BUF,
            })
            .collect();
        // SAFETY: sockaddr_storage is a plain C struct; all-zero is valid.
        let mut addrs: Vec<libc::sockaddr_storage> =
            (0..count).map(|_| unsafe { mem::zeroed() }).collect();
        let mut ctrls = vec![[0u64; CTRL_LEN / 8]; count];
        let hdrs = (0..count)
            .map(|i| {
                // SAFETY: mmsghdr is a plain C struct; all-zero is a valid, empty header.
                let mut h: libc::mmsghdr = unsafe { mem::zeroed() };
                h.msg_hdr.msg_iov = &raw mut iovecs[i];
                h.msg_hdr.msg_iovlen = 1;
                h.msg_hdr.msg_control = ctrls[i].as_mut_ptr().cast();
                h.msg_hdr.msg_controllen = CTRL_LEN;
                if with_addrs {
                    h.msg_hdr.msg_name = (&raw mut addrs[i]).cast();
                    h.msg_hdr.msg_namelen = ADDR_LEN;
                }
                h
            })
            .collect();
        Self {
            with_addrs,
            bufs,
            iovecs,
            addrs,
            ctrls,
            hdrs,
        }
    }

    /// Number of buffers.
    #[must_use]
    pub fn count(&self) -> usize {
        self.hdrs.len()
    }

    /// Receives up to `max` buffers from `fd` into buffers `0..n`; returns `n`.
    pub fn recv(&mut self, fd: RawFd, max: usize, flags: libc::c_int) -> io::Result<usize> {
        let n = max.min(self.count());
        for i in 0..n {
            self.iovecs[i].iov_len = GRO_BUF;
            let h = &mut self.hdrs[i];
            h.msg_len = 0;
            h.msg_hdr.msg_controllen = CTRL_LEN;
            h.msg_hdr.msg_flags = 0;
            if self.with_addrs {
                h.msg_hdr.msg_namelen = ADDR_LEN;
            }
        }
        let vlen = u32::try_from(n).unwrap_or(u32::MAX);
        // SAFETY: hdrs[..n] point at iovecs, addrs, ctrls and bufs owned by `self`, valid and
        // unaliased for the call (module invariant); each iovec covers exactly its buffer and
        // each control length its control area.
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

    /// The payload received into buffer `i` by the last [`GroBatch::recv`].
    #[must_use]
    pub fn received(&self, i: usize) -> &[u8] {
        let len = (self.hdrs[i].msg_len as usize).min(GRO_BUF);
        &self.bufs[i * GRO_BUF..i * GRO_BUF + len]
    }

    /// Buffer `i`'s GRO segment size, if the kernel coalesced datagrams into it.
    #[must_use]
    pub fn segment(&self, i: usize) -> Option<usize> {
        let len = self.hdrs[i].msg_hdr.msg_controllen.min(CTRL_LEN);
        let bytes: &[u8] = bytemuck_bytes(&self.ctrls[i]);
        gro_segment(&bytes[..len])
    }

    /// The datagrams of buffer `i`: its payload cut at its segment size (the last may be
    /// shorter), or the whole payload.
    pub fn datagrams(&self, i: usize) -> std::slice::Chunks<'_, u8> {
        let payload = self.received(i);
        let size = self
            .segment(i)
            .filter(|s| *s < payload.len())
            .unwrap_or(payload.len())
            .max(1);
        payload.chunks(size)
    }

    /// Turns buffers `0..n` into replies: each goes back to its source with its length and,
    /// when it was coalesced, its segment size (so the kernel cuts it as it came).
    pub fn prepare_reflect(&mut self, n: usize) {
        for i in 0..n.min(self.count()) {
            let segment = self
                .segment(i)
                .filter(|s| *s < self.hdrs[i].msg_len as usize);
            self.iovecs[i].iov_len = self.hdrs[i].msg_len as usize;
            let h = &mut self.hdrs[i].msg_hdr;
            match segment.and_then(|s| u16::try_from(s).ok()) {
                Some(s) => {
                    let m = segment_message(s);
                    let bytes = bytemuck_bytes_mut(&mut self.ctrls[i]);
                    bytes[..SEGMENT_SPACE].copy_from_slice(&m);
                    h.msg_controllen = SEGMENT_SPACE;
                }
                None => h.msg_controllen = 0,
            }
        }
    }

    /// Sends buffers `start..end` (prepared by [`GroBatch::prepare_reflect`]) with one
    /// `sendmmsg`; returns how many went.
    pub fn send(&mut self, fd: RawFd, start: usize, end: usize) -> io::Result<usize> {
        let end = end.min(self.count());
        if start >= end {
            return Ok(0);
        }
        let vlen = u32::try_from(end - start).unwrap_or(u32::MAX);
        // SAFETY: `start < end <= count`, so the pointer and the `vlen` headers after it are
        // inside `hdrs`; each header points at memory owned by `self` (module invariant) that
        // the kernel only reads.
        let rc = unsafe { libc::sendmmsg(fd, self.hdrs.as_mut_ptr().add(start), vlen, 0) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(usize::try_from(rc).unwrap_or(0))
    }
}

/// A control area as bytes.
fn bytemuck_bytes(words: &[u64; CTRL_LEN / 8]) -> &[u8] {
    // SAFETY: a [u64; N] is N * 8 initialised bytes with no padding; u8 has alignment 1.
    unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), CTRL_LEN) }
}

/// A control area as mutable bytes.
fn bytemuck_bytes_mut(words: &mut [u64; CTRL_LEN / 8]) -> &mut [u8] {
    // SAFETY: as above; the borrow is exclusive for the slice's life.
    unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), CTRL_LEN) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    #[test]
    fn a_segmented_send_arrives_coalesced_and_splits_back() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        if enable_gro(rx.as_raw_fd()).is_err() || probe_gso(tx.as_raw_fd()).is_err() {
            ringwire_shard::driver::skip_or_fail("no UDP_GRO / UDP_SEGMENT here");
            return;
        }
        // A liveness guard only: what was sent on loopback is there to read.
        rx.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let payload: Vec<u8> = (0..250u32).map(|i| (i / 100) as u8).collect();
        assert_eq!(send_segmented(tx.as_raw_fd(), &payload, 100).unwrap(), 3);
        let mut batch = GroBatch::new(4, true);
        // MSG_WAITFORONE: return once one has arrived, not after the timeout waiting for four.
        assert_eq!(
            batch.recv(rx.as_raw_fd(), 4, libc::MSG_WAITFORONE).unwrap(),
            1
        );
        assert_eq!(batch.segment(0), Some(100));
        let parts: Vec<&[u8]> = batch.datagrams(0).collect();
        assert_eq!(parts, [&[0u8; 100][..], &[1u8; 100][..], &[2u8; 50][..]]);
        // Reflected with its segment size, it arrives as three datagrams at a plain socket.
        batch.prepare_reflect(1);
        assert_eq!(batch.send(rx.as_raw_fd(), 0, 1).unwrap(), 1);
        tx.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut buf = [0u8; 200];
        let lens: Vec<usize> = (0..3).map(|_| tx.recv(&mut buf).unwrap()).collect();
        assert_eq!(lens, [100, 100, 50]);
    }

    #[test]
    fn control_messages_parse_without_reading_past_them() {
        let mut c = vec![0u8; CMSG_HEADER];
        c[..WORD].copy_from_slice(&(CMSG_HEADER + INT).to_ne_bytes());
        c[WORD..WORD + INT].copy_from_slice(&libc::SOL_UDP.to_ne_bytes());
        c[WORD + INT..WORD + 2 * INT].copy_from_slice(&libc::UDP_GRO.to_ne_bytes());
        c.extend_from_slice(&1200i32.to_ne_bytes());
        assert_eq!(gro_segment(&c), Some(1200));
        assert_eq!(gro_segment(&c[..CMSG_HEADER + 2]), None);
        assert_eq!(gro_segment(&[0xff; 40]), None);
        assert_eq!(gro_segment(&[]), None);
        assert_eq!(per_send(1200), 54);
        assert_eq!(per_send(32), MAX_SEGMENTS);
    }
}
