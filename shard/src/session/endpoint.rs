//! The endpoint: one shard's table of sessions and the whole sans-IO surface the driver calls.
//!
//! ```text
//!            driver (io_uring, another branch)
//!   recv ──► handle_datagram(now, from, bytes) ──► Handled::{Consumed, OtherShard(k), Dropped(r)}
//!   timer ─► handle_timeout(now)  (timers, then at most `handshakes_per_turn` queued
//!            Initiations' Diffie-Hellman work)       poll_timeout() ──► next deadline
//!   app ───► connect / send / close                  poll_event()   ──► Connected / Message / Disconnected
//!   send ◄── poll_transmit(now, buf)  (control frames first, then Data round-robin)
//!   cqe ───► on_send_completed(conn, ok)
//! ```
//!
//! Invariants:
//! - No locks, no clock, no sockets: a shard owns its endpoint and calls it from one thread.
//! - Every established session in `sessions` has at least one entry at or before its next
//!   deadline in `timers` (`Session::scheduled` is the earliest); stale heap entries are
//!   skipped on pop. Every session still in its handshake (`Session::in_handshake`: an
//!   initiator until it hears from the responder, a responder until confirmed) has exactly one
//!   entry in `handshake_timers`, at its next deadline (`Session::scheduled`), taken out when
//!   the handshake ends or the session is freed: no handshake deadline outlives its handshake.
//! - A due timer is never dropped: `handle_timeout` takes at most `timer_batch` heap entries
//!   per call and runs a session's timer only while the control queue has room for the frame
//!   it may queue; what it leaves stays due in the heap for the next call.
//! - A session is in `ready` at most once (`Session::in_ready`), and only while established
//!   with Data queued; entries for freed sessions are skipped.
//! - `by_peer` maps `(peer, peer conn ID)` to every established initiator session and every
//!   plaintext-mode responder session; Noise responder sessions are found through the
//!   initiation replay table (by initiator key and connection ID) instead.
//! - `unconfirmed` counts the sessions in `Phase::Unconfirmed`.
//! - No Diffie-Hellman operation happens for a datagram without a valid mac1, and none inside
//!   `handle_datagram` on the responder side: Initiations wait in `handshakes` for
//!   `handle_timeout`, which takes at most `handshakes_per_turn` of them.
//! - Every session ends with exactly one `Event::Disconnected`, and is then forgotten.
//! - Behaviour never depends on `HashMap` iteration order, so a seed fixes the event trace.
#![forbid(unsafe_code)]

mod connmgr;
mod handshakes;
mod inbound;
mod timers;

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};

use crate::id_hash::IdMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::admission::{AdmissionController, AdmissionError, LoadReport};
use super::bucket::TokenBucket;
use super::config::{EndpointConfig, Security};
use super::conn_id::{ConnId, ConnIdGen, MAX_SHARDS};
use super::control::{ControlQueue, Priority};
use super::cookie::{self, CookieJar};
use super::crypto::{self, Key, MAC_LEN};
use super::drop_reason::DropReason;
use super::event::{CloseReason, Closer, ConnectError, Event, SendOutcome, Transmit};
use super::handshake::{self, InitiationParams, dh_cost};
use super::identity::PublicKey;
use super::initiations::InitiationTable;
use super::manager::{ConnManager, ManagerConfigError};
use super::state::{Handshake, Phase, Role, Session};
use super::stats::{EndpointStats, SessionStats};
use super::time::{Timestamp, nanos};
use super::wire::{self, INITIATION_LEN, Message, field};

/// Label of the reset-token key derivation.
pub const LABEL_RESET: &[u8] = b"ringwire v2 reset";

/// An Initiation with a valid mac1, waiting for its Diffie-Hellman work.
#[derive(Debug)]
struct QueuedInitiation {
    from: SocketAddr,
    at: Timestamp,
    bytes: Box<[u8; INITIATION_LEN]>,
}

