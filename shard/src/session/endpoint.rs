//! The endpoint: one shard's table of sessions and the whole sans-IO surface the driver calls.
//!
//! ```text
//!            driver (io_uring, another branch)
//!   recv ──► handle_datagram(now, from, bytes) ──► Handled::{Consumed, OtherShard(k), Dropped(r)}
//!   timer ─► handle_timeout(now)                     poll_timeout() ──► next deadline
//!   app ───► connect / send / close                  poll_event()   ──► Connected / Message / Disconnected
//!   send ◄── poll_transmit(now, buf)  (control frames first, then Data round-robin)
//!   cqe ───► on_send_completed(conn, ok)
//! ```
//!
//! Invariants:
//! - No locks, no clock, no sockets: a shard owns its endpoint and calls it from one thread.
//! - Every session in `sessions` has at least one entry at or before its next deadline in
//!   `timers` (`Session::scheduled` is the earliest); stale heap entries are skipped on pop.
//! - A due timer is never dropped: `handle_timeout` takes at most `timer_batch` heap entries
//!   per call and runs a session's timer only while the control queue has room for the frame
//!   it may queue; what it leaves stays due in the heap for the next call.
//! - A session is in `ready` at most once (`Session::in_ready`), and only while established
//!   with Data queued; entries for freed sessions are skipped.
//! - `by_peer` maps `(peer, peer conn ID)` to exactly the server-role sessions.
//! - Every session ends with exactly one `Event::Disconnected`, and is then forgotten.
//! - Behaviour never depends on `HashMap` iteration order, so a seed fixes the event trace.
#![forbid(unsafe_code)]

mod inbound;
mod timers;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;

use super::config::EndpointConfig;
use super::conn_id::{ConnId, ConnIdGen, MAX_SHARDS};
use super::control::{ControlQueue, Priority};
use super::cookie::CookieJar;
use super::drop_reason::DropReason;
use super::event::{CloseReason, Closer, ConnectError, Event, SendOutcome, Transmit};
use super::state::{Handshake, Phase, Role, Session};
use super::stats::{EndpointStats, SessionStats};
use super::time::{Timestamp, nanos};
use super::wire::{self, Message};

/// Why `Endpoint::new` refused its arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
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
    /// Boxed: a table slot is 16 bytes instead of the session's size, so the table's slack
    /// (up to half its slots after a resize) costs little and a resize moves no sessions.
    sessions: HashMap<ConnId, Box<Session>>,
    by_peer: HashMap<(SocketAddr, u64), ConnId>,
    control: ControlQueue,
    ready: VecDeque<ConnId>,
    events: VecDeque<Event>,
    /// `Event::Message`s in `events` (only they count against `event_queue_capacity`).
    pending_messages: usize,
    timers: BinaryHeap<Reverse<(Timestamp, ConnId)>>,
    stats: EndpointStats,
}

