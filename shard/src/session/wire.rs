//! The datagram codec of protocol version 2, with named field ranges (smoltcp style).
//! `docs/PROTOCOL.md` is the normative description; this file and it must agree byte for byte
//! (the test vectors there are checked by `tests/session_vectors.rs`).
//!
//! ```text
//!  0       1       2       3       4                               12                              20
//! +-------+-------+-------+-------+-------------------------------+-------------------------------+----
//! |ver|typ| flags |   reserved    | dst conn ID, or route (u64 BE)| packet number (u64, BE)       | body
//! +-------+-------+-------+-------+-------------------------------+-------------------------------+----
//! ```
//!
//! Reset is the one message without this header: `0x28, 0, 0, 0, CID (8), token (16)`.
//!
//! Two layers: [`parse`] checks the framing (version, type, lengths, zero fields) and splits a
//! datagram into its header and a [`Body`] that borrows the input; the endpoint then verifies
//! MACs, runs the handshake or decrypts, and [`parse_plain`] reads a transport message's
//! (decrypted) body. Both are total: they bounds-check every field and return a
//! [`DropReason`] for anything that is not exactly valid; they never panic.
#![forbid(unsafe_code)]

use std::ops::Range;

use super::crypto::{MAC_LEN, TAG_LEN};
use super::drop_reason::DropReason;
use super::event::CloseReason;

type Field = Range<usize>;

/// Protocol version carried in the high nibble of byte 0.
pub const VERSION: u8 = 2;

/// Byte ranges of every message.
pub mod field {
    use super::Field;
    /// Version (high nibble) and message type (low nibble).
    pub const VERSION_TYPE: usize = 0;
    /// Flags: bit 0 is the key phase of transport messages; all other bits zero.
    pub const FLAGS: usize = 1;
    /// Reserved, zero.
    pub const RESERVED: Field = 2..4;
    /// The receiver's connection ID (big-endian), or an Initiation's route.
    pub const DST_CONN_ID: Field = 4..12;
    /// Initiation: the route byte (the initiator key's tag); the steering byte of every message.
    pub const ROUTE: usize = 4;
    /// Initiation: zero bytes after the route byte.
    pub const ROUTE_ZERO: Field = 5..12;
    /// Packet number (big-endian): a transport message's AEAD nonce; an Initiation's attempt
    /// number; a Response's or CookieReply's echo of that attempt number.
    pub const PACKET_NUMBER: Field = 12..20;
    /// Where the body starts.
    pub const BODY: usize = 20;

    /// Initiation: the initiator's connection ID.
    pub const INIT_CONN_ID: Field = 20..28;
    /// Initiation (noise): Noise message 1 (`e`, encrypted `s`, encrypted timestamp).
    pub const INIT_NOISE: Field = 28..136;
    /// Initiation (noise): mac1.
    pub const INIT_MAC1: Field = 136..152;
    /// Initiation (noise): mac2.
    pub const INIT_MAC2: Field = 152..168;
    /// Initiation (plaintext mode): zero padding, so that a CookieReply is no larger.
    pub const INIT_PLAIN_PADDING: Field = 28..44;
    /// Initiation (plaintext mode): mac1.
    pub const INIT_PLAIN_MAC1: Field = 44..60;
    /// Initiation (plaintext mode): mac2.
    pub const INIT_PLAIN_MAC2: Field = 60..76;

    /// Response (noise): Noise message 2 (`e`, encrypted payload: responder CID, reset token).
    pub const RESP_NOISE: Field = 20..92;
    /// Response (noise): mac1, keyed by the initiator's static public key.
    pub const RESP_MAC1: Field = 92..108;
    /// Response (plaintext mode): the responder's connection ID.
    pub const RESP_PLAIN_CONN_ID: Field = 20..28;
    /// Response (plaintext mode): mac1.
    pub const RESP_PLAIN_MAC1: Field = 28..44;

    /// CookieReply: the XChaCha20-Poly1305 nonce.
    pub const COOKIE_NONCE: Field = 20..44;
    /// CookieReply: the sealed cookie (16) and its tag (16).
    pub const COOKIE_SEALED: Field = 44..76;

