//! `sockperf`: answers the `sockperf` client (`ping-pong`, `under-load`, `throughput`) the way
//! `sockperf server` does over UDP.
//!
//! Observed from `sockperf server` 3.7 on this machine (see `docs/PROTOCOL.md`): each message
//! starts with a 14-byte header, all big-endian:
//!
//! ```text
//! offset  size  field
//!      0     8  sequence number
//!      8     2  flags: 0x1 client, 0x2 reply requested, 0x4 warm-up (never answered)
//!     10     4  message length in bytes, header included
//! ```
//!
//! The server answers a message only when it is from a client and asks for a reply, and it
//! answers with the same bytes with the client bit cleared. Messages may sit back to back in
//! one datagram; `sockperf server` also stitches a message split across datagrams, which a
//! UDP client never produces, so a message longer than what is left of its datagram is counted
//! as rejected and dropped here. A reply is never larger than the message it answers.
//!
//! An empty datagram holds no message. `sockperf server` 3.7 ignores it silently (no reply,
//! nothing printed, later messages answered as usual: checked by sending it 0-byte datagrams).
//! Here it is not answered either (any answer would be larger than its trigger) and is counted
//! as rejected, like every other datagram that is not a whole message; the shard also counts
//! it as `recv_empty`.
#![forbid(unsafe_code)]

use std::net::SocketAddr;

use crate::{Ctx, Handler};

/// Header size.
pub const HEADER_LEN: usize = 14;
/// Sent by a client.
pub const FLAG_CLIENT: u16 = 0x1;
/// The client wants an answer.
pub const FLAG_PONG_REQUEST: u16 = 0x2;
/// A warm-up message; never answered.
pub const FLAG_WARMUP: u16 = 0x4;

/// What to do with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Answer with the message's first `len` bytes, client bit cleared.
    Reply {
        /// Message length.
        len: usize,
    },
    /// A valid message that wants no answer (throughput mode, warm-up, server-originated).
    Ignore {
        /// Message length.
        len: usize,
    },
    /// Not a whole sockperf message.
    Malformed,
}

/// Judges the message at the start of `bytes`.
pub fn judge(bytes: &[u8]) -> Verdict {
    let Some(header) = bytes.get(..HEADER_LEN) else {
        return Verdict::Malformed;
    };
    let flags = u16::from_be_bytes([header[8], header[9]]);
    let len = u32::from_be_bytes([header[10], header[11], header[12], header[13]]) as usize;
    if len < HEADER_LEN || len > bytes.len() {
        return Verdict::Malformed;
    }
    let wants_reply = flags & (FLAG_CLIENT | FLAG_PONG_REQUEST) == FLAG_CLIENT | FLAG_PONG_REQUEST
        && flags & FLAG_WARMUP == 0;
    if wants_reply {
        Verdict::Reply { len }
    } else {
        Verdict::Ignore { len }
    }
}

/// The `sockperf server` stand-in.
#[derive(Debug)]
pub struct SockperfServer {
    scratch: Vec<u8>,
}

impl Default for SockperfServer {
    fn default() -> Self {
        Self {
            scratch: Vec::with_capacity(65536),
        }
    }
}

impl Handler for SockperfServer {
    type Message = ();

    fn on_datagram(&mut self, peer: SocketAddr, payload: &[u8], ctx: &mut Ctx<'_, ()>) {
        if payload.is_empty() {
            ctx.reject();
            return;
        }
        let mut rest = payload;
        while !rest.is_empty() {
            match judge(rest) {
                Verdict::Malformed => {
                    ctx.reject();
                    return;
                }
                Verdict::Ignore { len } => rest = &rest[len..],
                Verdict::Reply { len } => {
                    self.scratch.clear();
                    self.scratch.extend_from_slice(&rest[..len]);
                    let flags =
                        u16::from_be_bytes([self.scratch[8], self.scratch[9]]) & !FLAG_CLIENT;
                    self.scratch[8..10].copy_from_slice(&flags.to_be_bytes());
                    let _counted = ctx.send_to(peer, &self.scratch);
                    rest = &rest[len..];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(seq: u64, flags: u16, len: u32, total: usize) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&seq.to_be_bytes());
        m.extend_from_slice(&flags.to_be_bytes());
        m.extend_from_slice(&len.to_be_bytes());
        m.resize(total, 0xab);
        m
    }

    #[test]
    fn answers_only_client_pong_requests() {
        assert_eq!(judge(&msg(1, 0x3, 32, 32)), Verdict::Reply { len: 32 });
        assert_eq!(
            judge(&msg(1, 0x3 | 0x8000, 32, 32)),
            Verdict::Reply { len: 32 }
        );
        assert_eq!(judge(&msg(1, 0x1, 32, 32)), Verdict::Ignore { len: 32 });
        assert_eq!(judge(&msg(1, 0x2, 32, 32)), Verdict::Ignore { len: 32 });
        assert_eq!(judge(&msg(1, 0x7, 32, 32)), Verdict::Ignore { len: 32 });
    }

    #[test]
    fn rejects_short_and_overlong_messages() {
        assert_eq!(judge(&[0; 13]), Verdict::Malformed);
        assert_eq!(judge(&msg(1, 0x3, 13, 32)), Verdict::Malformed);
        assert_eq!(judge(&msg(1, 0x3, 64, 32)), Verdict::Malformed);
        assert_eq!(judge(&msg(1, 0x3, 14, 14)), Verdict::Reply { len: 14 });
        assert_eq!(judge(&msg(1, 0x3, 16, 32)), Verdict::Reply { len: 16 });
    }
}
