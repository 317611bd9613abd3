//! What one shard's relay tells another's about fan-out, over the mesh
//! ([`Sessions::send_to_shard`](crate::session::Sessions::send_to_shard)): a subscriber's
//! shard registers with the publisher's shard, and the publisher's shard sends each `Publish`
//! there once, as one message the subscriber's shard copies to its own subscribers.
//!
//! Layout, integers big-endian (never on the wire between hosts: both ends are one process):
//!
//! ```text
//! Subscribe    | kind = 1 | publisher_conn_id (8) |                        control lane
//! Unsubscribe  | kind = 2 | publisher_conn_id (8) |                        control lane
//! Gone         | kind = 3 | publisher_conn_id (8) |                        control lane
//! Publish      | kind = 4 | publisher_conn_id (8) | Delivered bytes ...   data lane
//! ```
//!
//! Subscriptions travel on the control lane, drained before data, so a shard registers before
//! any Publish that follows it; the copies travel on the data lane.
#![forbid(unsafe_code)]

/// Bytes before a Publish's payload: kind + the publisher's ID.
const HEADER_LEN: usize = 9;

/// One relay message between shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardMsg<'a> {
    /// Subscriber's shard → publisher's shard: "I have subscribers of `publisher`: send me
    /// its Publishes".
    Subscribe {
        /// The publisher, a session of the receiving shard.
        publisher: u64,
    },
    /// Subscriber's shard → publisher's shard: "I no longer have subscribers of `publisher`".
    Unsubscribe {
        /// The publisher.
        publisher: u64,
    },
    /// Publisher's shard → subscriber's shard: `publisher` is not (or no longer) a session
    /// here; its subscribers there are told `Unreachable` and dropped.
    Gone {
        /// The publisher.
        publisher: u64,
    },
    /// Publisher's shard → subscriber's shard: one Publish, already encoded as the
    /// `Delivered` every subscriber gets.
    Publish {
        /// The publisher.
        publisher: u64,
        /// The encoded `Delivered`.
        delivered: &'a [u8],
    },
}

impl<'a> ShardMsg<'a> {
    /// Writes the message into `out` (cleared first).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        let (kind, publisher, rest): (u8, u64, &[u8]) = match *self {
            ShardMsg::Subscribe { publisher } => (1, publisher, &[]),
            ShardMsg::Unsubscribe { publisher } => (2, publisher, &[]),
            ShardMsg::Gone { publisher } => (3, publisher, &[]),
            ShardMsg::Publish {
                publisher,
                delivered,
            } => (4, publisher, delivered),
        };
        out.push(kind);
        out.extend_from_slice(&publisher.to_be_bytes());
        out.extend_from_slice(rest);
    }

    /// Parses `bytes`; `None` if malformed (unknown kind, short, trailing bytes).
    pub fn decode(bytes: &'a [u8]) -> Option<Self> {
        let (head, rest) = bytes.split_at_checked(HEADER_LEN)?;
        let publisher = u64::from_be_bytes(head[1..].try_into().ok()?);
        let fixed = |m: ShardMsg<'a>| rest.is_empty().then_some(m);
        match head[0] {
            1 => fixed(ShardMsg::Subscribe { publisher }),
            2 => fixed(ShardMsg::Unsubscribe { publisher }),
            3 => fixed(ShardMsg::Gone { publisher }),
            4 => Some(ShardMsg::Publish {
                publisher,
                delivered: rest,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        let mut buf = Vec::new();
        for m in [
            ShardMsg::Subscribe { publisher: 7 },
            ShardMsg::Unsubscribe { publisher: 8 },
            ShardMsg::Gone {
                publisher: u64::MAX,
            },
            ShardMsg::Publish {
                publisher: 9,
                delivered: b"abc",
            },
            ShardMsg::Publish {
                publisher: 9,
                delivered: b"",
            },
        ] {
            m.encode(&mut buf);
            assert_eq!(ShardMsg::decode(&buf), Some(m));
        }
        ShardMsg::Subscribe { publisher: 7 }.encode(&mut buf);
        buf.push(0);
        assert_eq!(ShardMsg::decode(&buf), None, "trailing bytes");
        assert_eq!(ShardMsg::decode(&buf[..8]), None, "short");
        buf[0] = 5;
        assert_eq!(ShardMsg::decode(&buf[..9]), None, "unknown kind");
    }
}