    /// Reset: the connection ID the unknown datagram named.
    pub const RESET_CONN_ID: Field = 4..12;
    /// Reset: the token.
    pub const RESET_TOKEN: Field = 12..28;
    /// Refused: the reason (u16 BE, the admission refusal's code).
    pub const REFUSED_REASON: Field = 20..22;
    /// Refused: reserved, zero.
    pub const REFUSED_RESERVED: Field = 22..24;
    /// Refused: the refused Initiation's mac1, echoed.
    pub const REFUSED_MAC1: Field = 24..40;
}

/// Length of the common header (the associated data of a transport message).
pub const HEADER_LEN: usize = field::BODY;
/// Exact length of an Initiation.
pub const INITIATION_LEN: usize = field::INIT_MAC2.end;
/// Exact length of a plaintext-mode Initiation.
pub const INITIATION_PLAIN_LEN: usize = field::INIT_PLAIN_MAC2.end;
/// Length of Noise message 1 (32 + 48 + 12 + 16).
pub const NOISE1_LEN: usize = field::INIT_NOISE.end - field::INIT_NOISE.start;
/// Length of Noise message 2 (32 + 24 + 16).
pub const NOISE2_LEN: usize = field::RESP_NOISE.end - field::RESP_NOISE.start;
/// Exact length of a Response.
pub const RESPONSE_LEN: usize = field::RESP_MAC1.end;
/// Exact length of a plaintext-mode Response.
pub const RESPONSE_PLAIN_LEN: usize = field::RESP_PLAIN_MAC1.end;
/// Exact length of a CookieReply.
pub const COOKIE_REPLY_LEN: usize = field::COOKIE_SEALED.end;
/// Exact length of a Refused.
pub const REFUSED_LEN: usize = field::REFUSED_MAC1.end;
/// Exact length of a Reset.
pub const RESET_LEN: usize = field::RESET_TOKEN.end;
/// The smallest datagram that may be answered with a Reset (strictly larger than a Reset).
pub const RESET_TRIGGER_MIN: usize = RESET_LEN + 1;
/// Plaintext body of a Ping (8 zero bytes).
pub const PING_BODY: usize = 8;
/// Plaintext body of a Pong (the echoed packet number).
pub const PONG_BODY: usize = 8;
/// Plaintext body of a Close (reason code, app code).
pub const CLOSE_BODY: usize = 4;
/// The largest control message (all control messages fit a buffer of this size).
pub const MAX_CONTROL_LEN: usize = INITIATION_LEN;
/// Flag bit 0 of a transport message: its key phase.
pub const FLAG_KEY_PHASE: u8 = 0x01;
/// Length of a Noise handshake payload in message 1: a TAI64N timestamp.
pub const TIMESTAMP_LEN: usize = 12;
/// Length of the Noise payload of message 2: responder CID (8) and reset token (16).
pub const RESPONSE_PAYLOAD_LEN: usize = 24;

/// Encoded length of a transport message whose plaintext body is `body` bytes.
#[must_use]
pub const fn transport_len(body: usize, encrypted: bool) -> usize {
    HEADER_LEN + body + if encrypted { TAG_LEN } else { 0 }
}

// No reply is larger than what triggers it: Response and CookieReply answer an Initiation,
// Pong answers a Ping (same body size), Reset answers at least RESET_TRIGGER_MIN bytes.
const _: () = assert!(
    RESPONSE_LEN <= INITIATION_LEN
        && COOKIE_REPLY_LEN <= INITIATION_LEN
        && RESPONSE_PLAIN_LEN <= INITIATION_PLAIN_LEN
        && COOKIE_REPLY_LEN <= INITIATION_PLAIN_LEN
        && REFUSED_LEN <= INITIATION_PLAIN_LEN
        && PONG_BODY <= PING_BODY
        && RESET_LEN < RESET_TRIGGER_MIN
        && NOISE1_LEN == 32 + 48 + TIMESTAMP_LEN + TAG_LEN
        && NOISE2_LEN == 32 + RESPONSE_PAYLOAD_LEN + TAG_LEN
);

/// Message type numbers (low nibble of byte 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MsgType {
    /// Initiator → responder: Noise message 1.
    Initiation = 1,
    /// Responder → initiator: Noise message 2.
    Response = 2,
    /// Responder → initiator under load: a cookie to echo as mac2.
    CookieReply = 3,
    /// Application datagram (transport).
    Data = 4,
    /// Keepalive and RTT probe (transport).
    Ping = 5,
    /// Answer to a Ping (transport).
    Pong = 6,
    /// The sender closed the session (transport).
    Close = 7,
    /// Stateless reset: "no session has this connection ID here".
    Reset = 8,
    /// Responder → initiator: admission refused the Initiation (rate-limited, stateless).
    Refused = 9,
}