/// The application's say on an authenticated initiator: `true` admits it.
pub type Admit<'a> = dyn FnMut(&PublicKey, SocketAddr) -> bool + 'a;

/// Why `Endpoint::new` refused its arguments.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// `n_shards` must be in `1..=256` (the shard index is one byte of the connection ID).
    #[error("n_shards {0} not in 1..=256")]
    ShardCount(u16),
    /// `shard_index` must be below `n_shards`.
    #[error("shard index {index} not below n_shards {n_shards}")]
    ShardIndex {
        /// The index given.
        index: u16,
        /// The shard count given.
        n_shards: u16,
    },
    /// The admission settings are out of range.
    #[error(transparent)]
    Admission(#[from] AdmissionError),
    /// The connection-manager settings are out of range.
    #[error(transparent)]
    Manager(#[from] ManagerConfigError),
}

/// What `Endpoint::close` did.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseOutcome {
    /// The session was freed; a Close was queued to the peer if the handshake had completed.
    Closed,
    /// No such session.
    UnknownConnection,
}

/// Every live session at one moment, for diagnostics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Endpoint-wide counters.
    pub endpoint: EndpointStats,
    /// Each session's flight recorder, sorted by connection ID.
    pub sessions: Vec<(ConnId, SessionStats)>,
}

/// One shard's sans-IO protocol endpoint.
#[derive(Debug)]
pub struct Endpoint {
    cfg: EndpointConfig,
    shard: u16,
    n_shards: u16,
    ids: ConnIdGen,
    cookies: CookieJar,
    /// mac1 key of messages addressed to us (`HASH(label || our public key)`; all-zero key
    /// in plaintext mode).
    mac1_key: [u8; 32],
    /// Key that seals our CookieReplies.
    cookie_seal_key: [u8; 32],
    /// Key of our reset tokens (`HASH("ringwire v2 reset" || private key)`), Noise only.
    reset_key: Option<Key>,
    /// Initiations with a valid mac1 waiting for Diffie-Hellman work (bounded).
    handshakes: VecDeque<QueuedInitiation>,
    initiations: InitiationTable,
    /// Sessions in `Phase::Unconfirmed`.
    unconfirmed: usize,
    handshake_rate: TokenBucket,
    cookie_rate: TokenBucket,
    reset_rate: TokenBucket,
    /// Decryption scratch (one datagram).
    scratch: Vec<u8>,
    /// Boxed: a table slot is 16 bytes instead of the session's size, so the table's slack
    /// (up to half its slots after a resize) costs little and a resize moves no sessions.
    /// Keyed by our own connection IDs (drawn from the keyed generator, never a peer's
    /// choice): hashed with one multiply (`crate::id_hash`, D84), where a peer that names an
    /// ID it made up only looks up a missing key.
    sessions: IdMap<ConnId, Box<Session>>,
    /// Keyed by the peer's address and the peer's own connection ID, both its choice: the
    /// keyed default hasher (`docs/SECURITY.md`, "Hash tables").
    by_peer: HashMap<(SocketAddr, u64), ConnId>,
    /// Initiator sessions (Noise): the reset token of the responder's connection ID, from
    /// the Response, by our connection ID. Here rather than in the session, so responder
    /// sessions do not carry it.
    reset_tokens: IdMap<ConnId, [u8; MAC_LEN]>,
    control: ControlQueue,
    ready: VecDeque<ConnId>,
    events: VecDeque<Event>,
    /// `Event::Message`s in `events` (only they count against `event_queue_capacity`).
    pending_messages: usize,
    /// Established sessions' deadlines, lazily: an entry stays when its session's deadline
    /// moves later (it fires and re-arms), so receiving a datagram never touches the heap.
    timers: BinaryHeap<Reverse<(Timestamp, ConnId)>>,
    /// Deadlines of sessions in their handshake, exactly (one entry each, moved when the
    /// deadline moves, removed when the handshake ends or the session is freed): a confirmed
    /// session's handshake deadline never fires (`docs/DECISIONS.md` D79). Small: only
    /// sessions in a handshake are here.
    handshake_timers: BTreeSet<(Timestamp, ConnId)>,
    /// Admission control (`EndpointConfig::admission`).
    admission: Option<AdmissionController>,
    /// The connection manager (`EndpointConfig::manager`).
    manager: Option<ConnManager>,
    /// Load reports of the count exchange waiting for the host (`poll_load_report`).
    reports_out: VecDeque<LoadReport>,
    stats: EndpointStats,
}

