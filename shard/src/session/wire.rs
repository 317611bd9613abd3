//! The datagram codec: every message of protocol version 1, parsed and emitted with named
//! field ranges (smoltcp style). `docs/PROTOCOL.md` is the normative description; this file
//! and it must agree byte for byte.
//!
//! ```text
//!  0       1       2       3       4                               12                              20
//! +-------+-------+-------+-------+-------------------------------+-------------------------------+----
//! |ver|typ| flags |   reserved    |   dst conn ID (u64, BE)       |   packet number (u64, BE)     | body
//! +-------+-------+-------+-------+-------------------------------+-------------------------------+----
//! ```
//!
//! Contract: [`parse`] is total. It bounds-checks every field before reading it and returns a
//! [`DropReason`] for anything that is not exactly a valid message; it never panics, whatever
//! the input. [`encode`] writes only messages that [`parse`] accepts (a test checks the round
//! trip for every type).
#![forbid(unsafe_code)]

use std::ops::Range;

use super::drop_reason::DropReason;
use super::event::CloseReason;

type Field = Range<usize>;

/// Protocol version carried in the high nibble of byte 0.
pub const VERSION: u8 = 1;

/// Byte ranges of the common header.
pub mod field {
    use super::Field;
    /// Version (high nibble) and message type (low nibble).
    pub const VERSION_TYPE: usize = 0;
    /// Flags; only Hello defines a bit ([`super::HELLO_FLAG_COOKIE`]). Zero otherwise.
    pub const FLAGS: usize = 1;
    /// Reserved, zero.
    pub const RESERVED: Field = 2..4;
    /// The receiver's connection ID, big-endian: the BPF steering key. Zero in a Hello.
    pub const DST_CONN_ID: Field = 4..12;
    /// The sender's packet number, big-endian (a Cookie echoes the Hello's).
    pub const PACKET_NUMBER: Field = 12..20;
    /// Where the type-specific body starts.
    pub const BODY: usize = 20;

    /// Hello: the client's connection ID (the server uses it as `dst` in replies).
    pub const HELLO_SRC_CONN_ID: Field = 20..28;
    /// Hello: the cookie's timestamp (zero without cookie).
    pub const HELLO_COOKIE_TIME: Field = 28..36;
    /// Hello: the cookie's MAC (zero without cookie).
    pub const HELLO_COOKIE_MAC: Field = 36..52;
    /// Hello: zero padding, so that no reply to a Hello is larger than the Hello.
    pub const HELLO_PADDING: Field = 52..64;

    /// Cookie: the timestamp (server milliseconds).
    pub const COOKIE_TIME: Field = 20..28;
    /// Cookie: the MAC.
    pub const COOKIE_MAC: Field = 28..44;

    /// Accept: the connection ID the client must put in `dst` from now on.
    pub const ACCEPT_SERVER_CONN_ID: Field = 20..28;
    /// Accept: the client's connection ID, echoed.
    pub const ACCEPT_CLIENT_CONN_ID: Field = 28..36;

    /// Ping: zero padding, so that the Pong answering it is never larger than the Ping.
    pub const PING_PADDING: Field = 20..28;

    /// Pong: the packet number of the Ping it answers.
    pub const PONG_ECHO: Field = 20..28;

    /// Close: the reason code.
    pub const CLOSE_CODE: Field = 20..22;
    /// Close: the application's code (zero unless the reason is Application).
    pub const CLOSE_APP_CODE: Field = 22..24;
}

/// Length of the common header.
pub const HEADER_LEN: usize = field::BODY;
/// Exact length of a Hello.
pub const HELLO_LEN: usize = field::HELLO_PADDING.end;
/// Exact length of a Cookie.
pub const COOKIE_LEN: usize = field::COOKIE_MAC.end;
/// Exact length of an Accept.
pub const ACCEPT_LEN: usize = field::ACCEPT_CLIENT_CONN_ID.end;
/// Exact length of a Ping.
pub const PING_LEN: usize = field::PING_PADDING.end;
/// Exact length of a Pong.
pub const PONG_LEN: usize = field::PONG_ECHO.end;
/// Exact length of a Close.
pub const CLOSE_LEN: usize = field::CLOSE_APP_CODE.end;
/// The largest control message (all control messages fit a buffer of this size).
pub const MAX_CONTROL_LEN: usize = HELLO_LEN;
/// Hello flag: the cookie fields are present.
pub const HELLO_FLAG_COOKIE: u8 = 0x01;

// The amplification bound, checked at compile time: no stateless reply exceeds its trigger.
const _: () = assert!(COOKIE_LEN <= HELLO_LEN && ACCEPT_LEN <= HELLO_LEN && PONG_LEN <= PING_LEN);