impl MsgType {
    /// The type of a low nibble.
    #[must_use]
    pub fn from_nibble(n: u8) -> Option<Self> {
        Some(match n {
            1 => MsgType::Initiation,
            2 => MsgType::Response,
            3 => MsgType::CookieReply,
            4 => MsgType::Data,
            5 => MsgType::Ping,
            6 => MsgType::Pong,
            7 => MsgType::Close,
            8 => MsgType::Reset,
            9 => MsgType::Refused,
            _ => return None,
        })
    }

    /// Data, Ping, Pong and Close: body encrypted under the session's keys, header as AD.
    #[must_use]
    pub fn is_transport(self) -> bool {
        matches!(
            self,
            MsgType::Data | MsgType::Ping | MsgType::Pong | MsgType::Close
        )
    }
}

/// A datagram's body, after framing checks; MACs and ciphertext not yet verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body<'a> {
    /// Initiation. `noise` is `None` in plaintext mode.
    Initiation {
        /// The initiator's connection ID (nonzero).
        initiator_conn_id: u64,
        /// Noise message 1.
        noise: Option<&'a [u8]>,
        /// mac1.
        mac1: [u8; MAC_LEN],
        /// mac2 (zero when the initiator has no cookie).
        mac2: [u8; MAC_LEN],
    },
    /// Response. `noise` is `None` in plaintext mode, which carries the CID in clear instead.
    Response {
        /// Noise message 2.
        noise: Option<&'a [u8]>,
        /// Plaintext mode: the responder's connection ID.
        plain_conn_id: u64,
        /// mac1.
        mac1: [u8; MAC_LEN],
    },
    /// CookieReply.
    CookieReply {
        /// XChaCha20 nonce.
        nonce: [u8; 24],
        /// Sealed cookie.
        sealed: [u8; 32],
    },
    /// Refused: admission refused the Initiation whose mac1 this echoes.
    Refused {
        /// The refusal's code (`RefusalReason` index).
        reason: u16,
        /// The refused Initiation's mac1.
        mac1: [u8; 16],
    },
    /// A transport message: its (encrypted, or plaintext-mode) body.
    Transport {
        /// Data, Ping, Pong or Close.
        ty: MsgType,
        /// The sender's key phase (flag bit 0).
        key_phase: bool,
        /// Ciphertext and tag (or plaintext in plaintext mode).
        body: &'a [u8],
    },
    /// Reset.
    Reset {
        /// The token.
        token: [u8; MAC_LEN],
    },
}

/// A datagram after framing checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// Bytes 4..12: the receiver's connection ID (an Initiation's route).
    pub dst_conn_id: u64,
    /// Bytes 12..20 (zero for a Reset).
    pub packet_number: u64,
    /// The body.
    pub body: Body<'a>,
}

/// A transport message's plaintext body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// Application bytes.
    Data(&'a [u8]),
    /// Keepalive / RTT probe.
    Ping,
    /// Answer to the Ping with packet number `echo`.
    Pong {
        /// The Ping's packet number.
        echo: u64,
    },
    /// The sender closed the session.
    Close(CloseReason),
}

impl Message<'_> {
    /// This message's type.
    #[must_use]
    pub fn msg_type(&self) -> MsgType {
        match self {
            Message::Data(_) => MsgType::Data,
            Message::Ping => MsgType::Ping,
            Message::Pong { .. } => MsgType::Pong,
            Message::Close(_) => MsgType::Close,
        }
    }

    /// Length of the plaintext body.
    #[must_use]
    pub fn body_len(&self) -> usize {
        match self {
            Message::Data(p) => p.len(),
            Message::Ping => PING_BODY,
            Message::Pong { .. } => PONG_BODY,
            Message::Close(_) => CLOSE_BODY,
        }
    }

    /// Writes the plaintext body at the start of `out`; returns its length (`None`: too small).
    #[must_use]
    pub fn write_body(&self, out: &mut [u8]) -> Option<usize> {
        let n = self.body_len();
        let out = out.get_mut(..n)?;
        match *self {
            Message::Data(p) => out.copy_from_slice(p),
            Message::Ping => out.fill(0),
            Message::Pong { echo } => out.copy_from_slice(&echo.to_be_bytes()),
            Message::Close(reason) => {
                let (code, app) = reason.to_wire();
                out[..2].copy_from_slice(&code.to_be_bytes());
                out[2..].copy_from_slice(&app.to_be_bytes());
            }
        }
        Some(n)
    }
}