impl Endpoint {
    /// An endpoint for shard `shard_index` of `n_shards`. `rng_seed` keys the endpoint's
    /// generator (connection IDs, handshake ephemeral keys, cookie nonces): 32 bytes from the
    /// OS RNG in production, or [`ConnIdGen::seed_from_u64`] in tests. `now` starts the cookie
    /// secret epochs and the rate limits.
    pub fn new(
        mut config: EndpointConfig,
        shard_index: u16,
        n_shards: u16,
        rng_seed: [u8; 32],
        now: Timestamp,
    ) -> Result<Self, EndpointError> {
        if n_shards == 0 || n_shards > MAX_SHARDS {
            return Err(EndpointError::ShardCount(n_shards));
        }
        if shard_index >= n_shards {
            return Err(EndpointError::ShardIndex {
                index: shard_index,
                n_shards,
            });
        }
        let admission = match config.admission.clone() {
            Some(a) => {
                // Admission alone decides how many sessions and pending handshakes there are.
                config.max_sessions = a.max_sessions_shard;
                config.max_unconfirmed = config.max_unconfirmed.max(a.max_pending_handshakes);
                Some(AdmissionController::new(a, shard_index, n_shards, now)?)
            }
            None => None,
        };
        let manager = match config.manager.clone() {
            Some(m) => Some(ConnManager::new(m, config.max_sessions)?),
            None => None,
        };
        let public = config.public_key().map_or([0; 32], |k| *k.as_bytes());
        let reset_key = match &config.security {
            Security::Noise(n) => Some(Key(crypto::hash(&[
                LABEL_RESET,
                n.identity.private.as_bytes(),
            ]))),
            Security::None => None,
        };
        let mut ids = ConnIdGen::new(rng_seed, shard_index);
        let mut table_key = [0u8; 32];
        for chunk in table_key.chunks_mut(8) {
            chunk.copy_from_slice(&ids.next_u64().to_be_bytes());
        }
        Ok(Endpoint {
            cookies: CookieJar::new(config.cookie_key, config.cookie_rotation, now),
            mac1_key: cookie::mac1_key(&public),
            cookie_seal_key: cookie::cookie_seal_key(&public),
            reset_key,
            handshakes: VecDeque::new(),
            initiations: InitiationTable::new(
                // Every live session has an entry: never fewer slots than sessions.
                config.replay_table_capacity.max(config.max_sessions),
                nanos(config.initiation_replay_window),
                nanos(config.unix_time_at_origin),
                table_key,
            ),
            unconfirmed: 0,
            handshake_rate: TokenBucket::new(
                config.handshakes_per_second,
                config.handshakes_per_second,
                now,
            ),
            cookie_rate: TokenBucket::new(
                config.cookie_replies_per_second.max(1),
                config.cookie_replies_per_second.max(1),
                now,
            ),
            reset_rate: TokenBucket::new(
                config.resets_per_second.max(1),
                config.resets_per_second.max(1),
                now,
            ),
            scratch: vec![0u8; config.max_datagram()],
            control: ControlQueue::new(config.control_queue_capacity),
            cfg: config,
            shard: shard_index,
            n_shards,
            ids,
            sessions: IdMap::default(),
            by_peer: HashMap::new(),
            reset_tokens: IdMap::default(),
            ready: VecDeque::new(),
            events: VecDeque::new(),
            pending_messages: 0,
            timers: BinaryHeap::new(),
            handshake_timers: BTreeSet::new(),
            admission,
            manager,
            reports_out: VecDeque::new(),
            stats: EndpointStats::default(),
        })
    }

