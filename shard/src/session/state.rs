//! Per-connection state: what an endpoint keeps for each session between datagrams.
//!
//! The struct is kept small because an endpoint holds many idle sessions: the data queue is a
//! `VecDeque` that allocates on first use and is released again once drained, the replay
//! window keeps its two newest 64-bit blocks inline and boxes the whole 1,024-bit bitmap only
//! while a packet number of its older blocks is missing, the keys are 32 bytes per direction
//! (no boxed cipher), the previous receiving key is boxed (it exists only briefly after a
//! peer's rekey), the flight recorder's drop and failure counters are boxed on first use, the
//! RTT is kept in microseconds and the pending Ping's number without an `Option` tag, and
//! counters are `u32` where they cannot wrap in practice (336 bytes, so a boxed session is one
//! 352-byte malloc chunk: `docs/DECISIONS.md` D46, D56). `tests/session_memory.rs` reports
//! and bounds the bytes per idle session.
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use super::config::EndpointConfig;
use super::crypto::{Key, MAC_LEN};
use super::identity::PublicKey;
use super::replay::ReplayWindow;
use super::stats::{Recorder, SessionState, SessionStats};
use super::time::{Timestamp, nanos};

/// Which side of the handshake this endpoint played.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// We sent the Initiation.
    Client,
    /// We answered an Initiation.
    Server,
}

/// Initiator handshake progress.
pub(crate) struct Handshake {
    pub started: Timestamp,
    pub rto_nanos: u64,
    pub next_retransmit: Timestamp,
    /// The attempt number of the latest Initiation (its packet number field). A Response or
    /// CookieReply must echo it: answers to older attempts are dropped.
    pub attempt: u64,
    /// The responder's static key (Noise mode).
    pub remote: Option<PublicKey>,
    /// snow's state of the latest attempt (Noise mode).
    pub noise: Option<snow::HandshakeState>,
    /// mac1 of the latest Initiation: the associated data of a CookieReply answering it.
    pub last_mac1: [u8; MAC_LEN],
    /// The latest cookie and when it arrived (used for mac2 while younger than the rotation).
    pub cookie: Option<([u8; MAC_LEN], Timestamp)>,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("attempt", &self.attempt)
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub(crate) enum Phase {
    /// Boxed: only initiators handshake, briefly, and an established session should not carry
    /// the handshake state for the rest of its life.
    Handshaking(Box<Handshake>),
    /// Responder: Response sent; transport messages may not be sent until the initiator's
    /// first authenticated datagram confirms the keys. Expires `handshake_timeout` after
    /// `last_recv` (the latest Initiation).
    Unconfirmed,
    Established,
}

/// The previous receiving key, kept for the peer's in-flight datagrams after its rekey.
#[derive(Debug)]
pub(crate) struct PreviousKey {
    pub key: Key,
    /// When it is dropped (and so wiped).
    pub until: Timestamp,
}

/// A Noise session's transport keys and their rotation (`docs/PROTOCOL.md` §8).
#[derive(Debug)]
pub(crate) struct Keys {
    pub send: Key,
    pub recv: Key,
    /// The peer's previous receiving key, briefly after it rekeyed (boxed: rare).
    pub prev: Option<Box<PreviousKey>>,
    /// Datagrams sent under `send` (a rekey comes long before it could wrap: the threshold
    /// is clamped to `u32::MAX`).
    pub sent_under_key: u32,
    /// When `send` came into use.
    pub send_since: Timestamp,
    /// The first packet number received under `recv` (older ones with the other phase are
    /// the previous key's).
    pub recv_first_pn: u64,
    pub send_phase: bool,
    pub recv_phase: bool,
    /// The peer's static public key.
    pub peer_key: PublicKey,
}

/// A session's outbound Data: one pointer while idle (the deque is boxed and allocated on
/// first use, and released again by the session's timers once drained). The box costs an
/// allocation per burst and saves 24 bytes in every idle session.
#[derive(Debug, Default)]
#[allow(clippy::box_collection)] // on purpose: 8 bytes idle instead of a 32-byte VecDeque
pub(crate) struct DataQueue(Option<Box<VecDeque<Vec<u8>>>>);

impl DataQueue {
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn front(&self) -> Option<&Vec<u8>> {
        self.0.as_ref()?.front()
    }