impl Endpoint {
    /// An endpoint for shard `shard_index` of `n_shards`. `rng_seed` keys the connection-ID
    /// generator: 32 bytes from the OS RNG in production (IDs must be hard to guess), or
    /// [`ConnIdGen::seed_from_u64`] in tests. `now` starts the cookie secret epochs.
    pub fn new(
        config: EndpointConfig,
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
        Ok(Endpoint {
            cookies: CookieJar::new(
                config.cookie_key,
                config.cookie_rotation,
                config.cookie_lifetime,
                now,
            ),
            control: ControlQueue::new(config.control_queue_capacity),
            cfg: config,
            shard: shard_index,
            n_shards,
            ids: ConnIdGen::new(rng_seed, shard_index),
            sessions: HashMap::new(),
            by_peer: HashMap::new(),
            ready: VecDeque::new(),
            events: VecDeque::new(),
            pending_messages: 0,
            timers: BinaryHeap::new(),
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

    /// Opens a session to `addr`: queues a Hello and starts the handshake timers. The session
    /// is owned by this shard (its ID encodes [`Endpoint::shard`]); `Event::Connected` follows
    /// on Accept, or `Event::Disconnected` with `HandshakeTimeout`.
    pub fn connect(&mut self, now: Timestamp, addr: SocketAddr) -> Result<ConnId, ConnectError> {
        if self.sessions.len() >= self.cfg.max_sessions {
            return Err(ConnectError::SessionLimit);
        }
        if !self.control.has_room() {
            return Err(ConnectError::ControlQueueFull);
        }
        let cid = self.fresh_conn_id();
        let jitter = self.draw_jitter();
        let rto = nanos(self.cfg.handshake_initial_rto).max(1);
        let hs = Handshake {
            started: now,
            rto_nanos: rto,
            next_retransmit: Timestamp(now.0.saturating_add(rto)),
            cookie: None,
            cookie_for_pn: None,
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
        self.send_hello(cid);
        self.reschedule(cid);
        Ok(cid)
    }

    /// Queues one application datagram. It leaves on a later `poll_transmit`, after every
    /// pending control frame, in round-robin turn with other sessions.
    pub fn send(&mut self, _now: Timestamp, conn: ConnId, bytes: &[u8]) -> SendOutcome {
        if bytes.len() > self.cfg.max_payload {
            return SendOutcome::TooLarge;
        }
        let Some(s) = self.sessions.get_mut(&conn) else {
            return SendOutcome::UnknownConnection;
        };
        if s.queue.len() >= self.cfg.data_queue_capacity {
            return SendOutcome::Full;
        }
        s.enqueue(bytes.to_vec());
        if s.is_established() && !s.in_ready {
            s.in_ready = true;
            self.ready.push_back(conn);
        }
        SendOutcome::Queued
    }

    /// Closes a session: queues a Close to the peer (if established), frees the session at
    /// once and emits `Event::Disconnected { by: Closer::Local }`. Queued Data is discarded.
    pub fn close(&mut self, _now: Timestamp, conn: ConnId, reason: CloseReason) -> CloseOutcome {
        if self.sessions.contains_key(&conn) {
            self.end_session(conn, reason, Closer::Local, true);
            CloseOutcome::Closed
        } else {
            CloseOutcome::UnknownConnection
        }
    }

    /// Closes every session (for shutdown): each queues a Close with `reason` if established
    /// and emits its `Disconnected`. In connection-ID order, so traces stay deterministic.
    pub fn close_all(&mut self, _now: Timestamp, reason: CloseReason) {
        let mut conns: Vec<ConnId> = self.sessions.keys().copied().collect();
        conns.sort_unstable();
        for c in conns {
            self.end_session(c, reason, Closer::Local, true);
        }
    }

    /// Writes the next datagram to send into `buf` (which must hold
    /// [`EndpointConfig::max_datagram`] bytes; a smaller buffer gets `None` for Data that does
    /// not fit, and that Data waits). Control frames first, then one Data datagram from the
    /// next session in round-robin order.
    pub fn poll_transmit(&mut self, _now: Timestamp, buf: &mut [u8]) -> Option<Transmit> {
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
            if buf.len() < wire::HEADER_LEN + front.len() {
                s.in_ready = true;
                self.ready.push_front(cid);
                return None;
            }
            let payload = s.dequeue()?;
            let pn = s.take_pn();
            let len = wire::encode(s.peer_conn_id, pn, &Message::Data(&payload), buf)?;
            s.rec.datagrams_out += 1;
            s.rec.bytes_out += len as u64;
            if !s.queue.is_empty() {
                s.in_ready = true;
                self.ready.push_back(cid);
            }
            self.stats.datagrams_out += 1;
            return Some(Transmit {
                dst: s.peer,
                len,
                conn: Some(cid),
            });
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
    /// Unknown connections are ignored: the session may have closed meanwhile.
    pub fn on_send_completed(&mut self, conn: ConnId, ok: bool) {
        if let Some(s) = self.sessions.get_mut(&conn) {
            if ok {
                s.rec.sends_confirmed += 1;
            } else {
                s.rec.sends_failed = s.rec.sends_failed.saturating_add(1);
            }
        }
    }

    /// One session's flight recorder.
    #[must_use]
    pub fn session_stats(&self, conn: ConnId) -> Option<SessionStats> {
        self.sessions.get(&conn).map(|s| s.stats())
    }

    /// Endpoint-wide counters.
    #[must_use]
    pub fn stats(&self) -> EndpointStats {
        EndpointStats {
            sessions: self.sessions.len(),
            control_queue_depth: self.control.len(),
            event_queue_depth: self.events.len(),
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
            s.rec.drops.bump(reason);
        }
        super::event::Handled::Dropped(reason)
    }

    /// Queues a control message of session `cid` with a fresh packet number. Returns false if
    /// the control queue is full (counted in `control_dropped`).
    fn push_session_control(&mut self, cid: ConnId, msg: &Message<'_>) -> bool {
        let Some(s) = self.sessions.get_mut(&cid) else {
            return false;
        };
        let pn = s.take_pn();
        let (peer, dst) = (s.peer, s.peer_conn_id);
        let ok = self
            .control
            .push(Priority::Session, peer, Some(cid), dst, pn, msg);
        if !ok {
            self.stats.control_dropped += 1;
        }
        ok
    }

    /// Queues the client's (re)transmitted Hello, with the cookie if it has one.
    fn send_hello(&mut self, cid: ConnId) {
        let Some(s) = self.sessions.get(&cid) else {
            return;
        };
        let Phase::Handshaking(h) = &s.phase else {
            return;
        };
        let cookie = h.cookie;
        self.push_session_control(
            cid,
            &Message::Hello {
                src_conn_id: cid.0,
                cookie,
            },
        );
    }

    fn push_event(&mut self, e: Event) {
        if matches!(e, Event::Message { .. }) {
            self.pending_messages += 1;
        }
        self.events.push_back(e);
    }

    /// Frees a session and emits its one `Disconnected`. `notify` queues a Close to the peer
    /// when the session was established.
    fn end_session(&mut self, cid: ConnId, reason: CloseReason, by: Closer, notify: bool) {
        let Some(s) = self.sessions.get(&cid) else {
            return;
        };
        if notify && s.is_established() {
            self.push_session_control(cid, &Message::Close(reason));
        }
        if let Some(s) = self.sessions.remove(&cid)
            && s.role == Role::Server
        {
            self.by_peer.remove(&(s.peer, s.peer_conn_id));
        }
        self.push_event(Event::Disconnected {
            conn: cid,
            reason,
            by,
        });
    }
}