    /// This endpoint's shard index.
    #[must_use]
    pub fn shard(&self) -> u16 {
        self.shard
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &EndpointConfig {
        &self.cfg
    }

    /// Live sessions (handshaking ones included).
    #[must_use]
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Opens a session to `addr`: queues an Initiation and starts the handshake timers. In
    /// Noise mode `server_key` (the responder's static public key) is required; in plaintext
    /// mode it is ignored. The session is owned by this shard (its ID encodes
    /// [`Endpoint::shard`]); `Event::Connected` follows on the Response, or
    /// `Event::Disconnected` with `HandshakeTimeout`.
    pub fn connect(
        &mut self,
        now: Timestamp,
        addr: SocketAddr,
        server_key: Option<PublicKey>,
    ) -> Result<ConnId, ConnectError> {
        if self.sessions.len() >= self.cfg.max_sessions {
            return Err(ConnectError::SessionLimit);
        }
        if !self.control.has_room() {
            return Err(ConnectError::ControlQueueFull);
        }
        let remote = match (&self.cfg.security, server_key) {
            (Security::Noise(_), None) => return Err(ConnectError::NoServerKey),
            (Security::Noise(_), key) => key,
            (Security::None, _) => None,
        };
        self.admit_outbound(now)?;
        let cid = self.fresh_conn_id();
        let jitter = self.draw_jitter();
        let rto = nanos(self.cfg.handshake_initial_rto).max(1);
        let hs = Handshake {
            started: now,
            rto_nanos: rto,
            next_retransmit: Timestamp(now.0.saturating_add(rto)),
            attempt: 0,
            remote,
            noise: None,
            last_mac1: [0; MAC_LEN],
            cookie: None,
        };
        self.sessions.insert(
            cid,
            Box::new(Session::new(
                addr,
                0,
                Role::Client,
                Phase::Handshaking(Box::new(hs)),
                now,
                jitter,
            )),
        );
        if !self.send_initiation(now, cid, true) {
            if let Some(s) = self.sessions.remove(&cid) {
                self.session_freed(now, cid, &s);
            }
            return Err(ConnectError::Handshake);
        }
        self.reschedule(cid);
        Ok(cid)
    }

    /// Queues one application datagram. It leaves on a later `poll_transmit`, after every
    /// pending control frame, in round-robin turn with other sessions.
    pub fn send(&mut self, _now: Timestamp, conn: ConnId, bytes: &[u8]) -> SendOutcome {
        self.send_with(conn, bytes.len(), || bytes.to_vec())
    }

    /// [`Endpoint::send`] of a payload of `len` bytes that `payload` yields, called only once
    /// the payload is queued: a host queues a payload it owns already (one relayed from another
    /// shard) without copying it again, and keeps it when it is refused.
    pub(crate) fn send_with(
        &mut self,
        conn: ConnId,
        len: usize,
        payload: impl FnOnce() -> Vec<u8>,
    ) -> SendOutcome {
        if len > self.cfg.max_payload {
            return SendOutcome::TooLarge;
        }
        let Some(s) = self.sessions.get_mut(&conn) else {
            return SendOutcome::UnknownConnection;
        };
        if s.queue.len() >= self.cfg.data_queue_capacity {
            return SendOutcome::Full;
        }
        if let Some(adm) = self.admission.as_mut()
            && !adm.budget_mut().try_queue(conn, len)
        {
            // Over the shard's memory budget (counted there as `queue_refused`).
            return SendOutcome::Full;
        }
        s.enqueue(payload());
        if s.is_established() && !s.in_ready {
            s.in_ready = true;
            self.ready.push_back(conn);
        }
        SendOutcome::Queued
    }

    /// Writes `bytes` as `conn`'s next Data datagram straight into `buf` when nothing would
    /// leave before it anyway: no control frame pending, no session waiting in the round-robin
    /// list, nothing queued on `conn`, and `conn` established. The datagram is then exactly the
    /// one [`Endpoint::send`] followed by [`Endpoint::poll_transmit`] would write, without the
    /// payload's copy into the session's queue, the queue itself (so an echoing session never
    /// allocates one), the memory budget's charge and release, the round-robin list and the
    /// second session lookup: the only state touched is the session's own (`docs/DECISIONS.md`
    /// D73). `None`: nothing written (any of those conditions, or `buf` too small); the caller
    /// queues with [`Endpoint::send`] instead, which names every refusal. A driver calls it
    /// only when it has a free send slot for the result.
    pub fn send_direct(
        &mut self,
        now: Timestamp,
        conn: ConnId,
        bytes: &[u8],
        buf: &mut [u8],
    ) -> Option<Transmit> {
        if bytes.len() > self.cfg.max_payload || self.control.len() > 0 || !self.ready.is_empty() {
            return None;
        }
        let s = self.sessions.get_mut(&conn)?;
        if !s.is_established() || !s.queue.is_empty() {
            return None;
        }
        let t = seal_data(s, conn, &self.cfg, &mut self.stats, now, bytes, buf)?;
        // As if queued and sent at once: the queue held it alone.
        s.rec.queue_high_water = s.rec.queue_high_water.max(1);
        Some(t)
    }

    /// Closes a session: queues a Close to the peer (if established), frees the session at
    /// once and emits `Event::Disconnected { by: Closer::Local }`. Queued Data is discarded.
    pub fn close(&mut self, now: Timestamp, conn: ConnId, reason: CloseReason) -> CloseOutcome {
        if self.sessions.contains_key(&conn) {
            self.end_session(now, conn, reason, Closer::Local, true);
            CloseOutcome::Closed
        } else {
            CloseOutcome::UnknownConnection
        }
    }

    /// Closes every session (for shutdown): each queues a Close with `reason` if established
    /// and emits its `Disconnected`. In connection-ID order, so traces stay deterministic.
    pub fn close_all(&mut self, now: Timestamp, reason: CloseReason) {
        let mut conns: Vec<ConnId> = self.sessions.keys().copied().collect();
        conns.sort_unstable();
        for c in conns {
            self.end_session(now, c, reason, Closer::Local, true);
        }
    }

    /// Writes the next datagram to send into `buf` (which must hold
    /// [`EndpointConfig::max_datagram`] bytes; a smaller buffer gets `None` for Data that does
    /// not fit, and that Data waits). Control frames first, then one Data datagram from the
    /// next session in round-robin order.
    pub fn poll_transmit(&mut self, now: Timestamp, buf: &mut [u8]) -> Option<Transmit> {
        if let Some(f) = self.control.pop() {
            let len = usize::from(f.len);
            // A buffer too small even for control frames is a driver bug; the frame is lost
            // (counted) rather than blocking the queue forever.
            let Some(out) = buf.get_mut(..len) else {
                self.stats.control_dropped += 1;
                return None;
            };
            out.copy_from_slice(&f.bytes[..len]);
            if let Some(s) = f.conn.and_then(|c| self.sessions.get_mut(&c)) {
                s.rec.datagrams_out += 1;
                s.rec.bytes_out += len as u64;
            }
            self.stats.datagrams_out += 1;
            return Some(Transmit {
                dst: f.dst,
                len,
                conn: f.conn,
            });
        }
        while let Some(cid) = self.ready.pop_front() {
            let Some(s) = self.sessions.get_mut(&cid) else {
                continue;
            };
            s.in_ready = false;
            let Some(front) = s.queue.front() else {
                continue;
            };
            if buf.len() < wire::transport_len(front.len(), s.keys.is_some()) {
                s.in_ready = true;
                self.ready.push_front(cid);
                return None;
            }
            let payload = s.dequeue()?;
            if let Some(adm) = self.admission.as_mut() {
                adm.budget_mut().dequeued(cid, payload.len());
            }
            let t = seal_data(s, cid, &self.cfg, &mut self.stats, now, &payload, buf)?;
            if !s.queue.is_empty() {
                s.in_ready = true;
                self.ready.push_back(cid);
            }
            return Some(t);
        }
        None
    }

    /// The next application event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        let e = self.events.pop_front()?;
        if matches!(e, Event::Message { .. }) {
            self.pending_messages -= 1;
        }
        Some(e)
    }

