//! `relay`: the gateway example. Clients open sessions; the relay tells each client its
//! connection ID (`Welcome`), and forwards `Forward { dst, bytes }` to the session `dst` as
//! `Delivered { src, bytes }`, across shards when `dst` lives on another one. A destination
//! that does not exist gets the sender an `Unreachable { dst }`. Fan-out: a client that sent
//! `Subscribe { publisher }` gets each later `Publish` of that client as a `Delivered`, one
//! copy per subscriber, sent in the turn the Publish arrived (publisher and subscribers must
//! share a shard: a Subscribe naming a client of another shard is answered `Unreachable`).
//! Message format: `docs/PROTOCOL.md`, "Relay messages".
#![forbid(unsafe_code)]

use std::net::SocketAddr;

use crate::session::{ConnId, shard_of};
pub mod fanout;
pub mod msg;

use crate::session::{SessionApp, SessionSend, Sessions};
pub use fanout::Subscriptions;
pub use msg::RelayMsg;

/// Relay counters for one shard.
#[derive(Debug, Default, Clone, Copy)]
#[non_exhaustive]
pub struct RelayStats {
    /// Messages forwarded to a session on this shard.
    pub forwarded_local: u64,
    /// Messages handed to another shard for its session.
    pub forwarded_remote: u64,
    /// Forwards to a destination that does not exist, on this shard or on the one its ID names
    /// (answered with `Unreachable`).
    pub unreachable: u64,
    /// Forwards dropped because the destination's queue or shard lane was full.
    pub dropped_full: u64,
    /// Client messages that were not a valid `Forward` (dropped, counted).
    pub malformed: u64,
    /// `Welcome` and `Unreachable` notices the session layer refused (the session closed
    /// meanwhile, or its queue was full): the client does not get them.
    pub notices_dropped: u64,
    /// `Subscribe`s accepted.
    pub subscribed: u64,
    /// `Publish`es received (each fans out to the publisher's subscribers).
    pub published: u64,
    /// Copies of Publishes queued to subscribers.
    pub fanned_out: u64,
    /// Copies a subscriber's session refused (its queue full, or too large): not delivered.
    pub fanout_dropped: u64,
}

/// The relay application, one per shard.
#[derive(Debug, Default)]
pub struct Relay {
    stats: RelayStats,
    scratch: Vec<u8>,
    subscriptions: Subscriptions,
}

impl Relay {
    /// This shard's relay counters.
    pub fn stats(&self) -> RelayStats {
        self.stats
    }

    /// Sends a notice to `conn` (a session that just connected or just wrote to us, on this
    /// shard or, for an `Unreachable` found on another shard, on the sender's), counting a
    /// refusal.
    fn notify(&mut self, conn: ConnId, notice: &[u8], s: &mut Sessions<'_, '_>) {
        match s.send(conn, notice) {
            SessionSend::SentNow | SessionSend::Queued | SessionSend::HandedToShard(_) => {}
            _ => self.stats.notices_dropped += 1,
        }
    }
}

impl Relay {
    /// `Forward`: `bytes` to `dst_conn_id` as a `Delivered` from `conn`.
    fn forward(&mut self, conn: ConnId, dst_conn_id: u64, bytes: &[u8], s: &mut Sessions<'_, '_>) {
        if !self.encode_delivered(conn, bytes) {
            return;
        }
        match s.send(ConnId(dst_conn_id), &self.scratch) {
            SessionSend::SentNow | SessionSend::Queued => self.stats.forwarded_local += 1,
            SessionSend::HandedToShard(_) => self.stats.forwarded_remote += 1,
            SessionSend::Closed | SessionSend::ShardClosed(_) => {
                self.stats.unreachable += 1;
                self.notify(conn, &RelayMsg::Unreachable { dst_conn_id }.to_vec(), s);
            }
            SessionSend::Full | SessionSend::ShardFull(_) | SessionSend::TooLarge => {
                self.stats.dropped_full += 1;
            }
        }
    }