fn get_u64(b: &[u8], f: Field) -> Option<u64> {
    b.get(f)
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map(u64::from_be_bytes)
}

fn get_u16(b: &[u8], f: Field) -> Option<u16> {
    b.get(f)
        .and_then(|s| <[u8; 2]>::try_from(s).ok())
        .map(u16::from_be_bytes)
}

fn get_arr<const N: usize>(b: &[u8], f: Field) -> Option<[u8; N]> {
    b.get(f).and_then(|s| <[u8; N]>::try_from(s).ok())
}

/// Writes the common header.
pub fn write_header(out: &mut [u8], ty: MsgType, flags: u8, dst: u64, pn: u64) {
    out[field::VERSION_TYPE] = (VERSION << 4) | ty as u8;
    out[field::FLAGS] = flags;
    out[field::RESERVED].fill(0);
    out[field::DST_CONN_ID].copy_from_slice(&dst.to_be_bytes());
    out[field::PACKET_NUMBER].copy_from_slice(&pn.to_be_bytes());
}

/// Reads only the steering fields: the message type and bytes 4..12. This is what the BPF
/// program sees (it reads byte 4 only).
#[must_use]
pub fn peek_steering(bytes: &[u8]) -> Option<(u8, u64)> {
    let vt = *bytes.get(field::VERSION_TYPE)?;
    Some((vt & 0x0f, get_u64(bytes, field::DST_CONN_ID)?))
}