    /// Records the completion of a send of `conn`'s datagram (the `conn` of a [`Transmit`]).
    /// A success changes nothing (the datagram was counted when it was written, and
    /// [`SessionStats::sends_confirmed`] is the sends not reported failed), so the common case
    /// costs no session lookup; a failure is counted in `conn`'s recorder. Unknown connections
    /// are ignored: the session may have closed meanwhile.
    pub fn on_send_completed(&mut self, conn: ConnId, ok: bool) {
        if ok {
            return;
        }
        if let Some(s) = self.sessions.get_mut(&conn) {
            s.rec.count_send_failed();
        }
    }

    /// One session's flight recorder.
    #[must_use]
    pub fn session_stats(&self, conn: ConnId) -> Option<SessionStats> {
        self.sessions.get(&conn).map(|s| s.stats())
    }

    /// Whether `conn` is a session here (handshaking ones included): one lookup, no snapshot.
    pub(crate) fn has_session(&self, conn: ConnId) -> bool {
        self.sessions.contains_key(&conn)
    }

    /// The Data messages queued for `conn` (`None`: no such session): one lookup, no snapshot.
    pub(crate) fn queue_depth(&self, conn: ConnId) -> Option<usize> {
        self.sessions.get(&conn).map(|s| s.queue.len())
    }

