//! Kernel steering for QUIC: a classic-BPF `SO_REUSEPORT` program that hands every QUIC
//! packet to the socket of the shard named in the connection ID the server chose
//! (`crate::quic::cid`: byte 0 of every server CID is the owning shard's index).
//!
//! ```text
//!  0: ld   len             ; A = datagram length
//!  1: jge  #14, 0, 14      ; shorter than a long header with an 8-byte DCID: use the hash
//!  2: ldb  [0]             ; A = first byte
//!  3: jset #0x80, 0, 9     ; short header (form bit 0): to 13
//!  4: and  #0x30           ; long header: A = packet type bits
//!  5: jeq  #0x20, 0, 10    ; not Handshake (Initial, 0-RTT, Retry): use the hash
//!  6: ld   [1]             ; A = version (4 bytes)
//!  7: jeq  #1, 0, 8        ; not QUIC v1: use the hash
//!  8: ldb  [5]             ; A = DCID length
//!  9: jeq  #8, 0, 6        ; not one of our CIDs: use the hash
//! 10: ldb  [6]             ; A = DCID byte 0: the owning shard
//! 11: jge  #shards, 4, 0   ; not one of ours: use the hash
//! 12: ret  a
//! 13: ldb  [1]             ; short header: A = DCID byte 0
//! 14: jge  #shards, 1, 0   ; not one of ours: use the hash
//! 15: ret  a
//! 16: ret  #0xffffffff     ; the kernel falls back to its 4-tuple hash
//! ```
//!
//! **Initial and 0-RTT packets are hashed.** Their DCID is the one the client made up, so it
//! names no shard; the kernel's hash of the 4-tuple puts the first Initial on some shard,
//! which creates the connection there and hands out CIDs naming itself. The client's later
//! Initials come from the same 4-tuple (a client does not migrate during the handshake, RFC
//! 9000 §9), so they land on the same shard; every Handshake and 1-RTT packet names it.
//!
//! **The fixed bit is not checked** (it may be greased, RFC 9287), only the form bit. The
//! length check comes first so that no load reads past the end (a load past the end returns 0
//! and would put every runt on socket 0; `steer.rs` explains). [`owner_shard`](crate::quic::owner_shard)
//! is the same rule in Rust; the tests check the two agree.
//!
//! What the kernel does with an out-of-range index and why the index is the bind order is in
//! `steer.rs`; the same holds here.
#![allow(unsafe_code)]

use std::io;
use std::net::UdpSocket;

use super::steer::{attach_program, jump, stmt};

/// Which reuseport program the engine attaches when steering is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SteeringProgram {
    /// ringwire sessions: the owner is byte 4 ([`steering_program`](super::steering_program)).
    #[default]
    Sessions,
    /// QUIC: the owner is the first byte of the server-chosen DCID
    /// ([`quic_steering_program`]).
    Quic,
}

/// Shortest datagram the program reads: first byte, version, DCID length and an 8-byte DCID.
const MIN_STEERED_LEN: u32 = 14;
/// A return value no group can have as an index: the kernel falls back to its hash.
const USE_HASH: u32 = u32::MAX;

/// The QUIC steering program for a group of `shards` sockets (listing in the module docs).
pub fn quic_steering_program(shards: u16) -> Vec<libc::sock_filter> {
    use libc::{
        BPF_A, BPF_ABS, BPF_ALU, BPF_AND, BPF_B, BPF_JEQ, BPF_JGE, BPF_JMP, BPF_JSET, BPF_K,
        BPF_LD, BPF_LEN, BPF_RET, BPF_W,
    };
    let n = u32::from(shards);
    vec![
        /*  0 */ stmt(BPF_LD | BPF_W | BPF_LEN, 0),
        /*  1 */ jump(BPF_JMP | BPF_JGE | BPF_K, MIN_STEERED_LEN, 0, 14),
        /*  2 */ stmt(BPF_LD | BPF_B | BPF_ABS, 0),
        /*  3 */ jump(BPF_JMP | BPF_JSET | BPF_K, 0x80, 0, 9),
        /*  4 */ stmt(BPF_ALU | BPF_AND | BPF_K, 0x30),
        /*  5 */ jump(BPF_JMP | BPF_JEQ | BPF_K, 0x20, 0, 10),
        /*  6 */ stmt(BPF_LD | BPF_W | BPF_ABS, 1),
        /*  7 */ jump(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 8),
        /*  8 */ stmt(BPF_LD | BPF_B | BPF_ABS, 5),
        /*  9 */ jump(BPF_JMP | BPF_JEQ | BPF_K, 8, 0, 6),
        /* 10 */ stmt(BPF_LD | BPF_B | BPF_ABS, 6),
        /* 11 */ jump(BPF_JMP | BPF_JGE | BPF_K, n, 4, 0),
        /* 12 */ stmt(BPF_RET | BPF_A, 0),
        /* 13 */ stmt(BPF_LD | BPF_B | BPF_ABS, 1),
        /* 14 */ jump(BPF_JMP | BPF_JGE | BPF_K, n, 1, 0),
        /* 15 */ stmt(BPF_RET | BPF_A, 0),
        /* 16 */ stmt(BPF_RET | BPF_K, USE_HASH),
    ]
}

