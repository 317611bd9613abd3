//! Datagrams the kernel dropped at a shard's socket before ringwire could read them (a full
//! receive buffer, mostly), from the `SO_RXQ_OVFL` control message of the receive path.
//!
//! With `SO_RXQ_OVFL` on, the kernel stamps each queued datagram with the socket's cumulative
//! drop count (`sk_drops`) at the time it was queued, and the multishot `recvmsg` hands it to us
//! as a control message after the source address (only when the count is not zero). So the
//! count costs no system call and no lock: it rides on datagrams we read anyway. It lags by one
//! datagram: drops show when the next datagram after them is read, which under the load that
//! causes drops is at once. The kernel's counter is 32 bits; wraps are carried into 64. The
//! control messages are parsed in `cmsg.rs`.
#![forbid(unsafe_code)]

use std::io;
use std::os::fd::AsRawFd;

/// Asks the kernel to stamp every datagram queued on `socket` with its drop count.
pub(super) fn enable(socket: &impl AsRawFd) -> io::Result<()> {
    super::sockopt::set_int(socket, libc::SOL_SOCKET, libc::SO_RXQ_OVFL, 1)
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
    /// Takes the drop count one datagram carried (`cmsg::parse`), if it carried one; returns
    /// the socket's total drops so far.
    pub(super) fn update(&mut self, count: Option<u32>) -> u64 {
        if let Some(count) = count {
            self.total += u64::from(count.wrapping_sub(self.last));
            self.last = count;
        }
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_count_and_carries_wraps() {
        let mut drops = KernelDrops::default();
        assert_eq!(drops.update(None), 0, "no control message: no drops yet");
        assert_eq!(drops.update(Some(7)), 7);
        assert_eq!(
            drops.update(Some(7)),
            7,
            "the same count again adds nothing"
        );
        assert_eq!(drops.update(None), 7);
        drops.last = u32::MAX - 1;
        drops.total = 100;
        assert_eq!(drops.update(Some(2)), 104);
    }
}