    /// `Subscribe`: `conn` follows `publisher`, a session of this shard.
    fn subscribe(&mut self, conn: ConnId, publisher: u64, s: &mut Sessions<'_, '_>) {
        let local = usize::from(shard_of(publisher)) == s.shard_index();
        if !local || !s.is_open(ConnId(publisher)) {
            self.stats.unreachable += 1;
            let notice = RelayMsg::Unreachable {
                dst_conn_id: publisher,
            };
            self.notify(conn, &notice.to_vec(), s);
            return;
        }
        if self.subscriptions.subscribe(conn, ConnId(publisher)) {
            self.stats.subscribed += 1;
        }
    }

    /// `Publish`: one `Delivered` from `conn` to each of its subscribers, queued now.
    fn publish(&mut self, conn: ConnId, bytes: &[u8], s: &mut Sessions<'_, '_>) {
        self.stats.published += 1;
        if !self.encode_delivered(conn, bytes) {
            return;
        }
        for &sub in self.subscriptions.subscribers(conn) {
            match s.send(sub, &self.scratch) {
                SessionSend::SentNow | SessionSend::Queued => self.stats.fanned_out += 1,
                _ => self.stats.fanout_dropped += 1,
            }
        }
    }

    /// Writes `Delivered { src: conn, bytes }` into `scratch` (false, counted, if it cannot).
    fn encode_delivered(&mut self, conn: ConnId, bytes: &[u8]) -> bool {
        let delivered = RelayMsg::Delivered {
            src_conn_id: conn.0,
            bytes,
        };
        self.scratch.resize(delivered.encoded_len(), 0);
        if delivered.encode(&mut self.scratch).is_err() {
            self.stats.malformed += 1;
            return false;
        }
        true
    }
}

impl SessionApp for Relay {
    fn on_connected(&mut self, conn: ConnId, _peer: SocketAddr, s: &mut Sessions<'_, '_>) {
        let welcome = RelayMsg::Welcome { conn_id: conn.0 }.to_vec();
        self.notify(conn, &welcome, s);
    }

    fn on_message(&mut self, conn: ConnId, bytes: &[u8], s: &mut Sessions<'_, '_>) {
        match RelayMsg::decode(bytes) {
            Ok(RelayMsg::Forward { dst_conn_id, bytes }) => {
                self.forward(conn, dst_conn_id, bytes, s);
            }
            Ok(RelayMsg::Subscribe { publisher_conn_id }) => {
                self.subscribe(conn, publisher_conn_id, s);
            }
            Ok(RelayMsg::Publish {
                publisher_conn_id,
                bytes,
            }) if publisher_conn_id == conn.0 => self.publish(conn, bytes, s),
            _ => self.stats.malformed += 1,
        }
    }

    fn on_disconnected(
        &mut self,
        conn: ConnId,
        _reason: crate::session::CloseReason,
        _by: crate::session::Closer,
        _s: &mut Sessions<'_, '_>,
    ) {
        self.subscriptions.session_ended(conn);
    }

    /// A Delivered handed to another shard found its destination gone there: tell the sender
    /// (whose ID the Delivered carries) that the destination is unreachable, as for a local
    /// one. Anything else undeliverable (an `Unreachable` to a sender that left meanwhile) is
    /// only counted by the session layer.
    fn on_undeliverable(&mut self, conn: ConnId, bytes: &[u8], s: &mut Sessions<'_, '_>) {
        if let Ok(RelayMsg::Delivered { src_conn_id, .. }) = RelayMsg::decode(bytes) {
            self.stats.unreachable += 1;
            let notice = RelayMsg::Unreachable {
                dst_conn_id: conn.0,
            }
            .to_vec();
            self.notify(ConnId(src_conn_id), &notice, s);
        }
    }

    fn counters(&self, out: &mut Vec<(&'static str, u64)>) {
        let s = self.stats;
        out.extend([
            ("relay_forwarded_local", s.forwarded_local),
            ("relay_forwarded_remote", s.forwarded_remote),
            ("relay_unreachable", s.unreachable),
            ("relay_dropped_full", s.dropped_full),
            ("relay_malformed", s.malformed),
            ("relay_notices_dropped", s.notices_dropped),
            ("relay_subscribed", s.subscribed),
            ("relay_published", s.published),
            ("relay_fanned_out", s.fanned_out),
            ("relay_fanout_dropped", s.fanout_dropped),
        ]);
    }
}
