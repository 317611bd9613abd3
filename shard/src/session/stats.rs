//! The flight recorder: what each session and the endpoint saw, for diagnostics.
//!
//! These counters answer the questions the seeds could not: how deep is this peer's queue, what
//! did we drop and why, when did we last hear from it, did a send fail (its io_uring completion
//! reported an error, or no send slot took it).
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::time::Duration;

use super::drop_reason::{DropCounters, DropReason, SessionDrops};
use super::identity::PublicKey;
use super::time::Timestamp;

/// Where a session is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SessionState {
    /// Initiator: Initiation sent, waiting for the Response (or a CookieReply).
    Handshaking,
    /// Responder: Response sent, waiting for the initiator's first authenticated datagram.
    Unconfirmed,
    /// Handshake done; Data flows.
    Established,
}

/// Counters kept inside each session (part of its idle footprint, so kept compact: what
/// most sessions never count, drops and failed sends, is boxed on first use).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Recorder {
    pub datagrams_in: u64,
    pub bytes_in: u64,
    pub datagrams_out: u64,
    pub bytes_out: u64,
    pub queue_high_water: u32,
    /// `u16`, saturating (a Ping every 10 s for 7 days).
    pub unanswered_pings: u16,
    rare: Option<Box<Rare>>,
}

/// The counters of things that go wrong, allocated with the first of them: an idle healthy
/// session carries 8 bytes for them instead of 44.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Rare {
    drops: SessionDrops,
    sends_failed: u32,
}

impl Recorder {
    /// Counts a datagram of this session dropped for `reason` (reasons no session owns are
    /// ignored).
    pub fn bump_drop(&mut self, reason: DropReason) {
        if reason.session_slot().is_some() {
            self.rare
                .get_or_insert_with(Box::default)
                .drops
                .bump(reason);
        }
    }

    /// Counts a send whose completion reported an error.
    pub fn count_send_failed(&mut self) {
        let rare = self.rare.get_or_insert_with(Box::default);
        rare.sends_failed = rare.sends_failed.saturating_add(1);
    }

    /// The drop counters, by reason.
    pub fn drops(&self) -> DropCounters<u32> {
        self.rare
            .as_ref()
            .map(|r| r.drops.expand())
            .unwrap_or_default()
    }

    /// Sends whose completion reported an error.
    pub fn sends_failed(&self) -> u32 {
        self.rare.as_ref().map_or(0, |r| r.sends_failed)
    }
}

/// A copy of one session's flight recorder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionStats {
    /// Handshaking or established.
    pub state: SessionState,
    /// The peer's address.
    pub peer: SocketAddr,
    /// The peer's static public key (Noise mode, once the handshake has authenticated it).
    pub peer_key: Option<PublicKey>,
    /// Datagrams accepted from the peer.
    pub datagrams_in: u64,
    /// Bytes of those datagrams.
    pub bytes_in: u64,
    /// Datagrams handed to the driver for this session.
    pub datagrams_out: u64,
    /// Bytes of those datagrams.
    pub bytes_out: u64,
    /// Data messages queued now.
    pub queue_depth: u32,
    /// The most data messages ever queued at once.
    pub queue_high_water: u32,
    /// Datagrams naming this session that were dropped, by reason.
    pub drops: DropCounters<u32>,
    /// When a datagram from the peer was last accepted (`None`: never).
    pub last_recv: Option<Timestamp>,
    /// Pings sent since the last Pong.
    pub unanswered_pings: u32,
    /// Smoothed RTT from Ping/Pong samples (`None`: no sample yet).
    pub srtt: Option<Duration>,
    /// Datagrams handed to the driver whose send was not reported failed: `datagrams_out -
    /// sends_failed`. A successful completion touches no session (`Endpoint::on_send_completed`
    /// looks a session up only for a failure, `docs/DECISIONS.md` D84), so a send still in
    /// flight counts here until its completion says otherwise.
    pub sends_confirmed: u64,
    /// Sends whose completion reported an error.
    pub sends_failed: u32,
}

/// Endpoint-wide counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Live sessions.
    pub sessions: usize,
    /// Every dropped datagram, by reason (session-attributed drops included).
    pub drops: DropCounters<u64>,
    /// Datagrams handed to `handle_datagram`.
    pub datagrams_in: u64,
    /// Datagrams returned by `poll_transmit`.
    pub datagrams_out: u64,
    /// CookieReplies queued (Initiations answered "under load" without Diffie-Hellman work).
    pub cookies_sent: u64,
    /// Responder sessions confirmed by the initiator's first authenticated datagram.
    pub sessions_accepted: u64,
    /// Responses sent (new sessions and answers to retransmitted Initiations).
    pub handshakes_completed: u64,
    /// Initiations sent (first attempts and retransmissions).
    pub initiations_sent: u64,
    /// X25519 operations performed (key generation and Diffie-Hellman), counted per
    /// handshake step as `handshake::dh_cost` lists them. Zero for anything without mac1.
    pub dh_operations: u64,
    /// Stateless Resets queued for datagrams naming no session.
    pub resets_sent: u64,
    /// Resets not sent because of their rate limit (the datagram is still counted as
    /// `UnknownConnection`).
    pub resets_suppressed: u64,
    /// Sending-key rotations (rekeys) performed.
    pub key_updates: u64,
    /// Receiving-key rotations followed (the peer's rekeys).
    pub key_updates_received: u64,
    /// Initiations waiting for their Diffie-Hellman work now.
    pub handshake_queue_depth: usize,
    /// Responder sessions not yet confirmed, now.
    pub unconfirmed: usize,
    /// Initiation replay-table entries, now.
    pub replay_entries: usize,
    /// Datagrams this shard said belonged to another shard.
    pub forwarded: u64,
    /// Session control frames (Pong, Ping, Close, Response, Initiation) lost to a full control queue.
    pub control_dropped: u64,
    /// Times `handle_timeout` returned with timers still due (its per-call bound reached, or
    /// the control queue at the timers' share); they ran on a later call, none was dropped.
    pub timers_deferred: u64,
    /// Control frames pending now.
    pub control_queue_depth: usize,
    /// Events pending now.
    pub event_queue_depth: usize,
    /// `Refused` replies queued to Initiations admission refused (at most one per refused
    /// Initiation, rate-limited).
    pub refused_sent: u64,
    /// Authentic `Refused` replies received (initiator): a refusal time cures (pending
    /// handshakes, the source's rate) leaves the handshake retransmitting; others end it.
    pub refused_received: u64,
    /// Data messages dropped from queues the memory budget shed (largest queues first).
    pub shed_messages: u64,
    /// Load reports of the count exchange dropped because the host did not take them in time
    /// (the peers then count this shard at its cap for a round: fail-closed).
    pub load_reports_lost: u64,
}
