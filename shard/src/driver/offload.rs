//! UDP offloads on a shard's socket: segmentation on send (`UDP_SEGMENT`, GSO) and receive
//! coalescing (`UDP_GRO`): whether to use them, the limits of one segmented send, which errors
//! mean the socket refuses GSO, and how a coalesced receive buffer splits into datagrams.
//!
//! **GSO.** One `sendmsg` whose payload the kernel cuts into datagrams of the segment size (the
//! last may be shorter), all to one destination; one trip through the stack for up to
//! [`MAX_SEGMENTS`] datagrams. Support is probed at start-up by setting the socket's
//! `UDP_SEGMENT` option to 0 (accepted since Linux 4.18; 0 keeps plain sends plain). A device
//! without checksum offload makes GSO sends fail with `EIO`, and a socket with UDP checksums
//! off (`SO_NO_CHECK`) with `EINVAL`; plain sends still work there, so a multi-datagram send
//! failing with either turns GSO off for the socket ([`refuses_gso`]).
//!
//! **GRO.** With `UDP_GRO` on, the kernel may queue several datagrams of one flow as one
//! buffer with a `UDP_GRO` control message giving their size ([`Datagrams`](crate::Datagrams)
//! splits it);
//! on loopback that happens exactly when the sender used GSO. A coalesced buffer holds up to
//! 64 KiB, so the receive buffers grow to [`GRO_ROOM`] while GRO is on.
#![forbid(unsafe_code)]

use std::io;
use std::os::fd::AsRawFd;

use crate::config::Offload;

/// Most datagrams one GSO send carries (the kernel's `UDP_MAX_SEGMENTS` is 64 before
/// Linux 6.14, 128 after).
pub(crate) const MAX_SEGMENTS: usize = 64;

/// Most payload bytes one GSO send carries: what one IPv4 UDP datagram can (the kernel builds
/// the send as one before cutting it).
pub(crate) const MAX_GSO_BYTES: usize = 65_507;

/// Payload room of a receive buffer while GRO is on: the largest coalesced buffer (the UDP
/// length is 16 bits: at most 65,527 payload bytes over IPv6, 65,507 over IPv4).
pub(crate) const GRO_ROOM: usize = 65_535;

/// Turns `UDP_GRO` on for `socket`.
pub(super) fn enable_gro(socket: &impl AsRawFd) -> io::Result<()> {
    super::sockopt::set_int(socket, libc::SOL_UDP, libc::UDP_GRO, 1)
}

/// Whether `socket` takes `UDP_SEGMENT` (set to 0: sends stay unsegmented unless a send's own
/// control message asks).
pub(super) fn probe_gso(socket: &impl AsRawFd) -> io::Result<()> {
    super::sockopt::set_int(socket, libc::SOL_UDP, libc::UDP_SEGMENT, 0)
}

/// Whether to use an offload, from its setting and what the socket said when asked: `Ok(true)`
/// to use it, `Ok(false)` to go on without it, `Err` (the socket's refusal) when the setting
/// demands it.
pub(super) fn decide(setting: Offload, probe: impl FnOnce() -> io::Result<()>) -> io::Result<bool> {
    match setting {
        Offload::Off => Ok(false),
        Offload::Auto => Ok(probe().is_ok()),
        Offload::On => probe().map(|()| true),
    }
}

/// Whether a send of several datagrams that failed with `errno` means the socket refuses GSO,
/// so that plain sends should be used from now on. `EIO`: the device cannot checksum a
/// segmented send (or the route goes through IPsec); `EINVAL`: the socket sends without UDP
/// checksums, or the kernel takes fewer segments per send. Other errors (`EMSGSIZE` from a
/// segment above the path MTU, `ECONNREFUSED`, ...) are the destination's, not the socket's.
pub(crate) fn refuses_gso(errno: i32) -> bool {
    errno == libc::EIO || errno == libc::EINVAL
}