/// Message type numbers (low nibble of byte 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum MsgType {
    /// Client → server, opens a handshake (with or without cookie).
    Hello = 1,
    /// Server → client, stateless address-validation token.
    Cookie = 2,
    /// Server → client, the handshake is done.
    Accept = 3,
    /// Application datagram.
    Data = 4,
    /// Keepalive and RTT probe.
    Ping = 5,
    /// Answer to a Ping.
    Pong = 6,
    /// The sender closed the session.
    Close = 7,
}

impl MsgType {
    fn from_nibble(n: u8) -> Option<Self> {
        Some(match n {
            1 => MsgType::Hello,
            2 => MsgType::Cookie,
            3 => MsgType::Accept,
            4 => MsgType::Data,
            5 => MsgType::Ping,
            6 => MsgType::Pong,
            7 => MsgType::Close,
            _ => return None,
        })
    }
}

/// A cookie as carried by Cookie and Hello messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CookieToken {
    /// When the server issued it, in the server's milliseconds.
    pub time_ms: u64,
    /// MAC over the secret, the client's address and connection ID, and `time_ms`.
    pub mac: [u8; 16],
}

/// A parsed message body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// Opens a handshake.
    Hello {
        /// The client's connection ID.
        src_conn_id: u64,
        /// The cookie, on the second Hello.
        cookie: Option<CookieToken>,
    },
    /// The server's stateless reply to a Hello without (valid) cookie.
    Cookie(CookieToken),
    /// The server accepted.
    Accept {
        /// The ID the client uses as `dst` from now on.
        server_conn_id: u64,
        /// The client's ID, echoed.
        client_conn_id: u64,
    },
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
            Message::Hello { .. } => MsgType::Hello,
            Message::Cookie(_) => MsgType::Cookie,
            Message::Accept { .. } => MsgType::Accept,
            Message::Data(_) => MsgType::Data,
            Message::Ping => MsgType::Ping,
            Message::Pong { .. } => MsgType::Pong,
            Message::Close(_) => MsgType::Close,
        }
    }

    /// The encoded length of this message.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        match self {
            Message::Hello { .. } => HELLO_LEN,
            Message::Cookie(_) => COOKIE_LEN,
            Message::Accept { .. } => ACCEPT_LEN,
            Message::Data(p) => HEADER_LEN + p.len(),
            Message::Ping => PING_LEN,
            Message::Pong { .. } => PONG_LEN,
            Message::Close(_) => CLOSE_LEN,
        }
    }
}

/// A parsed datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// The receiver's connection ID (zero in a Hello).
    pub dst_conn_id: u64,
    /// The sender's packet number (a Cookie echoes the Hello's).
    pub packet_number: u64,
    /// The body.
    pub message: Message<'a>,
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

fn get_mac(b: &[u8], f: Field) -> Option<[u8; 16]> {
    b.get(f).and_then(|s| <[u8; 16]>::try_from(s).ok())
}

/// Reads only the steering fields: the message type and destination connection ID. This is what
/// the BPF program sees; it checks nothing else.
#[must_use]
pub fn peek_steering(bytes: &[u8]) -> Option<(u8, u64)> {
    let vt = *bytes.get(field::VERSION_TYPE)?;
    Some((vt & 0x0f, get_u64(bytes, field::DST_CONN_ID)?))
}

