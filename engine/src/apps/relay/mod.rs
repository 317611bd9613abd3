//! `relay`: the gateway example. Clients open sessions; the relay tells each client its
//! connection ID (`Welcome`), and forwards `Forward { dst, bytes }` to the session `dst` as
//! `Delivered { src, bytes }`, across shards when `dst` lives on another one. A destination
//! that does not exist gets the sender an `Unreachable { dst }`. Fan-out: a client that sent
//! `Subscribe { publisher }` gets each later `Publish` of that client as a `Delivered`, one
//! copy per subscriber, sent in the turn the Publish arrived. Subscribers on another shard than
//! the publisher's are reached over the mesh: their shard registers with the publisher's on
//! the control lane, and each Publish crosses once per such shard on the data lane, to be copied
//! there ([`shard_msg`]; `docs/DECISIONS.md` D57).
//! Message format: `docs/PROTOCOL.md`, "Relay messages".
#![forbid(unsafe_code)]

use std::net::SocketAddr;

use crate::session::{ConnId, shard_of};
pub mod fanout;
pub mod msg;
pub mod shard_msg;

use crate::mesh::Lane;
use crate::session::{SessionApp, SessionSend, Sessions, ShardSend};
pub use fanout::Subscriptions;
pub use msg::RelayMsg;
use shard_msg::ShardMsg;

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
    /// Publishes handed to another shard that has subscribers of the publisher (one per
    /// such shard per Publish).
    pub fanout_shard_sent: u64,
    /// Publishes not handed to such a shard because its data lane was full: none of that
    /// shard's subscribers get it.
    pub fanout_shard_full: u64,
    /// Publishes not handed to such a shard because it had stopped.
    pub fanout_shard_closed: u64,
    /// Publishes received from other shards (each copied to this shard's subscribers).
    pub fanout_shard_received: u64,
    /// Of those, ones for a publisher with no subscriber here any more (the publisher's
    /// shard is told again to stop sending).
    pub fanout_shard_orphaned: u64,
    /// Subscribes to a publisher of another shard not registered there because the control
    /// lane was full or the shard had stopped (the subscriber is told `Unreachable`).
    pub subscribe_lost: u64,
}

/// The relay application, one per shard.
#[derive(Debug, Default)]
pub struct Relay {
    stats: RelayStats,
    scratch: Vec<u8>,
    /// A Publish being handed to other shards.
    mesh_buf: Vec<u8>,
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

    /// `Subscribe`: `conn` follows `publisher`, a session of this shard or of another one
    /// (whose shard is asked, on the control lane, to send this shard its Publishes).
    fn subscribe(&mut self, conn: ConnId, publisher: u64, s: &mut Sessions<'_, '_>) {
        let owner = usize::from(shard_of(publisher));
        let local = owner == s.shard_index();
        if owner >= s.shards() || (local && !s.is_open(ConnId(publisher))) {
            self.unreachable(conn, publisher, s);
            return;
        }
        let change = self.subscriptions.subscribe(conn, ConnId(publisher));
        if let Some(left) = change.emptied {
            self.left(left, s);
        }
        if !change.added {
            return;
        }
        if !local && change.first {
            let mut msg = Vec::new();
            ShardMsg::Subscribe { publisher }.encode(&mut msg);
            if s.send_to_shard(owner, Lane::Control, &msg) != ShardSend::Sent {
                self.stats.subscribe_lost += 1;
                let _still_first = self.subscriptions.unsubscribe(conn);
                self.unreachable(conn, publisher, s);
                return;
            }
        }
        self.stats.subscribed += 1;
    }

    /// `publisher` has no subscriber on this shard any more: if it lives on another shard,
    /// that shard stops sending here (best effort: if the message is lost, the next Publish
    /// that arrives finds no subscriber and says it again).
    fn left(&mut self, publisher: ConnId, s: &mut Sessions<'_, '_>) {
        let owner = usize::from(shard_of(publisher.0));
        if owner != s.shard_index() {
            let mut msg = Vec::new();
            ShardMsg::Unsubscribe {
                publisher: publisher.0,
            }
            .encode(&mut msg);
            // Counted by the session layer (`app_lane_full`) if refused.
            let _ = s.send_to_shard(owner, Lane::Control, &msg);
        }
    }

