//! Messages of the relay application, carried as the payload of Data datagrams.
//!
//! The relay (the gateway app, built later in the engine) holds one session per client. It
//! tells each client its connection ID (the *relay's* local ID for that client's session,
//! which other clients use as their address for it), forwards between clients, and reports
//! destinations it does not know. Layout, all integers big-endian:
//!
//! ```text
//! Welcome      | kind = 1 | conn_id (8)          |                 (9 bytes)
//! Forward      | kind = 2 | dst_conn_id (8)      | bytes ...       (9 + n bytes)
//! Delivered    | kind = 3 | src_conn_id (8)      | bytes ...       (9 + n bytes)
//! Unreachable  | kind = 4 | dst_conn_id (8)      |                 (9 bytes)
//! Subscribe    | kind = 5 | publisher_conn_id (8) |                (9 bytes)
//! Publish      | kind = 6 | publisher_conn_id (8) | bytes ...      (9 + n bytes)
//! ```
//!
//! Fan-out: a client that sends `Subscribe { publisher }` gets every later
//! `Publish` of that client as a `Delivered { src_conn_id: publisher, bytes }`; a client
//! publishes only on its own ID (the one its `Welcome` gave).
//!
//! Decoding is total (no panics, every length checked) and strict: fixed-size messages with
//! trailing bytes are rejected. The payload borrows from the input: no copy.
#![forbid(unsafe_code)]

/// Kind byte of [`RelayMsg::Welcome`].
pub const KIND_WELCOME: u8 = 1;
/// Kind byte of [`RelayMsg::Forward`].
pub const KIND_FORWARD: u8 = 2;
/// Kind byte of [`RelayMsg::Delivered`].
pub const KIND_DELIVERED: u8 = 3;
/// Kind byte of [`RelayMsg::Unreachable`].
pub const KIND_UNREACHABLE: u8 = 4;
/// Kind byte of [`RelayMsg::Subscribe`].
pub const KIND_SUBSCRIBE: u8 = 5;
/// Kind byte of [`RelayMsg::Publish`].
pub const KIND_PUBLISH: u8 = 6;
/// Bytes before the payload in every relay message: kind + a connection ID.
pub const RELAY_HEADER_LEN: usize = 9;

/// One relay message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayMsg<'a> {
    /// Relay → client, once on connect: "your ID at this relay is `conn_id`".
    Welcome {
        /// The client's ID at the relay.
        conn_id: u64,
    },
    /// Client → relay: deliver `bytes` to the client whose ID is `dst_conn_id`.
    Forward {
        /// The destination client's ID at the relay.
        dst_conn_id: u64,
        /// The payload.
        bytes: &'a [u8],
    },
    /// Relay → client: `bytes` from the client whose ID is `src_conn_id`.
    Delivered {
        /// The sending client's ID at the relay.
        src_conn_id: u64,
        /// The payload.
        bytes: &'a [u8],
    },
    /// Relay → client: no client has ID `dst_conn_id` (a Forward or Subscribe found no such
    /// client on the relay's shard).
    Unreachable {
        /// The ID that was not found.
        dst_conn_id: u64,
    },
    /// Client → relay: deliver every later `Publish` of the client whose ID is
    /// `publisher_conn_id` to me (replacing any earlier subscription of mine).
    Subscribe {
        /// The publishing client's ID at the relay.
        publisher_conn_id: u64,
    },
    /// Client → relay: deliver `bytes` to every subscriber of mine. `publisher_conn_id` must
    /// be the sender's own ID.
    Publish {
        /// The sender's own ID at the relay.
        publisher_conn_id: u64,
        /// The payload.
        bytes: &'a [u8],
    },
}

/// Why a relay message could not be decoded or encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The input was empty.
    #[error("empty relay message")]
    Empty,
    /// The kind byte is not one of the six.
    #[error("unknown relay message kind {0}")]
    UnknownKind(u8),
    /// Shorter than the kind requires.
    #[error("relay message of kind {kind} truncated: {len} bytes")]
    Truncated {
        /// The kind byte.
        kind: u8,
        /// The length received.
        len: usize,
    },
    /// A fixed-size message (Welcome, Unreachable) with bytes after it.
    #[error("relay message of kind {0} has trailing bytes")]
    TrailingBytes(u8),
    /// The output buffer is smaller than [`RelayMsg::encoded_len`].
    #[error("buffer too small: need {need} bytes")]
    BufferTooSmall {
        /// Bytes needed.
        need: usize,
    },
}

impl<'a> RelayMsg<'a> {
    fn parts(&self) -> (u8, u64, &'a [u8]) {
        match *self {
            RelayMsg::Welcome { conn_id } => (KIND_WELCOME, conn_id, &[]),
            RelayMsg::Forward { dst_conn_id, bytes } => (KIND_FORWARD, dst_conn_id, bytes),
            RelayMsg::Delivered { src_conn_id, bytes } => (KIND_DELIVERED, src_conn_id, bytes),
            RelayMsg::Unreachable { dst_conn_id } => (KIND_UNREACHABLE, dst_conn_id, &[]),
            RelayMsg::Subscribe { publisher_conn_id } => (KIND_SUBSCRIBE, publisher_conn_id, &[]),
            RelayMsg::Publish {
                publisher_conn_id,
                bytes,
            } => (KIND_PUBLISH, publisher_conn_id, bytes),
        }
    }