/// Parses one datagram. Total: returns the reason for anything that is not a valid message.
pub fn parse(b: &[u8]) -> Result<Datagram<'_>, DropReason> {
    use DropReason::{Malformed, Truncated};
    if b.len() < HEADER_LEN {
        return Err(Truncated);
    }
    let vt = b[field::VERSION_TYPE];
    if vt >> 4 != VERSION {
        return Err(DropReason::UnknownVersion);
    }
    let ty = MsgType::from_nibble(vt & 0x0f).ok_or(DropReason::UnknownType)?;
    let flags = b[field::FLAGS];
    let allowed_flags = if ty == MsgType::Hello {
        HELLO_FLAG_COOKIE
    } else {
        0
    };
    if flags & !allowed_flags != 0 || get_u16(b, field::RESERVED) != Some(0) {
        return Err(Malformed);
    }
    let dst_conn_id = get_u64(b, field::DST_CONN_ID).ok_or(Truncated)?;
    let packet_number = get_u64(b, field::PACKET_NUMBER).ok_or(Truncated)?;
    let exact = |len: usize| match b.len().cmp(&len) {
        std::cmp::Ordering::Less => Err(Truncated),
        std::cmp::Ordering::Greater => Err(Malformed),
        std::cmp::Ordering::Equal => Ok(()),
    };
    // Zero names no session; only a Hello may carry it (and must).
    if (ty == MsgType::Hello) != (dst_conn_id == 0) {
        return Err(Malformed);
    }
    let message = match ty {
        MsgType::Hello => {
            exact(HELLO_LEN)?;
            let src_conn_id = get_u64(b, field::HELLO_SRC_CONN_ID).ok_or(Truncated)?;
            let time_ms = get_u64(b, field::HELLO_COOKIE_TIME).ok_or(Truncated)?;
            let mac = get_mac(b, field::HELLO_COOKIE_MAC).ok_or(Truncated)?;
            let padding_zero = b
                .get(field::HELLO_PADDING)
                .is_some_and(|p| p.iter().all(|&x| x == 0));
            if src_conn_id == 0 || !padding_zero {
                return Err(Malformed);
            }
            let cookie = if flags & HELLO_FLAG_COOKIE != 0 {
                Some(CookieToken { time_ms, mac })
            } else if time_ms != 0 || mac != [0; 16] {
                return Err(Malformed);
            } else {
                None
            };
            Message::Hello {
                src_conn_id,
                cookie,
            }
        }
        MsgType::Cookie => {
            exact(COOKIE_LEN)?;
            Message::Cookie(CookieToken {
                time_ms: get_u64(b, field::COOKIE_TIME).ok_or(Truncated)?,
                mac: get_mac(b, field::COOKIE_MAC).ok_or(Truncated)?,
            })
        }
        MsgType::Accept => {
            exact(ACCEPT_LEN)?;
            let server_conn_id = get_u64(b, field::ACCEPT_SERVER_CONN_ID).ok_or(Truncated)?;
            let client_conn_id = get_u64(b, field::ACCEPT_CLIENT_CONN_ID).ok_or(Truncated)?;
            if server_conn_id == 0 || client_conn_id != dst_conn_id {
                return Err(Malformed);
            }
            Message::Accept {
                server_conn_id,
                client_conn_id,
            }
        }
        MsgType::Data => Message::Data(b.get(field::BODY..).ok_or(Truncated)?),
        MsgType::Ping => {
            exact(PING_LEN)?;
            if b.get(field::PING_PADDING)
                .is_none_or(|p| p.iter().any(|&x| x != 0))
            {
                return Err(Malformed);
            }
            Message::Ping
        }
        MsgType::Pong => {
            exact(PONG_LEN)?;
            Message::Pong {
                echo: get_u64(b, field::PONG_ECHO).ok_or(Truncated)?,
            }
        }
        MsgType::Close => {
            exact(CLOSE_LEN)?;
            let code = get_u16(b, field::CLOSE_CODE).ok_or(Truncated)?;
            let app = get_u16(b, field::CLOSE_APP_CODE).ok_or(Truncated)?;
            Message::Close(CloseReason::from_wire(code, app).ok_or(Malformed)?)
        }
    };
    Ok(Datagram {
        dst_conn_id,
        packet_number,
        message,
    })
}