    pub fn push_back(&mut self, bytes: Vec<u8>) {
        self.0.get_or_insert_with(Box::default).push_back(bytes);
    }

    pub fn pop_front(&mut self) -> Option<Vec<u8>> {
        self.0.as_mut()?.pop_front()
    }

    /// Frees the deque's memory if it holds nothing.
    pub fn release_if_empty(&mut self) {
        if self.is_empty() {
            self.0 = None;
        }
    }
}

/// Smoothed RTT (RFC 6298 weights), in microseconds (`u32`: up to 71 minutes, saturating);
/// zero means "no sample yet". Microseconds rather than nanoseconds keep it 8 bytes per session.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Rtt {
    srtt: u32,
    rttvar: u32,
}

impl Rtt {
    pub fn sample(&mut self, r: Duration) {
        let r = u32::try_from(r.as_micros()).unwrap_or(u32::MAX).max(1);
        if self.srtt == 0 {
            self.srtt = r;
            self.rttvar = r / 2;
        } else {
            let diff = self.srtt.abs_diff(r);
            self.rttvar = self.rttvar - self.rttvar / 4 + diff / 4;
            self.srtt = self.srtt - self.srtt / 8 + r / 8;
        }
    }

    /// The smoothed RTT (`None`: no sample yet).
    pub fn srtt(&self) -> Option<Duration> {
        (self.srtt > 0).then(|| Duration::from_micros(u64::from(self.srtt)))
    }
}

/// The packet number of the keepalive Ping awaiting its Pong, if any: 8 bytes where an
/// `Option<u64>` takes 16 (a packet number never reaches `u64::MAX`: they start at 0 and
/// count datagrams).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PendingPing(u64);

impl PendingPing {
    pub const NONE: PendingPing = PendingPing(u64::MAX);

    pub fn new(pn: u64) -> Self {
        PendingPing(pn)
    }

    /// Whether `echo` answers the pending Ping.
    pub fn answered_by(self, echo: u64) -> bool {
        self != Self::NONE && self.0 == echo
    }
}

/// One session.
#[derive(Debug)]
pub(crate) struct Session {
    pub peer: SocketAddr,
    /// The ID the peer chose; our `dst` when sending. Zero while a client handshakes.
    pub peer_conn_id: u64,
    pub role: Role,
    pub phase: Phase,
    /// Noise mode: the transport keys (`None` while an initiator handshakes, and in plaintext
    /// mode).
    pub keys: Option<Keys>,
    /// Initiator: an authenticated datagram from the responder has arrived since the Response
    /// (until then the initiator repeats a Ping so the responder can confirm).
    pub heard_peer: bool,
    /// Next packet number to send.
    pub next_pn: u64,
    pub replay: ReplayWindow,
    /// Outbound Data payloads, oldest first. Bounded by `data_queue_capacity`.
    pub queue: DataQueue,
    /// Whether this session is in the endpoint's round-robin list.
    pub in_ready: bool,
    /// The earliest deadline this session has in the endpoint's timer heap, or while it is in
    /// its handshake its one entry in the endpoint's handshake timers (`NEVER`: none).
    pub scheduled: Timestamp,
    pub last_recv: Timestamp,
    pub last_ping_sent: Timestamp,
    /// The packet number of the Ping awaiting its Pong (sent at `last_ping_sent`).
    pub outstanding_ping: PendingPing,
    /// This session's timer jitter, a fraction of 2^16 drawn from the endpoint's seeded
    /// generator when the session is created: sessions opened together spread their keepalives
    /// and idle timeouts instead of firing in one turn, and a seed fixes every deadline.
    pub jitter: u16,
    pub rtt: Rtt,
    pub rec: Recorder,
}