/// How many datagrams a receive buffer of `len` payload bytes holds: one, or with a GRO
/// segment size, one per `segment` bytes (the last may be shorter).
#[inline]
pub(crate) fn count(len: usize, segment: Option<u16>) -> usize {
    match segment {
        Some(s) if len > usize::from(s) => len.div_ceil(usize::from(s)),
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::cmsg;
    use crate::handler::Datagrams;

    /// The driver's split: a buffer cut at the segment size, as `Handler::on_datagrams` gets it.
    fn datagrams(payload: &[u8], segment: Option<u16>) -> std::slice::Chunks<'_, u8> {
        Datagrams::new(payload, segment.map_or(0, usize::from)).into_iter()
    }

    /// What the receive path makes of a buffer: the control messages parsed, the payload split.
    fn split<'a>(control: &[u8], payload: &'a [u8]) -> Vec<&'a [u8]> {
        let segment = cmsg::parse(control).segment;
        let out: Vec<&[u8]> = if payload.is_empty() {
            vec![payload]
        } else {
            datagrams(payload, segment).collect()
        };
        assert_eq!(out.len(), count(payload.len(), segment));
        if !payload.is_empty() {
            // The batch says the same as its datagrams: how many, and each full one's size.
            let batch = Datagrams::new(payload, segment.map_or(0, usize::from));
            assert_eq!(batch.len(), out.len());
            assert_eq!(batch.bytes(), payload);
            assert!(out.iter().all(|d| d.len() <= batch.segment_size()));
            assert_eq!(out[0].len(), batch.segment_size());
        }
        out
    }

    fn gro(size: i32) -> Vec<u8> {
        cmsg::message(libc::SOL_UDP, libc::UDP_GRO, &size.to_ne_bytes())
    }

    fn numbered(len: usize) -> Vec<u8> {
        (0..len).map(|i| i as u8).collect()
    }

    #[test]
    fn a_buffer_that_divides_splits_into_equal_datagrams() {
        let payload = numbered(3 * 1200);
        let parts = split(&gro(1200), &payload);
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.len() == 1200));
        assert_eq!(parts.concat(), payload);
    }

    #[test]
    fn a_last_short_segment_is_its_own_datagram() {
        let payload = numbered(2 * 1200 + 17);
        let parts = split(&gro(1200), &payload);
        let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
        assert_eq!(lens, [1200, 1200, 17]);
        assert_eq!(parts[2], &payload[2400..]);
    }

    #[test]
    fn sizes_that_do_not_divide() {
        for (len, size) in [(1000, 7), (65_535, 1200), (10, 3), (1201, 1200), (64, 63)] {
            let payload = numbered(len);
            let parts = split(&gro(size as i32), &payload);
            assert_eq!(parts.len(), len.div_ceil(size), "{len} / {size}");
            let (last, full) = parts.split_last().unwrap();
            assert!(full.iter().all(|p| p.len() == size), "{len} / {size}");
            assert_eq!(last.len(), len - size * (parts.len() - 1));
            assert!(!last.is_empty());
            assert_eq!(parts.concat(), payload);
        }
    }

    #[test]
    fn no_size_or_a_size_not_below_the_payload_is_one_datagram() {
        let payload = numbered(500);
        assert_eq!(split(&[], &payload), [&payload[..]]);
        assert_eq!(split(&gro(500), &payload), [&payload[..]]);
        assert_eq!(split(&gro(9000), &payload), [&payload[..]]);
        // A size the parser rejects (0, negative, above 16 bits) is no size.
        assert_eq!(split(&gro(0), &payload), [&payload[..]]);
        assert_eq!(split(&gro(-5), &payload), [&payload[..]]);
        assert_eq!(split(&gro(1 << 20), &payload), [&payload[..]]);
        // A one-byte segment size.
        assert_eq!(split(&gro(1), &payload[..3]).len(), 3);
    }

    #[test]
    fn an_empty_payload_is_one_empty_datagram() {
        assert_eq!(count(0, Some(100)), 1);
        assert_eq!(count(0, None), 1);
        let parts: Vec<&[u8]> = datagrams(&[], None).collect();
        assert!(
            parts.is_empty(),
            "chunks of nothing: the caller handles empty datagrams"
        );
    }

    #[test]
    fn the_setting_decides_what_a_refusal_means() {
        let refused = || Err(io::Error::from_raw_os_error(libc::ENOPROTOOPT));
        let fine = || Ok(());
        assert!(!decide(Offload::Off, fine).unwrap());
        assert!(decide(Offload::Auto, fine).unwrap());
        assert!(!decide(Offload::Auto, refused).unwrap());
        assert!(decide(Offload::On, fine).unwrap());
        assert_eq!(
            decide(Offload::On, refused).unwrap_err().raw_os_error(),
            Some(libc::ENOPROTOOPT)
        );
        assert!(refuses_gso(libc::EIO) && refuses_gso(libc::EINVAL));
        assert!(!refuses_gso(libc::EMSGSIZE) && !refuses_gso(libc::ECONNREFUSED));
    }
}