/// Writes `msg` into `buf`; returns the length written, or `None` if `buf` is too small.
#[must_use]
pub fn encode(
    dst_conn_id: u64,
    packet_number: u64,
    msg: &Message<'_>,
    buf: &mut [u8],
) -> Option<usize> {
    let len = msg.encoded_len();
    let out = buf.get_mut(..len)?;
    out.fill(0);
    out[field::VERSION_TYPE] = (VERSION << 4) | msg.msg_type() as u8;
    out[field::DST_CONN_ID].copy_from_slice(&dst_conn_id.to_be_bytes());
    out[field::PACKET_NUMBER].copy_from_slice(&packet_number.to_be_bytes());
    match *msg {
        Message::Hello {
            src_conn_id,
            cookie,
        } => {
            out[field::HELLO_SRC_CONN_ID].copy_from_slice(&src_conn_id.to_be_bytes());
            if let Some(c) = cookie {
                out[field::FLAGS] = HELLO_FLAG_COOKIE;
                out[field::HELLO_COOKIE_TIME].copy_from_slice(&c.time_ms.to_be_bytes());
                out[field::HELLO_COOKIE_MAC].copy_from_slice(&c.mac);
            }
        }
        Message::Cookie(c) => {
            out[field::COOKIE_TIME].copy_from_slice(&c.time_ms.to_be_bytes());
            out[field::COOKIE_MAC].copy_from_slice(&c.mac);
        }
        Message::Accept {
            server_conn_id,
            client_conn_id,
        } => {
            out[field::ACCEPT_SERVER_CONN_ID].copy_from_slice(&server_conn_id.to_be_bytes());
            out[field::ACCEPT_CLIENT_CONN_ID].copy_from_slice(&client_conn_id.to_be_bytes());
        }
        Message::Data(p) => out[field::BODY..].copy_from_slice(p),
        Message::Ping => {}
        Message::Pong { echo } => out[field::PONG_ECHO].copy_from_slice(&echo.to_be_bytes()),
        Message::Close(reason) => {
            let (code, app) = reason.to_wire();
            out[field::CLOSE_CODE].copy_from_slice(&code.to_be_bytes());
            out[field::CLOSE_APP_CODE].copy_from_slice(&app.to_be_bytes());
        }
    }
    Some(len)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    fn samples() -> Vec<(u64, Message<'static>)> {
        let c = CookieToken {
            time_ms: 77,
            mac: [0xab; 16],
        };
        vec![
            (
                0,
                Message::Hello {
                    src_conn_id: 5,
                    cookie: None,
                },
            ),
            (
                0,
                Message::Hello {
                    src_conn_id: 5,
                    cookie: Some(c),
                },
            ),
            (5, Message::Cookie(c)),
            (
                5,
                Message::Accept {
                    server_conn_id: 9,
                    client_conn_id: 5,
                },
            ),
            (9, Message::Data(b"hello")),
            (9, Message::Data(b"")),
            (9, Message::Ping),
            (9, Message::Pong { echo: 41 }),
            (9, Message::Close(CloseReason::Application(7))),
            (9, Message::Close(CloseReason::IdleTimeout)),
        ]
    }

    #[test]
    fn round_trip_every_type() {
        let mut buf = [0u8; 128];
        for (dst, m) in samples() {
            let n = encode(dst, 3, &m, &mut buf).unwrap();
            let d = parse(&buf[..n]).unwrap();
            assert_eq!(
                d,
                Datagram {
                    dst_conn_id: dst,
                    packet_number: 3,
                    message: m
                }
            );
            // Every strict prefix is rejected as truncated or malformed, never accepted
            // (except Data, whose shorter forms are shorter payloads).
            for cut in 0..n {
                let r = parse(&buf[..cut]);
                if m.msg_type() != MsgType::Data || cut < HEADER_LEN {
                    assert!(r.is_err(), "{m:?} cut {cut}");
                }
            }
        }
    }

    /// The byte strings in `docs/PROTOCOL.md`, section "Examples".
    #[test]
    fn known_answer_encodings() {
        fn hex(b: &[u8]) -> String {
            b.iter()
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        }
        let (client, server) = (0x0102_0304_0506_0708, 0x03aa_bbcc_ddee_ff11);
        let mut buf = [0u8; 128];
        let n = encode(server, 2, &Message::Data(b"hi"), &mut buf).unwrap();
        assert_eq!(
            hex(&buf[..n]),
            "14 00 00 00 03 aa bb cc dd ee ff 11 00 00 00 00 00 00 00 02 68 69"
        );
        let n = encode(
            client,
            0,
            &Message::Accept {
                server_conn_id: server,
                client_conn_id: client,
            },
            &mut buf,
        )
        .unwrap();
        assert_eq!(
            hex(&buf[..n]),
            "13 00 00 00 01 02 03 04 05 06 07 08 00 00 00 00 00 00 00 00 03 aa bb cc dd ee ff 11 01 02 03 04 05 06 07 08"
        );
        let n = encode(
            server,
            4,
            &Message::Close(CloseReason::Application(0x1234)),
            &mut buf,
        )
        .unwrap();
        assert_eq!(
            hex(&buf[..n]),
            "17 00 00 00 03 aa bb cc dd ee ff 11 00 00 00 00 00 00 00 04 00 03 12 34"
        );
    }

    #[test]
    fn steering_fields_at_documented_offsets() {
        let mut buf = [0u8; 64];
        let n = encode(0x0300_0000_0000_0042, 1, &Message::Ping, &mut buf).unwrap();
        assert_eq!(n, PING_LEN);
        assert_eq!(buf[0], 0x15);
        assert_eq!(buf[4], 3, "shard index is byte 4");
        assert_eq!(peek_steering(&buf[..n]), Some((5, 0x0300_0000_0000_0042)));
    }

    #[test]
    fn rejects_by_reason() {
        let mut buf = [0u8; 64];
        let n = encode(9, 1, &Message::Ping, &mut buf).unwrap();
        let mut b = buf;
        b[0] = 0x25;
        assert_eq!(parse(&b[..n]), Err(DropReason::UnknownVersion));
        b[0] = 0x1f;
        assert_eq!(parse(&b[..n]), Err(DropReason::UnknownType));
        b = buf;
        b[1] = 1;
        assert_eq!(parse(&b[..n]), Err(DropReason::Malformed));
        b = buf;
        b[4..12].fill(0);
        assert_eq!(parse(&b[..n]), Err(DropReason::Malformed));
        assert_eq!(parse(&buf[..n + 1]), Err(DropReason::Malformed));
        assert_eq!(parse(&buf[..5]), Err(DropReason::Truncated));
    }
}
