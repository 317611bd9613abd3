//! `relay`: the gateway example. Clients open sessions; the relay tells each client its
//! connection ID (`Welcome`), and forwards `Forward { dst, bytes }` to the session `dst` as
//! `Delivered { src, bytes }`, across shards when `dst` lives on another one. A destination
//! that does not exist gets the sender an `Unreachable { dst }`. Message format:
//! `docs/PROTOCOL.md`, "Relay messages".
#![forbid(unsafe_code)]

use std::net::SocketAddr;

use crate::session::ConnId;
pub mod msg;

use crate::session::{SessionApp, SessionSend, Sessions};
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
}

/// The relay application, one per shard.
#[derive(Debug, Default)]
pub struct Relay {
    stats: RelayStats,
    scratch: Vec<u8>,
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

impl SessionApp for Relay {
    fn on_connected(&mut self, conn: ConnId, _peer: SocketAddr, s: &mut Sessions<'_, '_>) {
        let welcome = RelayMsg::Welcome { conn_id: conn.0 }.to_vec();
        self.notify(conn, &welcome, s);
    }

    fn on_message(&mut self, conn: ConnId, bytes: &[u8], s: &mut Sessions<'_, '_>) {
        let Ok(RelayMsg::Forward { dst_conn_id, bytes }) = RelayMsg::decode(bytes) else {
            self.stats.malformed += 1;
            return;
        };
        let delivered = RelayMsg::Delivered {
            src_conn_id: conn.0,
            bytes,
        };
        self.scratch.resize(delivered.encoded_len(), 0);
        let Ok(n) = delivered.encode(&mut self.scratch) else {
            self.stats.malformed += 1;
            return;
        };
        match s.send(ConnId(dst_conn_id), &self.scratch[..n]) {
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
        ]);
    }
}
