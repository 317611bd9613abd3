//! Control messages (`cmsghdr` sequences) as bytes, without unsafe code: reading the ones the
//! receive path asks for (`SO_RXQ_OVFL`'s drop count, `UDP_GRO`'s segment size) and writing
//! the one a GSO send carries (`UDP_SEGMENT`).
//!
//! ```text
//!   cmsghdr: cmsg_len (size_t) | cmsg_level (int) | cmsg_type (int) | data ... | pad to size_t
//!            cmsg_len = header + data length; the next header starts at align(cmsg_len)
//! ```
//!
//! The kernel writes the sequence into each receive buffer after the source address (at most
//! the control length the receive was armed with; what does not fit is cut and `MSG_CTRUNC`
//! set). Parsing reads only inside the slice it is given and never panics: a malformed
//! sequence ends the parse with what was read so far.
#![forbid(unsafe_code)]

use std::mem;

const WORD: usize = mem::size_of::<usize>();
const INT: usize = mem::size_of::<libc::c_int>();

/// `CMSG_ALIGN`: control messages and their data are aligned to `size_t`.
pub(crate) const fn align(len: usize) -> usize {
    (len + WORD - 1) & !(WORD - 1)
}

/// `CMSG_LEN(0)`: the header before a message's data.
const HEADER: usize = align(mem::size_of::<libc::cmsghdr>());

/// `CMSG_SPACE(len)`: room for a message with `len` bytes of data.
pub(crate) const fn space(len: usize) -> usize {
    HEADER + align(len)
}

/// Room the receive path arms its header with: a drop count (`SO_RXQ_OVFL`, a `u32`) and a
/// segment size (`UDP_GRO`, an `int`).
pub(crate) const RECV_CONTROL_LEN: usize = space(4) + space(INT);

/// Room for the `UDP_SEGMENT` message of a GSO send (a `u16`).
pub(crate) const SEGMENT_CONTROL_LEN: usize = space(2);

/// What the receive path reads from one datagram's control messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RecvControl {
    /// The socket's cumulative drop count when the datagram was queued (`SO_RXQ_OVFL`; the
    /// kernel leaves it out while the count is 0).
    pub(crate) drops: Option<u32>,
    /// The size of each datagram the buffer holds when the kernel coalesced several (`UDP_GRO`:
    /// all but the last are exactly this long; the last may be shorter).
    pub(crate) segment: Option<u16>,
}

/// Reads the drop count and the GRO segment size from `control`, skipping other messages.
#[inline]
pub(crate) fn parse(control: &[u8]) -> RecvControl {
    let mut out = RecvControl::default();
    // The common case: the kernel attached nothing (no drops yet, not coalesced).
    if control.is_empty() {
        return out;
    }
    let mut rest = control;
    while let Some((level, kind, data, next)) = next_message(rest) {
        match (level, kind) {
            (libc::SOL_SOCKET, libc::SO_RXQ_OVFL) => out.drops = read_u32(data),
            (libc::SOL_UDP, libc::UDP_GRO) => {
                // An int; a size that is not a positive u16 means "not coalesced".
                out.segment = read_u32(data)
                    .and_then(|s| u16::try_from(s).ok())
                    .filter(|s| *s > 0);
            }
            _ => {}
        }
        rest = next;
    }
    out
}

/// The first message of `rest`: level, type, data, and what follows it. `None` at the end or
/// on a malformed header (a length shorter than the header or past the slice).
fn next_message(rest: &[u8]) -> Option<(i32, i32, &[u8], &[u8])> {
    if rest.len() < HEADER {
        return None;
    }
    let len = usize::from_ne_bytes(rest.get(..WORD)?.try_into().ok()?);
    let level = libc::c_int::from_ne_bytes(rest.get(WORD..WORD + INT)?.try_into().ok()?);
    let kind = libc::c_int::from_ne_bytes(rest.get(WORD + INT..WORD + 2 * INT)?.try_into().ok()?);
    if len < HEADER || len > rest.len() {
        return None;
    }
    let data = &rest[HEADER..len];
    // The last message's padding may be cut off: an empty remainder then.
    let next = rest.get(align(len)..).unwrap_or(&[]);
    Some((level, kind, data, next))
}

/// A native-endian 32-bit value at the start of `data`.
fn read_u32(data: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(data.get(..4)?.try_into().ok()?))
}