/// Attaches [`quic_steering_program`] to the `SO_REUSEPORT` group `socket` belongs to
/// (replacing any program it had). Errors as
/// [`attach_steering`](super::attach_steering).
pub fn attach_quic_steering(socket: &UdpSocket, shards: u16) -> io::Result<()> {
    attach_program(socket, quic_steering_program(shards))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::steer::tests::{SHARDS, client, group, land, run};
    use crate::quic::owner_shard;

    fn datagram(first: u8, version: u32, dcid_len: u8, owner: u8, len: usize) -> Vec<u8> {
        let mut d = vec![first];
        if first & 0x80 == 0 {
            d.push(owner);
        } else {
            d.extend_from_slice(&version.to_be_bytes());
            d.push(dcid_len);
            d.push(owner);
        }
        d.resize(len.max(d.len()), 0x5a);
        d.truncate(len);
        d
    }

    /// The program and `quic::owner_shard` agree on every first byte, version, DCID length,
    /// owner byte and length around the threshold; no load reads past the end.
    #[test]
    fn program_matches_owner_shard() {
        for shards in [1u16, 2, 3, 4, 8, 255, 256] {
            let p = quic_steering_program(shards);
            for first in 0..=255u8 {
                for version in [0u32, 1, 2, 0x6b33_43cf] {
                    for dcid_len in [0u8, 4, 8, 20] {
                        for owner in [0u8, 1, 2, 3, 4, 7, 8, 254, 255] {
                            for len in [0usize, 1, 2, 6, 7, 13, 14, 15, 40] {
                                let d = datagram(first, version, dcid_len, owner, len);
                                let want = match owner_shard(&d, usize::from(shards)) {
                                    Some(k) => k as u32,
                                    None => USE_HASH,
                                };
                                assert_eq!(run(&p, &d), want, "{shards} shards, {d:02x?}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn program_semantics() {
        let p = quic_steering_program(4);
        // 1-RTT: byte 1. Handshake v1: byte 6. Initial and 0-RTT: the hash.
        assert_eq!(run(&p, &datagram(0x41, 0, 0, 2, 40)), 2);
        assert_eq!(run(&p, &datagram(0xe0, 1, 8, 3, 40)), 3);
        assert_eq!(run(&p, &datagram(0xc0, 1, 8, 3, 1200)), USE_HASH);
        assert_eq!(run(&p, &datagram(0xd0, 1, 8, 3, 40)), USE_HASH);
        assert_eq!(run(&p, &datagram(0x41, 0, 0, 4, 40)), USE_HASH);
    }

    /// On the running kernel: 1-RTT and Handshake packets land on the shard their DCID names,
    /// from one 4-tuple (which the hash alone would always put on one socket); Initials land
    /// where the plain hash puts that 4-tuple.
    #[test]
    fn quic_packets_land_on_the_shard_in_their_cid() {
        let Some((group, addr)) = group(attach_quic_steering) else {
            return;
        };
        let from = client();
        let mut tag = 0u8;
        let mut tagged = |mut d: Vec<u8>| {
            tag += 1;
            let last = d.len() - 1;
            d[last] = tag;
            d
        };
        let initial = land(&group, addr, &from, &tagged(datagram(0xc0, 1, 8, 3, 60)));
        for k in 0..SHARDS as u8 {
            let short = tagged(datagram(0x40, 0, 0, k, 60));
            assert_eq!(
                land(&group, addr, &from, &short),
                usize::from(k),
                "1-RTT {k}"
            );
            let hs = tagged(datagram(0xe0, 1, 8, k, 60));
            assert_eq!(
                land(&group, addr, &from, &hs),
                usize::from(k),
                "Handshake {k}"
            );
            let init = tagged(datagram(0xc0, 1, 8, k, 60));
            assert_eq!(
                land(&group, addr, &from, &init),
                initial,
                "Initial naming {k}"
            );
        }
    }
}