    /// Endpoint-wide counters.
    #[must_use]
    pub fn stats(&self) -> EndpointStats {
        EndpointStats {
            sessions: self.sessions.len(),
            control_queue_depth: self.control.len(),
            event_queue_depth: self.events.len(),
            handshake_queue_depth: self.handshakes.len(),
            unconfirmed: self.unconfirmed,
            replay_entries: self.initiations.len(),
            ..self.stats
        }
    }

    /// Every live session's connection ID, in no particular order. Reads only the table's
    /// keys: a pass over it touches no session.
    pub fn conn_ids(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.sessions.keys().copied()
    }

    /// Every session's flight recorder, sorted by ID (O(n log n): for diagnostics, not the
    /// data path).
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        let mut sessions: Vec<_> = self.sessions.iter().map(|(c, s)| (*c, s.stats())).collect();
        sessions.sort_unstable_by_key(|(c, _)| *c);
        Snapshot {
            endpoint: self.stats(),
            sessions,
        }
    }

    // ---- helpers shared by the submodules ----

    fn fresh_conn_id(&mut self) -> ConnId {
        loop {
            let c = self.ids.next_conn_id();
            if !self.sessions.contains_key(&c) {
                return c;
            }
        }
    }

    /// A new session's timer jitter, from the seeded generator (so a seed fixes it).
    fn draw_jitter(&mut self) -> u16 {
        (self.ids.next_u64() >> 48) as u16
    }

    /// Counts a drop (endpoint-wide, and against `conn` if known) and says so.
    fn dropped(&mut self, reason: DropReason, conn: Option<ConnId>) -> super::event::Handled {
        self.stats.drops.bump(reason);
        if let Some(s) = conn.and_then(|c| self.sessions.get_mut(&c)) {
            s.rec.bump_drop(reason);
        }
        super::event::Handled::Dropped(reason)
    }

    /// 32 bytes from the seeded generator (handshake randomness, cookie nonces).
    fn draw_seed(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for chunk in out.chunks_mut(8) {
            chunk.copy_from_slice(&self.ids.next_u64().to_be_bytes());
        }
        out
    }

    /// Wall-clock time (since the Unix epoch) at endpoint time `now`.
    fn wall(&self, now: Timestamp) -> Duration {
        self.cfg
            .unix_time_at_origin
            .saturating_add(Duration::from_nanos(now.0))
    }

    /// Queues a transport control message (Ping, Pong, Close) of session `cid`, encrypted
    /// under its keys with a fresh packet number. Returns false if the control queue is full
    /// (counted in `control_dropped`).
    fn push_session_control(&mut self, now: Timestamp, cid: ConnId, msg: &Message<'_>) -> bool {
        let Some(s) = self.sessions.get_mut(&cid) else {
            return false;
        };
        let mut frame = [0u8; wire::MAX_CONTROL_LEN];
        let Some(len) = seal_transport(s, &self.cfg, &mut self.stats, now, msg, &mut frame) else {
            return false;
        };
        let peer = s.peer;
        let ok = self
            .control
            .push(Priority::Session, peer, Some(cid), &frame[..len]);
        if !ok {
            self.stats.control_dropped += 1;
        }
        ok
    }

    /// Queues the initiator's next Initiation (a new attempt: new ephemeral key, new
    /// timestamp, the cookie if a fresh one is held). False if it could not be built.
    fn send_initiation(&mut self, now: Timestamp, cid: ConnId, first: bool) -> bool {
        let rng_seed = self.draw_seed();
        let wall = self.wall(now);
        let rotation = self.cfg.cookie_rotation;
        let Some(s) = self.sessions.get_mut(&cid) else {
            return false;
        };
        let peer = s.peer;
        let Phase::Handshaking(h) = &mut s.phase else {
            return false;
        };
        let attempt = if first {
            0
        } else {
            h.attempt.saturating_add(1)
        };
        let cookie = h
            .cookie
            .filter(|(_, at)| now < at.saturating_add(rotation))
            .map(|(c, _)| c);
        let mut buf = [0u8; INITIATION_LEN];
        let len = match &self.cfg.security {
            Security::Noise(n) => {
                let Some(remote) = h.remote.as_ref() else {
                    return false;
                };
                let p = InitiationParams {
                    local: &n.identity,
                    remote,
                    psk: &n.psk,
                    initiator_conn_id: cid.0,
                    attempt,
                    timestamp: handshake::tai64n(wall),
                    cookie,
                    rng_seed,
                    fixed_ephemeral: None,
                };
                match handshake::write_initiation(&p, &mut buf) {
                    Ok(state) => h.noise = Some(state),
                    Err(_) => return false,
                }
                self.stats.dh_operations += dh_cost::WRITE_INITIATION;
                h.last_mac1.copy_from_slice(&buf[field::INIT_MAC1]);
                INITIATION_LEN
            }
            Security::None => {
                let len = handshake::write_plain_initiation(cid.0, attempt, cookie, &mut buf);
                h.last_mac1.copy_from_slice(&buf[field::INIT_PLAIN_MAC1]);
                len
            }
        };
        h.attempt = attempt;
        self.stats.initiations_sent += 1;
        let ok = self
            .control
            .push(Priority::Session, peer, Some(cid), &buf[..len]);
        if !ok {
            self.stats.control_dropped += 1;
        }
        true
    }

    fn push_event(&mut self, e: Event) {
        if matches!(e, Event::Message { .. }) {
            self.pending_messages += 1;
        }
        self.events.push_back(e);
    }

    /// Frees a session and emits its one `Disconnected` (if the application knew it).
    /// `notify` queues a Close to the peer when the session was established.
    fn end_session(
        &mut self,
        now: Timestamp,
        cid: ConnId,
        reason: CloseReason,
        by: Closer,
        notify: bool,
    ) {
        let Some(s) = self.sessions.get(&cid) else {
            return;
        };
        if notify && s.is_established() {
            self.push_session_control(now, cid, &Message::Close(reason));
        }
        let Some(s) = self.sessions.remove(&cid) else {
            return;
        };
        if s.in_handshake() {
            self.handshake_timers.remove(&(s.scheduled, cid));
        }
        self.session_freed(now, cid, &s);
        let key = (s.peer, s.peer_conn_id);
        if self.by_peer.get(&key) == Some(&cid) {
            self.by_peer.remove(&key);
        }
        self.reset_tokens.remove(&cid);
        if matches!(s.phase, Phase::Unconfirmed) {
            self.unconfirmed -= 1;
        }
        if s.role == Role::Server
            && let Some(k) = &s.keys
        {
            self.initiations.session_ended(&k.peer_key, s.peer_conn_id);
        }
        if s.announced() {
            self.push_event(Event::Disconnected {
                conn: cid,
                reason,
                by,
            });
        }
    }

    /// The reset token of our connection ID `cid` (Noise mode).
    fn reset_token(&self, cid: u64) -> Option<[u8; MAC_LEN]> {
        let k = self.reset_key.as_ref()?;
        Some(crypto::mac(&k.0, &[&cid.to_be_bytes()]))
    }
}