    /// The encoded length.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        RELAY_HEADER_LEN + self.parts().2.len()
    }

    /// Writes the message at the start of `buf`; returns its length.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, RelayError> {
        let (kind, id, bytes) = self.parts();
        let need = RELAY_HEADER_LEN + bytes.len();
        let out = buf
            .get_mut(..need)
            .ok_or(RelayError::BufferTooSmall { need })?;
        out[0] = kind;
        out[1..RELAY_HEADER_LEN].copy_from_slice(&id.to_be_bytes());
        out[RELAY_HEADER_LEN..].copy_from_slice(bytes);
        Ok(need)
    }

    /// The message as a new `Vec`.
    #[must_use]
    pub fn to_vec(&self) -> Vec<u8> {
        let (kind, id, bytes) = self.parts();
        let mut v = Vec::with_capacity(RELAY_HEADER_LEN + bytes.len());
        v.push(kind);
        v.extend_from_slice(&id.to_be_bytes());
        v.extend_from_slice(bytes);
        v
    }

    /// Parses one message; the payload borrows from `b`.
    pub fn decode(b: &'a [u8]) -> Result<Self, RelayError> {
        let &kind = b.first().ok_or(RelayError::Empty)?;
        if !(KIND_WELCOME..=KIND_PUBLISH).contains(&kind) {
            return Err(RelayError::UnknownKind(kind));
        }
        let id = b
            .get(1..RELAY_HEADER_LEN)
            .and_then(|s| <[u8; 8]>::try_from(s).ok())
            .map(u64::from_be_bytes)
            .ok_or(RelayError::Truncated { kind, len: b.len() })?;
        let rest = b.get(RELAY_HEADER_LEN..).unwrap_or(&[]);
        let fixed = |m: RelayMsg<'a>| {
            if rest.is_empty() {
                Ok(m)
            } else {
                Err(RelayError::TrailingBytes(kind))
            }
        };
        match kind {
            KIND_WELCOME => fixed(RelayMsg::Welcome { conn_id: id }),
            KIND_FORWARD => Ok(RelayMsg::Forward {
                dst_conn_id: id,
                bytes: rest,
            }),
            KIND_DELIVERED => Ok(RelayMsg::Delivered {
                src_conn_id: id,
                bytes: rest,
            }),
            KIND_SUBSCRIBE => fixed(RelayMsg::Subscribe {
                publisher_conn_id: id,
            }),
            KIND_PUBLISH => Ok(RelayMsg::Publish {
                publisher_conn_id: id,
                bytes: rest,
            }),
            _ => fixed(RelayMsg::Unreachable { dst_conn_id: id }),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let msgs = [
            RelayMsg::Welcome {
                conn_id: 0x0102_0304_0506_0708,
            },
            RelayMsg::Forward {
                dst_conn_id: 9,
                bytes: b"hi there",
            },
            RelayMsg::Forward {
                dst_conn_id: 9,
                bytes: b"",
            },
            RelayMsg::Delivered {
                src_conn_id: u64::MAX,
                bytes: &[0, 1, 2],
            },
            RelayMsg::Unreachable { dst_conn_id: 77 },
            RelayMsg::Subscribe {
                publisher_conn_id: 5,
            },
            RelayMsg::Publish {
                publisher_conn_id: 5,
                bytes: b"news",
            },
        ];
        for m in msgs {
            let v = m.to_vec();
            assert_eq!(v.len(), m.encoded_len());
            assert_eq!(RelayMsg::decode(&v), Ok(m));
            let mut buf = [0u8; 64];
            let n = m.encode(&mut buf).unwrap();
            assert_eq!(&buf[..n], &v[..]);
            assert_eq!(
                m.encode(&mut buf[..n - 1]),
                Err(RelayError::BufferTooSmall { need: n })
            );
        }
    }

    #[test]
    fn exact_bytes_of_welcome() {
        let v = RelayMsg::Welcome {
            conn_id: 0x0300_0000_0000_002a,
        }
        .to_vec();
        assert_eq!(v, [1, 3, 0, 0, 0, 0, 0, 0, 0x2a]);
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(RelayMsg::decode(&[]), Err(RelayError::Empty));
        assert_eq!(RelayMsg::decode(&[0]), Err(RelayError::UnknownKind(0)));
        assert_eq!(RelayMsg::decode(&[7, 0]), Err(RelayError::UnknownKind(7)));
        assert_eq!(
            RelayMsg::decode(&[5; 10]),
            Err(RelayError::TrailingBytes(5))
        );
        assert_eq!(
            RelayMsg::decode(&[2, 0, 0]),
            Err(RelayError::Truncated { kind: 2, len: 3 })
        );
        assert_eq!(
            RelayMsg::decode(&[1; 10]),
            Err(RelayError::TrailingBytes(1))
        );
        assert_eq!(
            RelayMsg::decode(&[4; 10]),
            Err(RelayError::TrailingBytes(4))
        );
    }

    #[test]
    fn decode_never_panics_on_short_inputs() {
        for len in 0..32 {
            for fill in [0u8, 1, 2, 3, 4, 0xff] {
                let b = vec![fill; len];
                let _ = RelayMsg::decode(&b);
            }
        }
    }
}
