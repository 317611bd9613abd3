//! Datagrams the kernel dropped at a shard's socket before ringwire could read them (a full
//! receive buffer, mostly), from the `SO_RXQ_OVFL` control message of the receive path.
//!
//! With `SO_RXQ_OVFL` on, the kernel stamps each queued datagram with the socket's cumulative
//! drop count (`sk_drops`) at the time it was queued, and the multishot `recvmsg` hands it to us
//! as a control message after the source address (only when the count is not zero). So the
//! count costs no system call and no lock: it rides on datagrams we read anyway. It lags by one
//! datagram: drops show when the next datagram after them is read, which under the load that
//! causes drops is at once. The kernel's counter is 32 bits; wraps are carried into 64.
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::os::fd::AsRawFd;

/// Room for the one control message we ask for: a `cmsghdr` and a 32-bit count, aligned
/// (`CMSG_SPACE(4)`).
pub(super) const CONTROL_LEN: usize = align(mem::size_of::<libc::cmsghdr>()) + align(4);

const fn align(len: usize) -> usize {
    let a = mem::size_of::<usize>();
    (len + a - 1) & !(a - 1)
}

/// Asks the kernel to stamp every datagram queued on `socket` with its drop count.
pub(super) fn enable(socket: &impl AsRawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: `on` is a live c_int and its size is passed; the fd is open for the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RXQ_OVFL,
            (&raw const on).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The socket's drop count as read from its datagrams' control messages.
#[derive(Debug, Default)]
pub(super) struct KernelDrops {
    /// The last 32-bit count seen.
    last: u32,
    /// Drops since the socket was created, wraps carried.
    total: u64,
}

impl KernelDrops {
    /// Reads the drop count from one datagram's control data, if it carries one; returns the
    /// socket's total drops so far.
    pub(super) fn update(&mut self, control: &[u8]) -> u64 {
        if let Some(count) = rxq_ovfl(control) {
            self.total += u64::from(count.wrapping_sub(self.last));
            self.last = count;
        }
        self.total
    }
}

/// The `SO_RXQ_OVFL` count in `control` (a sequence of `cmsghdr`s), if there is one. Reads
/// only inside `control`; a malformed sequence yields `None`.
fn rxq_ovfl(control: &[u8]) -> Option<u32> {
    const LEN: usize = mem::size_of::<usize>();
    const INT: usize = mem::size_of::<libc::c_int>();
    let header = align(mem::size_of::<libc::cmsghdr>());
    let mut rest = control;
    while rest.len() >= header {
        // `cmsghdr` is { cmsg_len: size_t, cmsg_level: int, cmsg_type: int } in native order.
        let len = usize::from_ne_bytes(rest[..LEN].try_into().ok()?);
        let level = libc::c_int::from_ne_bytes(rest[LEN..LEN + INT].try_into().ok()?);
        let kind = libc::c_int::from_ne_bytes(rest[LEN + INT..LEN + 2 * INT].try_into().ok()?);
        if len < header || len > rest.len() {
            return None;
        }
        if level == libc::SOL_SOCKET && kind == libc::SO_RXQ_OVFL && len >= header + 4 {
            return Some(u32::from_ne_bytes(
                rest[header..header + 4].try_into().ok()?,
            ));
        }
        rest = rest.get(align(len)..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmsg(level: i32, kind: i32, data: &[u8]) -> Vec<u8> {
        let header = align(mem::size_of::<libc::cmsghdr>());
        let mut out = Vec::new();
        out.extend_from_slice(&(header + data.len()).to_ne_bytes());
        out.extend_from_slice(&level.to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.resize(header, 0);
        out.extend_from_slice(data);
        out.resize(align(out.len()), 0);
        out
    }

    #[test]
    fn reads_the_count_and_carries_wraps() {
        let mut drops = KernelDrops::default();
        assert_eq!(drops.update(&[]), 0, "no control message: no drops yet");
        let c = cmsg(libc::SOL_SOCKET, libc::SO_RXQ_OVFL, &7u32.to_ne_bytes());
        assert_eq!(c.len(), CONTROL_LEN);
        assert_eq!(drops.update(&c), 7);
        assert_eq!(drops.update(&c), 7, "the same count again adds nothing");
        let wrapped = cmsg(libc::SOL_SOCKET, libc::SO_RXQ_OVFL, &2u32.to_ne_bytes());
        drops.last = u32::MAX - 1;
        drops.total = 100;
        assert_eq!(drops.update(&wrapped), 104);
    }

    #[test]
    fn other_messages_and_garbage_are_skipped() {
        let mut control = cmsg(libc::SOL_SOCKET, libc::SO_TIMESTAMP, &[1; 16]);
        control.extend(cmsg(
            libc::SOL_SOCKET,
            libc::SO_RXQ_OVFL,
            &3u32.to_ne_bytes(),
        ));
        assert_eq!(rxq_ovfl(&control), Some(3));
        assert_eq!(rxq_ovfl(&[0xff; 40]), None);
        let mut short = cmsg(libc::SOL_SOCKET, libc::SO_RXQ_OVFL, &3u32.to_ne_bytes());
        short.truncate(10);
        assert_eq!(rxq_ovfl(&short), None);
    }
}
