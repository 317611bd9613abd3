//! The load generator's datagram: enough to match and time an echo with no
//! per-datagram state on the client.
//!
//! ```text
//!  0        8          12         16              payload_len
//!  ├────────┼──────────┼──────────┼──── ... ────────┤
//!  │ sent_ns│ peer     │ seq      │ filler (0xA5)   │
//!  └────────┴──────────┴──────────┴──── ... ────────┘
//!  little-endian u64, u32, u32
//! ```
//!
//! `sent_ns` is the send time (closed loop) or the intended send time (open
//! loop) in nanoseconds since the run's clock epoch. `peer` is the index of
//! the sending socket within its worker thread, so a reply that arrives on
//! the wrong socket is detected. `seq` is loop-specific: the closed loop packs
//! a window slot and its generation, the open loop a running counter.
//!
//! Contract: [`Probe::decode`] accepts any byte slice of at least
//! [`MIN_LEN`] bytes and never panics.

use std::ops::Range;

const SENT_NS: Range<usize> = 0..8;
const PEER: Range<usize> = 8..12;
const SEQ: Range<usize> = 12..16;

/// Smallest payload that carries a probe.
pub const MIN_LEN: usize = 16;

/// Largest UDP payload over IPv4.
pub const MAX_LEN: usize = 65_507;

/// Byte used to pad payloads past [`MIN_LEN`].
pub const FILLER: u8 = 0xA5;

/// The fields a datagram carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// (Intended) send time, ns since the run's epoch.
    pub sent_ns: u64,
    /// Sending socket's index within its worker.
    pub peer: u32,
    /// Loop-specific sequence tag.
    pub seq: u32,
}

impl Probe {
    /// Writes the probe into the first [`MIN_LEN`] bytes of `buf` and pads the
    /// rest of `buf[..len]` with [`FILLER`]. Returns the datagram length, or
    /// `None` if `buf` is shorter than `len` or `len < MIN_LEN`.
    #[must_use]
    pub fn encode(&self, buf: &mut [u8], len: usize) -> Option<usize> {
        if len < MIN_LEN || buf.len() < len {
            return None;
        }
        buf[SENT_NS].copy_from_slice(&self.sent_ns.to_le_bytes());
        buf[PEER].copy_from_slice(&self.peer.to_le_bytes());
        buf[SEQ].copy_from_slice(&self.seq.to_le_bytes());
        buf[MIN_LEN..len].fill(FILLER);
        Some(len)
    }

    /// Reads a probe back from an echoed datagram; `None` if it is too short.
    #[must_use]
    pub fn decode(buf: &[u8]) -> Option<Probe> {
        let sent_ns = u64::from_le_bytes(buf.get(SENT_NS)?.try_into().ok()?);
        let peer = u32::from_le_bytes(buf.get(PEER)?.try_into().ok()?);
        let seq = u32::from_le_bytes(buf.get(SEQ)?.try_into().ok()?);
        Some(Probe { sent_ns, peer, seq })
    }
}

/// Packs a closed-loop window slot and its generation into a `seq`.
#[must_use]
pub fn slot_seq(slot: u16, generation: u16) -> u32 {
    (u32::from(generation) << 16) | u32::from(slot)
}

/// The window slot a closed-loop `seq` belongs to.
#[must_use]
pub fn seq_slot(seq: u32) -> u16 {
    (seq & 0xFFFF) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_padding() {
        let p = Probe {
            sent_ns: 0x0102_0304_0506_0708,
            peer: 77,
            seq: slot_seq(5, 9),
        };
        let mut buf = [0u8; 64];
        assert_eq!(p.encode(&mut buf, 40), Some(40));
        assert_eq!(Probe::decode(&buf[..40]), Some(p));
        assert!(buf[16..40].iter().all(|&b| b == FILLER));
        assert!(buf[40..].iter().all(|&b| b == 0));
        assert_eq!(seq_slot(p.seq), 5);
    }

    #[test]
    fn rejects_short() {
        let p = Probe {
            sent_ns: 1,
            peer: 2,
            seq: 3,
        };
        let mut buf = [0u8; 15];
        assert_eq!(p.encode(&mut buf, 15), None);
        assert_eq!(Probe::decode(&buf), None);
        assert_eq!(Probe::decode(&[]), None);
    }
}