/// Seals `payload` as session `cid`'s next Data datagram into `out` and counts it sent (the
/// session's flight recorder and the endpoint's stats): the queued send and the direct one.
fn seal_data(
    s: &mut Session,
    cid: ConnId,
    cfg: &EndpointConfig,
    stats: &mut EndpointStats,
    now: Timestamp,
    payload: &[u8],
    out: &mut [u8],
) -> Option<Transmit> {
    let len = seal_transport(s, cfg, stats, now, &Message::Data(payload), out)?;
    s.rec.datagrams_out += 1;
    s.rec.bytes_out += len as u64;
    stats.datagrams_out += 1;
    Some(Transmit {
        dst: s.peer,
        len,
        conn: Some(cid),
    })
}

/// Writes transport message `msg` of session `s` into `out` (header, then the body encrypted
/// under the session's sending key with the header as associated data; plaintext mode: the
/// body in clear), rotating the sending key first when it is due. Returns the length, or
/// `None` if `out` is too small (no packet number consumed then).
fn seal_transport(
    s: &mut Session,
    cfg: &EndpointConfig,
    stats: &mut EndpointStats,
    now: Timestamp,
    msg: &Message<'_>,
    out: &mut [u8],
) -> Option<usize> {
    let body_len = msg.body_len();
    let total = wire::transport_len(body_len, s.keys.is_some());
    let out = out.get_mut(..total)?;
    let mut flags = 0;
    if let Some(k) = s.keys.as_mut() {
        let limit = u32::try_from(cfg.rekey_after_messages).unwrap_or(u32::MAX);
        if k.sent_under_key >= limit || now >= k.send_since.saturating_add(cfg.rekey_after) {
            // The old key is dropped here, and so wiped.
            k.send = k.send.rekey();
            k.send_phase = !k.send_phase;
            k.sent_under_key = 0;
            k.send_since = now;
            stats.key_updates += 1;
        }
        k.sent_under_key += 1;
        if k.send_phase {
            flags = wire::FLAG_KEY_PHASE;
        }
    }
    let pn = s.take_pn();
    wire::write_header(out, msg.msg_type(), flags, s.peer_conn_id, pn);
    msg.write_body(&mut out[wire::HEADER_LEN..])?;
    if let Some(k) = &s.keys {
        let (header, body) = out.split_at_mut(wire::HEADER_LEN);
        k.send.seal(pn, header, body, body_len)?;
    }
    Some(total)
}