/// Checks the framing of one datagram. Total: returns the reason for anything that is not a
/// well-formed message (MACs and ciphertext are checked by the endpoint).
pub fn parse(b: &[u8]) -> Result<Datagram<'_>, DropReason> {
    use DropReason::{Malformed, Truncated};
    let &vt = b.get(field::VERSION_TYPE).ok_or(Truncated)?;
    if vt >> 4 != VERSION {
        return Err(DropReason::UnknownVersion);
    }
    let ty = MsgType::from_nibble(vt & 0x0f).ok_or(DropReason::UnknownType)?;
    let exact = |len: usize| match b.len().cmp(&len) {
        std::cmp::Ordering::Less => Err(Truncated),
        std::cmp::Ordering::Greater => Err(Malformed),
        std::cmp::Ordering::Equal => Ok(()),
    };
    if ty == MsgType::Reset {
        exact(RESET_LEN)?;
        if b[1..4] != [0, 0, 0] {
            return Err(Malformed);
        }
        let cid = get_u64(b, field::RESET_CONN_ID).ok_or(Truncated)?;
        if cid == 0 {
            return Err(Malformed);
        }
        return Ok(Datagram {
            dst_conn_id: cid,
            packet_number: 0,
            body: Body::Reset {
                token: get_arr(b, field::RESET_TOKEN).ok_or(Truncated)?,
            },
        });
    }
    if b.len() < HEADER_LEN {
        return Err(Truncated);
    }
    let flags = b[field::FLAGS];
    let allowed_flags = if ty.is_transport() { FLAG_KEY_PHASE } else { 0 };
    if flags & !allowed_flags != 0 || get_u16(b, field::RESERVED) != Some(0) {
        return Err(Malformed);
    }
    let dst_conn_id = get_u64(b, field::DST_CONN_ID).ok_or(Truncated)?;
    let packet_number = get_u64(b, field::PACKET_NUMBER).ok_or(Truncated)?;
    let body = match ty {
        MsgType::Initiation => {
            let plain = match b.len() {
                INITIATION_LEN => false,
                INITIATION_PLAIN_LEN => true,
                n if n < INITIATION_PLAIN_LEN => return Err(Truncated),
                _ => return Err(Malformed),
            };
            // The route: byte 4 chosen by the initiator, bytes 5..12 zero.
            if b.get(field::ROUTE_ZERO)
                .is_none_or(|z| z.iter().any(|&x| x != 0))
            {
                return Err(Malformed);
            }
            let initiator_conn_id = get_u64(b, field::INIT_CONN_ID).ok_or(Truncated)?;
            if initiator_conn_id == 0 {
                return Err(Malformed);
            }
            let (noise, mac1, mac2) = if plain {
                if b.get(field::INIT_PLAIN_PADDING)
                    .is_none_or(|z| z.iter().any(|&x| x != 0))
                {
                    return Err(Malformed);
                }
                (None, field::INIT_PLAIN_MAC1, field::INIT_PLAIN_MAC2)
            } else {
                (b.get(field::INIT_NOISE), field::INIT_MAC1, field::INIT_MAC2)
            };
            Body::Initiation {
                initiator_conn_id,
                noise,
                mac1: get_arr(b, mac1).ok_or(Truncated)?,
                mac2: get_arr(b, mac2).ok_or(Truncated)?,
            }
        }
        MsgType::Response => {
            let plain = match b.len() {
                RESPONSE_LEN => false,
                RESPONSE_PLAIN_LEN => true,
                n if n < RESPONSE_PLAIN_LEN => return Err(Truncated),
                _ => return Err(Malformed),
            };
            if plain {
                let cid = get_u64(b, field::RESP_PLAIN_CONN_ID).ok_or(Truncated)?;
                if cid == 0 {
                    return Err(Malformed);
                }
                Body::Response {
                    noise: None,
                    plain_conn_id: cid,
                    mac1: get_arr(b, field::RESP_PLAIN_MAC1).ok_or(Truncated)?,
                }
            } else {
                Body::Response {
                    noise: b.get(field::RESP_NOISE),
                    plain_conn_id: 0,
                    mac1: get_arr(b, field::RESP_MAC1).ok_or(Truncated)?,
                }
            }
        }
        MsgType::Refused => {
            exact(REFUSED_LEN)?;
            if get_u16(b, field::REFUSED_RESERVED) != Some(0) {
                return Err(Malformed);
            }
            Body::Refused {
                reason: get_u16(b, field::REFUSED_REASON).ok_or(Truncated)?,
                mac1: get_arr(b, field::REFUSED_MAC1).ok_or(Truncated)?,
            }
        }
        MsgType::CookieReply => {
            exact(COOKIE_REPLY_LEN)?;
            Body::CookieReply {
                nonce: get_arr(b, field::COOKIE_NONCE).ok_or(Truncated)?,
                sealed: get_arr(b, field::COOKIE_SEALED).ok_or(Truncated)?,
            }
        }
        _ => Body::Transport {
            ty,
            key_phase: flags & FLAG_KEY_PHASE != 0,
            body: b.get(field::BODY..).ok_or(Truncated)?,
        },
    };
    // Zero names no connection: every message names one (an Initiation's route may be zero).
    if dst_conn_id == 0 && ty != MsgType::Initiation {
        return Err(Malformed);
    }
    Ok(Datagram {
        dst_conn_id,
        packet_number,
        body,
    })
}

