//! Server connection IDs that name their shard, and the rule that reads the owner back out of
//! a QUIC datagram (the same rule as the kernel's steering program,
//! [`quic_steering_program`](crate::driver::quic_steering_program)).
//!
//! A server CID is [`CID_LEN`] (8) bytes: **byte 0 is the owning shard's index**, the other 7
//! bytes (56 bits) come from the operating system's random source. Why a whole byte:
//!
//! - the classic-BPF program reads one byte (`ldb`) at a fixed offset and returns it as the
//!   socket index, with no shift or mask: the cheapest rule, and the one the session protocol
//!   already uses (its CID's top byte);
//! - 256 shards are more cores than any one socket group we run on; fewer bits would save
//!   nothing that matters (the other 56 bits are still far more than the 2^32 CIDs a server
//!   could hand out before a collision became likely, and a CID is not a secret: RFC 9000
//!   §5.1 asks only that an observer cannot link two CIDs of one connection, and the
//!   shard byte links them only to the shard, which the 4-tuple already tells).
//!
//! The rest of the CID is unpredictable, so CIDs of one connection cannot be linked to one
//! another beyond the shard they share.
#![forbid(unsafe_code)]

use std::time::Duration;

use quinn_proto::{ConnectionId, ConnectionIdGenerator, InvalidCid};

/// Length of every server connection ID, in bytes.
pub const CID_LEN: usize = 8;

/// The QUIC v1 version number (RFC 9000).
const QUIC_V1: u32 = 1;

/// Offset of the destination CID in a short-header packet (RFC 9000 §17.3).
pub const SHORT_DCID_OFFSET: usize = 1;

/// Offset of the destination CID in a long-header packet: after the first byte, the 4-byte
/// version and the 1-byte DCID length (RFC 9000 §17.2).
pub const LONG_DCID_OFFSET: usize = 6;

/// Shortest datagram the owner is read from: a long header's first byte, version, DCID length
/// and an 8-byte DCID. Anything shorter is left to the kernel's 4-tuple hash.
pub const MIN_STEERED_LEN: usize = LONG_DCID_OFFSET + CID_LEN;

/// Makes server CIDs whose first byte is this shard's index (the rest random).
#[derive(Debug, Clone, Copy)]
pub struct ShardCidGenerator {
    shard: u8,
}

impl ShardCidGenerator {
    /// A generator for shard `shard` (at most 255: the steering program reads one byte).
    pub fn new(shard: u8) -> Self {
        Self { shard }
    }
}

impl ConnectionIdGenerator for ShardCidGenerator {
    fn generate_cid(&mut self) -> ConnectionId {
        let mut bytes = [0u8; CID_LEN];
        bytes[0] = self.shard;
        // The operating system's random source; CIDs are made a few per connection. A failure
        // of getrandom on Linux means no entropy source at all: there is nothing safe to
        // continue with.
        getrandom::fill(&mut bytes[1..]).expect("the operating system's random source failed");
        ConnectionId::new(&bytes)
    }

    fn validate(&self, cid: &ConnectionId) -> Result<(), InvalidCid> {
        // A short-header packet for an unknown connection gets a stateless reset only if its
        // CID could be ours: right length and this shard's byte.
        if cid.len() == CID_LEN && cid[0] == self.shard {
            Ok(())
        } else {
            Err(InvalidCid)
        }
    }

    fn cid_len(&self) -> usize {
        CID_LEN
    }

    fn cid_lifetime(&self) -> Option<Duration> {
        None
    }
}

/// The shard a QUIC datagram belongs to, read from the destination CID the server chose, or
/// `None` where the kernel's 4-tuple hash decides (and so the shard it landed on owns it):
///
/// - shorter than [`MIN_STEERED_LEN`] (14) bytes: `None`;
/// - short header (first bit 0): byte 1, the first byte of the DCID;
/// - long header (first bit 1): only a QUIC v1 Handshake packet (type bits `0b10`) with an
///   8-byte DCID names its shard, at byte 6. Initial and 0-RTT packets carry the DCID the
///   client chose (or, once it heard from the server, the server's: the 4-tuple is still the
///   one the handshake started on), Retry and Version Negotiation are never sent to a server,
///   and other versions are not ours: all `None`;
/// - an index `>= shards`: `None`.
///
/// This is exactly what [`quic_steering_program`](crate::driver::quic_steering_program) does
/// in the kernel; the driver's tests check the two agree on every first byte.
pub fn owner_shard(datagram: &[u8], shards: usize) -> Option<usize> {
    if datagram.len() < MIN_STEERED_LEN {
        return None;
    }
    let first = datagram[0];
    let owner = if first & 0x80 == 0 {
        datagram[SHORT_DCID_OFFSET]
    } else {
        let version = u32::from_be_bytes([datagram[1], datagram[2], datagram[3], datagram[4]]);
        let handshake = first & 0x30 == 0x20;
        if version != QUIC_V1 || !handshake || usize::from(datagram[5]) != CID_LEN {
            return None;
        }
        datagram[LONG_DCID_OFFSET]
    };
    (usize::from(owner) < shards).then_some(usize::from(owner))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cids_name_their_shard_and_differ() {
        let mut g = ShardCidGenerator::new(3);
        let a = g.generate_cid();
        let b = g.generate_cid();
        assert_eq!(a.len(), CID_LEN);
        assert_eq!(a[0], 3);
        assert_ne!(a, b, "56 random bits twice the same");
        assert!(g.validate(&a).is_ok());
        assert!(ShardCidGenerator::new(4).validate(&a).is_err());
        assert!(g.validate(&ConnectionId::new(&[3; 4])).is_err());
    }

    fn short(owner: u8) -> Vec<u8> {
        let mut d = vec![0x40, owner];
        d.extend_from_slice(&[0xaa; 30]);
        d
    }

    fn long(first: u8, version: u32, dcid_len: u8, owner: u8) -> Vec<u8> {
        let mut d = vec![first];
        d.extend_from_slice(&version.to_be_bytes());
        d.push(dcid_len);
        d.push(owner);
        d.extend_from_slice(&[0xbb; 30]);
        d
    }

    #[test]
    fn owner_rules() {
        assert_eq!(owner_shard(&short(1), 4), Some(1));
        // The fixed bit may be greased (RFC 9287): only the form bit decides.
        let mut greased = short(2);
        greased[0] = 0x00;
        assert_eq!(owner_shard(&greased, 4), Some(2));
        assert_eq!(owner_shard(&short(4), 4), None);
        // Handshake (0b10) of v1 with an 8-byte DCID.
        assert_eq!(owner_shard(&long(0xe0, 1, 8, 2), 4), Some(2));
        // Initial, 0-RTT, Retry: the hash.
        for first in [0xc0u8, 0xd0, 0xf0] {
            assert_eq!(owner_shard(&long(first, 1, 8, 2), 4), None, "{first:#x}");
        }
        // Another version, another DCID length.
        assert_eq!(owner_shard(&long(0xe0, 0x6b33_43cf, 8, 2), 4), None);
        assert_eq!(owner_shard(&long(0xe0, 1, 20, 2), 4), None);
        // Too short to hold a long header's DCID.
        assert_eq!(owner_shard(&short(1)[..MIN_STEERED_LEN - 1], 4), None);
        assert_eq!(owner_shard(&short(1)[..MIN_STEERED_LEN], 4), Some(1));
        assert_eq!(owner_shard(&[], 4), None);
    }
}