/// The bytes of a `UDP_SEGMENT` control message asking the kernel to cut the send's payload
/// into datagrams of `size` bytes (the last may be shorter).
pub(crate) fn segment_message(size: u16) -> [u8; SEGMENT_CONTROL_LEN] {
    let mut out = [0u8; SEGMENT_CONTROL_LEN];
    out[..WORD].copy_from_slice(&(HEADER + 2).to_ne_bytes());
    out[WORD..WORD + INT].copy_from_slice(&libc::SOL_UDP.to_ne_bytes());
    out[WORD + INT..WORD + 2 * INT].copy_from_slice(&libc::UDP_SEGMENT.to_ne_bytes());
    out[HEADER..HEADER + 2].copy_from_slice(&size.to_ne_bytes());
    out
}

/// Test support: one control message as the kernel writes it (header, data, padding).
#[cfg(test)]
pub(crate) fn message(level: i32, kind: i32, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(HEADER + data.len()).to_ne_bytes());
    out.extend_from_slice(&level.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.resize(HEADER, 0);
    out.extend_from_slice(data);
    out.resize(align(out.len()), 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gro(size: i32) -> Vec<u8> {
        message(libc::SOL_UDP, libc::UDP_GRO, &size.to_ne_bytes())
    }

    fn ovfl(count: u32) -> Vec<u8> {
        message(libc::SOL_SOCKET, libc::SO_RXQ_OVFL, &count.to_ne_bytes())
    }

    #[test]
    fn sizes_match_the_c_macros() {
        // CMSG_SPACE(4) and CMSG_SPACE(2) on a 64-bit target: a 16-byte header, data padded
        // to 8.
        if WORD == 8 {
            assert_eq!(space(4), 24);
            assert_eq!(SEGMENT_CONTROL_LEN, 24);
            assert_eq!(RECV_CONTROL_LEN, 48);
        }
        assert_eq!(ovfl(1).len(), space(4));
        assert_eq!(gro(1).len(), space(INT));
    }

    #[test]
    fn reads_both_messages_in_either_order() {
        let mut c = ovfl(7);
        c.extend(gro(1200));
        let want = RecvControl {
            drops: Some(7),
            segment: Some(1200),
        };
        assert_eq!(parse(&c), want);
        let mut c = gro(1200);
        c.extend(ovfl(7));
        assert_eq!(parse(&c), want);
        assert_eq!(parse(&[]), RecvControl::default());
    }

    #[test]
    fn other_messages_are_skipped_and_garbage_ends_the_parse() {
        let mut c = message(libc::SOL_SOCKET, libc::SO_TIMESTAMP, &[1; 16]);
        c.extend(ovfl(3));
        assert_eq!(parse(&c).drops, Some(3));
        assert_eq!(parse(&[0xff; 40]), RecvControl::default());
        let mut short = ovfl(3);
        short.truncate(10);
        assert_eq!(parse(&short), RecvControl::default());
        // A length shorter than the header would loop forever if it were followed.
        let mut zero = ovfl(3);
        zero[..WORD].copy_from_slice(&0usize.to_ne_bytes());
        assert_eq!(parse(&zero), RecvControl::default());
        // The messages before a malformed one are kept.
        let mut c = gro(100);
        c.extend([0xff; 20]);
        assert_eq!(parse(&c).segment, Some(100));
    }

    #[test]
    fn a_segment_size_that_is_not_a_positive_u16_is_ignored() {
        assert_eq!(parse(&gro(0)).segment, None);
        assert_eq!(parse(&gro(-1)).segment, None);
        assert_eq!(parse(&gro(70_000)).segment, None);
        assert_eq!(parse(&gro(65_535)).segment, Some(65_535));
        // Data shorter than an int.
        let c = message(libc::SOL_UDP, libc::UDP_GRO, &[1, 2]);
        assert_eq!(parse(&c).segment, None);
    }

    #[test]
    fn the_last_message_may_lose_its_padding() {
        let mut c = ovfl(9);
        c.extend(gro(500));
        let cut = c.len() - (space(INT) - HEADER - INT);
        assert_eq!(parse(&c[..cut]).segment, Some(500));
    }

    #[test]
    fn a_segment_message_parses_back() {
        let m = segment_message(1200);
        let (level, kind, data, rest) = next_message(&m).unwrap();
        assert_eq!((level, kind), (libc::SOL_UDP, libc::UDP_SEGMENT));
        assert_eq!(data, 1200u16.to_ne_bytes());
        assert!(rest.is_empty());
    }
}