/// Reads a transport message's plaintext body (after decryption, or as received in plaintext
/// mode). Data of any length is accepted here; the endpoint enforces `max_payload`.
pub fn parse_plain(ty: MsgType, body: &[u8]) -> Result<Message<'_>, DropReason> {
    use DropReason::{Malformed, Truncated};
    let exact = |len: usize| match body.len().cmp(&len) {
        std::cmp::Ordering::Less => Err(Truncated),
        std::cmp::Ordering::Greater => Err(Malformed),
        std::cmp::Ordering::Equal => Ok(()),
    };
    Ok(match ty {
        MsgType::Data => Message::Data(body),
        MsgType::Ping => {
            exact(PING_BODY)?;
            if body.iter().any(|&x| x != 0) {
                return Err(Malformed);
            }
            Message::Ping
        }
        MsgType::Pong => {
            exact(PONG_BODY)?;
            Message::Pong {
                echo: get_u64(body, 0..8).ok_or(Truncated)?,
            }
        }
        MsgType::Close => {
            exact(CLOSE_BODY)?;
            let code = get_u16(body, 0..2).ok_or(Truncated)?;
            let app = get_u16(body, 2..4).ok_or(Truncated)?;
            Message::Close(CloseReason::from_wire(code, app).ok_or(Malformed)?)
        }
        _ => return Err(DropReason::UnknownType),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    fn transport(ty: MsgType, flags: u8, dst: u64, pn: u64, body: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN + body.len()];
        write_header(&mut b, ty, flags, dst, pn);
        b[HEADER_LEN..].copy_from_slice(body);
        b
    }

    #[test]
    fn plain_bodies_round_trip() {
        let msgs = [
            Message::Data(b"hello"),
            Message::Data(b""),
            Message::Ping,
            Message::Pong { echo: 41 },
            Message::Close(CloseReason::Application(7)),
            Message::Close(CloseReason::IdleTimeout),
        ];
        let mut buf = [0u8; 64];
        for m in msgs {
            let n = m.write_body(&mut buf).unwrap();
            assert_eq!(parse_plain(m.msg_type(), &buf[..n]), Ok(m));
            if m.msg_type() != MsgType::Data {
                for cut in 0..n {
                    assert!(parse_plain(m.msg_type(), &buf[..cut]).is_err());
                }
                assert!(parse_plain(m.msg_type(), &buf[..n + 1]).is_err());
            }
        }
    }

    #[test]
    fn steering_fields_at_documented_offsets() {
        let b = transport(MsgType::Ping, 1, 0x0300_0000_0000_0042, 1, &[0; 24]);
        assert_eq!(b[0], 0x25);
        assert_eq!(b[4], 3, "shard index is byte 4");
        assert_eq!(peek_steering(&b), Some((5, 0x0300_0000_0000_0042)));
        let d = parse(&b).unwrap();
        assert_eq!(
            d.body,
            Body::Transport {
                ty: MsgType::Ping,
                key_phase: true,
                body: &[0; 24]
            }
        );
    }

    #[test]
    fn rejects_by_reason() {
        let b = transport(MsgType::Ping, 0, 9, 1, &[0; 24]);
        let mut x = b.clone();
        x[0] = 0x15;
        assert_eq!(parse(&x), Err(DropReason::UnknownVersion));
        x[0] = 0x2f;
        assert_eq!(parse(&x), Err(DropReason::UnknownType));
        x = b.clone();
        x[1] = 2;
        assert_eq!(parse(&x), Err(DropReason::Malformed));
        x = b.clone();
        x[3] = 1;
        assert_eq!(parse(&x), Err(DropReason::Malformed));
        x = b.clone();
        x[4..12].fill(0);
        assert_eq!(parse(&x), Err(DropReason::Malformed));
        assert_eq!(parse(&b[..19]), Err(DropReason::Truncated));
        assert_eq!(parse(&[]), Err(DropReason::Truncated));
        // Handshake messages have fixed lengths and no flags.
        let mut init = vec![0u8; INITIATION_LEN];
        write_header(&mut init, MsgType::Initiation, 0, 0x2a00_0000_0000_0000, 0);
        init[field::INIT_CONN_ID].copy_from_slice(&5u64.to_be_bytes());
        assert!(
            matches!(parse(&init).unwrap().body, Body::Initiation { noise: Some(n), .. } if n.len() == NOISE1_LEN)
        );
        assert!(matches!(
            parse(&init[..INITIATION_PLAIN_LEN]).unwrap().body,
            Body::Initiation { noise: None, .. }
        ));
        assert_eq!(
            parse(&init[..INITIATION_LEN - 1]),
            Err(DropReason::Malformed)
        );
        assert_eq!(
            parse(&init[..INITIATION_PLAIN_LEN - 1]),
            Err(DropReason::Truncated)
        );
        let mut x = init.clone();
        x[5] = 1;
        assert_eq!(
            parse(&x),
            Err(DropReason::Malformed),
            "route bytes 5..12 zero"
        );
        x = init.clone();
        x[1] = 1;
        assert_eq!(
            parse(&x),
            Err(DropReason::Malformed),
            "no flags on handshakes"
        );
        x = init.clone();
        x[field::INIT_CONN_ID].fill(0);
        assert_eq!(parse(&x), Err(DropReason::Malformed));
        let mut reset = vec![0u8; RESET_LEN];
        reset[0] = 0x28;
        reset[4..12].copy_from_slice(&9u64.to_be_bytes());
        assert!(matches!(parse(&reset).unwrap().body, Body::Reset { .. }));
        assert_eq!(parse(&reset[..RESET_LEN - 1]), Err(DropReason::Truncated));
        reset[2] = 1;
        assert_eq!(parse(&reset), Err(DropReason::Malformed));
    }
}