impl Session {
    pub fn new(
        peer: SocketAddr,
        peer_conn_id: u64,
        role: Role,
        phase: Phase,
        now: Timestamp,
        jitter: u16,
    ) -> Self {
        Session {
            peer,
            peer_conn_id,
            role,
            phase,
            keys: None,
            heard_peer: false,
            next_pn: 0,
            replay: ReplayWindow::default(),
            queue: DataQueue::default(),
            in_ready: false,
            scheduled: Timestamp::NEVER,
            last_recv: now,
            last_ping_sent: now,
            outstanding_ping: PendingPing::NONE,
            jitter,
            rtt: Rtt::default(),
            rec: Recorder::default(),
        }
    }

    /// Takes the next packet number. Packet numbers are u64: they do not wrap in practice.
    pub fn take_pn(&mut self) -> u64 {
        let pn = self.next_pn;
        self.next_pn = self.next_pn.saturating_add(1);
        pn
    }

    pub fn is_established(&self) -> bool {
        matches!(self.phase, Phase::Established)
    }

    /// Whether the session is still in its handshake: an initiator until it has heard from the
    /// responder after the Response (it repeats its confirming Ping meanwhile), a responder
    /// until the initiator confirms. Its deadline is then in the endpoint's exact handshake
    /// timers, not the timer heap.
    pub fn in_handshake(&self) -> bool {
        !self.is_established() || (self.role == Role::Client && !self.heard_peer)
    }

    /// Whether the application knows this session (so its end is reported): an initiator's
    /// from `connect`, a responder's once confirmed.
    pub fn announced(&self) -> bool {
        self.role == Role::Client || self.is_established()
    }

    /// When this session next needs `handle_timeout`.
    pub fn next_deadline(&self, cfg: &EndpointConfig) -> Timestamp {
        match &self.phase {
            Phase::Handshaking(h) => h
                .next_retransmit
                .min(h.started.saturating_add(cfg.handshake_timeout)),
            Phase::Unconfirmed => self.last_recv.saturating_add(cfg.handshake_timeout),
            Phase::Established => {
                let idle = self.idle_due(cfg);
                let mut d = self.keepalive_due(cfg).map_or(idle, |k| idle.min(k));
                if let Some(c) = self.confirm_ping_due(cfg) {
                    d = d.min(c);
                }
                if let Some(p) = self.keys.as_ref().and_then(|k| k.prev.as_ref()) {
                    d = d.min(p.until);
                }
                d
            }
        }
    }

    /// Initiator, before the responder has been heard from: when to repeat the confirming
    /// Ping (every `handshake_initial_rto`, for `handshake_timeout` after the Response).
    pub fn confirm_ping_due(&self, cfg: &EndpointConfig) -> Option<Timestamp> {
        if self.role != Role::Client || self.heard_peer {
            return None;
        }
        let due = self
            .last_ping_sent
            .saturating_add(cfg.handshake_initial_rto);
        (due < self.last_recv.saturating_add(cfg.handshake_timeout)).then_some(due)
    }