    /// Tells `conn` that `dst` is unreachable (counted).
    fn unreachable(&mut self, conn: ConnId, dst_conn_id: u64, s: &mut Sessions<'_, '_>) {
        self.stats.unreachable += 1;
        self.notify(conn, &RelayMsg::Unreachable { dst_conn_id }.to_vec(), s);
    }

    /// `Publish`: one `Delivered` from `conn` to each of its subscribers, queued now.
    fn publish(&mut self, conn: ConnId, bytes: &[u8], s: &mut Sessions<'_, '_>) {
        self.stats.published += 1;
        if !self.encode_delivered(conn, bytes) {
            return;
        }
        self.copy_to_subscribers(conn, s);
        if self.subscriptions.followers(conn).is_empty() {
            return;
        }
        let mut msg = std::mem::take(&mut self.mesh_buf);
        ShardMsg::Publish {
            publisher: conn.0,
            delivered: &self.scratch,
        }
        .encode(&mut msg);
        for &k in self.subscriptions.followers(conn) {
            match s.send_to_shard(usize::from(k), Lane::Data, &msg) {
                ShardSend::Sent => self.stats.fanout_shard_sent += 1,
                ShardSend::Full => self.stats.fanout_shard_full += 1,
                ShardSend::Closed => self.stats.fanout_shard_closed += 1,
            }
        }
        self.mesh_buf = msg;
    }

    /// Queues the `Delivered` in `scratch` to each of `publisher`'s subscribers on this shard.
    fn copy_to_subscribers(&mut self, publisher: ConnId, s: &mut Sessions<'_, '_>) {
        for &sub in self.subscriptions.subscribers(publisher) {
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
        s: &mut Sessions<'_, '_>,
    ) {
        let (emptied, followers) = self.subscriptions.session_ended(conn);
        if let Some(left) = emptied {
            self.left(left, s);
        }
        if !followers.is_empty() {
            let mut msg = Vec::new();
            ShardMsg::Gone { publisher: conn.0 }.encode(&mut msg);
            for k in followers {
                // Counted by the session layer if refused; the other shard's subscribers then
                // keep their entries and get nothing, as this shard's do.
                let _ = s.send_to_shard(usize::from(k), Lane::Control, &msg);
            }
        }
    }

    /// Fan-out messages from other shards' relays (`shard_msg`).
    fn on_shard_message(
        &mut self,
        from: usize,
        _lane: Lane,
        bytes: &[u8],
        s: &mut Sessions<'_, '_>,
    ) {
        let Ok(from16) = u16::try_from(from) else {
            return;
        };
        match ShardMsg::decode(bytes) {
            Some(ShardMsg::Subscribe { publisher }) => {
                if s.is_open(ConnId(publisher)) {
                    self.subscriptions.follow(ConnId(publisher), from16);
                } else {
                    let mut msg = Vec::new();
                    ShardMsg::Gone { publisher }.encode(&mut msg);
                    let _ = s.send_to_shard(from, Lane::Control, &msg);
                }
            }
            Some(ShardMsg::Unsubscribe { publisher }) => {
                self.subscriptions.unfollow(ConnId(publisher), from16);
            }
            Some(ShardMsg::Gone { publisher }) => {
                for sub in self.subscriptions.drop_publisher(ConnId(publisher)) {
                    self.unreachable(sub, publisher, s);
                }
            }
            Some(ShardMsg::Publish {
                publisher,
                delivered,
            }) => {
                self.stats.fanout_shard_received += 1;
                if self.subscriptions.subscribers(ConnId(publisher)).is_empty() {
                    self.stats.fanout_shard_orphaned += 1;
                    self.left(ConnId(publisher), s);
                    return;
                }
                self.scratch.clear();
                self.scratch.extend_from_slice(delivered);
                self.copy_to_subscribers(ConnId(publisher), s);
            }
            None => self.stats.malformed += 1,
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
            ("relay_subscribed", s.subscribed),
            ("relay_published", s.published),
            ("relay_fanned_out", s.fanned_out),
            ("relay_fanout_dropped", s.fanout_dropped),
            ("relay_fanout_shard_sent", s.fanout_shard_sent),
            ("relay_fanout_shard_full", s.fanout_shard_full),
            ("relay_fanout_shard_closed", s.fanout_shard_closed),
            ("relay_fanout_shard_received", s.fanout_shard_received),
            ("relay_fanout_shard_orphaned", s.fanout_shard_orphaned),
            ("relay_subscribe_lost", s.subscribe_lost),
        ]);
    }
}