    /// `d` scaled by this session's jitter fraction and `1 / 2^shift`.
    fn jittered(&self, d: Duration, shift: u32) -> Duration {
        let n = (u128::from(nanos(d)) * u128::from(self.jitter)) >> (16 + shift);
        Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX))
    }

    /// When an established session is closed for idleness: `idle_timeout` after the last
    /// datagram accepted, plus up to 1/16 of it (this session's jitter). Later, never earlier:
    /// a session is never closed before the configured timeout.
    pub fn idle_due(&self, cfg: &EndpointConfig) -> Timestamp {
        self.last_recv
            .saturating_add(cfg.idle_timeout)
            .saturating_add(self.jittered(cfg.idle_timeout, 4))
    }

    /// When an established session sends its next keepalive Ping (`None`: keepalive off):
    /// `keepalive_interval` after the later of the last datagram accepted and the last Ping,
    /// minus up to 1/8 of it (this session's jitter). Earlier, never later, so the peer hears
    /// from us at least as often as configured.
    pub fn keepalive_due(&self, cfg: &EndpointConfig) -> Option<Timestamp> {
        // A zero interval would make the deadline "now" forever: clamp to 1 ms.
        let k = cfg.keepalive_interval?.max(Duration::from_millis(1));
        Some(
            self.last_recv
                .max(self.last_ping_sent)
                .saturating_add(k - self.jittered(k, 3)),
        )
    }

    /// Pushes a Data payload, tracking the high-water mark.
    pub fn enqueue(&mut self, bytes: Vec<u8>) {
        self.queue.push_back(bytes);
        let depth = u32::try_from(self.queue.len()).unwrap_or(u32::MAX);
        self.rec.queue_high_water = self.rec.queue_high_water.max(depth);
    }

    /// Pops the oldest Data payload.
    pub fn dequeue(&mut self) -> Option<Vec<u8>> {
        self.queue.pop_front()
    }

    /// Releases an empty queue's buffer. Called from the session's timers (not on every drain,
    /// which would allocate and free once per message), so a session that went quiet returns
    /// to its small footprint within one keepalive interval.
    pub fn release_idle_queue(&mut self) {
        self.queue.release_if_empty();
    }

    pub fn stats(&self) -> SessionStats {
        SessionStats {
            state: match self.phase {
                Phase::Handshaking(_) => SessionState::Handshaking,
                Phase::Unconfirmed => SessionState::Unconfirmed,
                Phase::Established => SessionState::Established,
            },
            peer: self.peer,
            peer_key: self.keys.as_ref().map(|k| k.peer_key),
            datagrams_in: self.rec.datagrams_in,
            bytes_in: self.rec.bytes_in,
            datagrams_out: self.rec.datagrams_out,
            bytes_out: self.rec.bytes_out,
            queue_depth: u32::try_from(self.queue.len()).unwrap_or(u32::MAX),
            queue_high_water: self.rec.queue_high_water,
            drops: self.rec.drops(),
            last_recv: (self.rec.datagrams_in > 0).then_some(self.last_recv),
            unanswered_pings: u32::from(self.rec.unanswered_pings),
            srtt: self.rtt.srtt(),
            sends_confirmed: self
                .rec
                .datagrams_out
                .saturating_sub(u64::from(self.rec.sends_failed())),
            sends_failed: self.rec.sends_failed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An idle session's queue is one null pointer: allocated on first use, freed once empty.
    #[test]
    fn data_queue_is_released_when_empty() {
        let mut q = DataQueue::default();
        assert!(q.0.is_none());
        q.push_back(vec![1]);
        q.push_back(vec![2]);
        q.release_if_empty();
        assert_eq!(q.len(), 2, "not released while holding data");
        assert_eq!(q.pop_front(), Some(vec![1]));
        assert_eq!(q.front(), Some(&vec![2]));
        assert_eq!(q.pop_front(), Some(vec![2]));
        q.release_if_empty();
        assert!(q.0.is_none());
        assert_eq!(std::mem::size_of::<DataQueue>(), 8);
    }

    /// Only the pending Ping's own number answers it, and nothing answers none.
    #[test]
    fn pending_ping_matches_its_number_only() {
        assert!(!PendingPing::NONE.answered_by(u64::MAX));
        assert!(!PendingPing::NONE.answered_by(0));
        let p = PendingPing::new(7);
        assert!(p.answered_by(7));
        assert!(!p.answered_by(8));
        assert_eq!(std::mem::size_of::<PendingPing>(), 8);
    }

    /// RTT samples are kept in microseconds: the first sets it, later ones move it by 1/8.
    #[test]
    fn rtt_in_microseconds() {
        let mut r = Rtt::default();
        assert_eq!(r.srtt(), None);
        r.sample(Duration::from_micros(800));
        assert_eq!(r.srtt(), Some(Duration::from_micros(800)));
        r.sample(Duration::from_micros(1600));
        assert_eq!(r.srtt(), Some(Duration::from_micros(900)));
        r.sample(Duration::from_nanos(10));
        assert!(r.srtt().is_some_and(|d| d > Duration::ZERO));
    }
}
