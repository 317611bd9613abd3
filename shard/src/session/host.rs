//! Sessions inside the shard loop: a [`Handler`] that owns one shard's session [`Endpoint`]
//! and drives it from the loop's datagrams, timers, mesh messages and send completions, and
//! an application API ([`SessionApp`]) of connection events.
//!
//! Every session lives on exactly one shard: the one whose index is the top byte of its
//! connection ID. A datagram the kernel delivers to another shard is handed to the owner over
//! the mesh's data lane (counted; a full lane is a counted drop): the shard that received it
//! cannot validate it, so it must not take the lane kept for our own control (see
//! `docs/DECISIONS.md`, D12). Sending on another shard's session goes over the data lane;
//! closing or connecting there over the control lane, which is drained before data. The caller
//! is told the outcome, and every refusal is counted in [`HostStats`].
//! Nothing here takes a lock or spawns anything per packet: inbound and outbound of a session
//! are handled in the same loop turn, and control frames leave before data (the endpoint's
//! priority queue), whatever the state of the send slots.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::time::Instant;

use crate::handler::{Ctx, Handler, SendOutcome as SlotOutcome};
use crate::handler::{Lane, MeshSendError};
use crate::report::{ReportPage, ReportRequest};
use crate::session::admission::LoadReport;
use crate::session::manager::{Bump, Decay, DecayingTag, TagError, TagName};
use crate::session::{
    CloseOutcome, CloseReason, Closer, ConnId, ConnectError, Endpoint, EndpointConfig,
    EndpointError, Event, Handled, PublicKey, SendOutcome, SessionClock, Snapshot, Timestamp,
    Transmit, connect_shard, shard_of,
};
use crate::timer::TimerId;

/// Messages the session layer sends between shards.
#[derive(Debug)]
pub enum SessionMsg {
    /// A datagram for a session the receiving shard owns, delivered to the wrong shard.
    Handoff {
        /// Its source.
        from: SocketAddr,
        /// Its bytes.
        bytes: Box<[u8]>,
    },
    /// Send application bytes on a session the receiving shard owns.
    Send {
        /// The session.
        conn: ConnId,
        /// The payload.
        bytes: Box<[u8]>,
    },
    /// Close a session the receiving shard owns.
    Close {
        /// The session.
        conn: ConnId,
        /// Why.
        reason: CloseReason,
    },
    /// Open a session to `addr` on the receiving shard (its `connect_shard` owner).
    Connect {
        /// The peer.
        addr: SocketAddr,
        /// The peer's static public key (Noise mode).
        server_key: Option<PublicKey>,
    },
    /// The sending shard's session count for one round of the count exchange (admission's
    /// node-wide cap, the connection manager's watermarks), on the control lane.
    Load(LoadReport),
    /// Bytes from another shard's application to this shard's ([`Sessions::send_to_shard`],
    /// [`SessionApp::on_shard_message`]).
    App {
        /// The bytes, in the application's own format.
        bytes: Box<[u8]>,
    },
}

/// What happened to [`Sessions::send_to_shard`]; every case is named and counted.
#[must_use = "a message to another shard can be refused"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardSend {
    /// In the shard's lane; its application sees it in a later loop turn.
    Sent,
    /// The lane is full: dropped (`app_lane_full`).
    Full,
    /// The shard has stopped, or there is no such shard (this one included): dropped
    /// (`app_lane_closed`).
    Closed,
}

/// What happened to [`Sessions::send`]; every case is named.
#[must_use = "a send can be refused"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionSend {
    /// In a send slot: submitted to the kernel with this loop turn (its completion is recorded
    /// in the session's flight recorder).
    SentNow,
    /// In the session's bounded queue, behind earlier data or waiting for free send slots.
    Queued,
    /// The session's data queue is full; nothing was queued.
    Full,
    /// Larger than the session's maximum payload.
    TooLarge,
    /// No such session (never existed, or closed).
    Closed,
    /// Owned by shard `k`: handed to it over the mesh (its outcome there is counted there).
    HandedToShard(usize),
    /// Owned by shard `k`, whose mesh lane is full: dropped (counted).
    ShardFull(usize),
    /// Owned by shard `k`, which has stopped.
    ShardClosed(usize),
}

/// What happened to [`Sessions::connect`].
#[must_use = "a connect can be refused"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connecting {
    /// Handshake started on this shard; the session will be reported by `on_connected`.
    Started(ConnId),
    /// The address hashes to shard `k`; the connect was handed to it, and `k`'s application
    /// instance will see the session.
    HandedToShard(usize),
    /// Shard `k`'s mesh lane is full.
    ShardFull(usize),
    /// Shard `k` has stopped.
    ShardClosed(usize),
    /// This shard refused: session table or control queue full, or no server key in Noise
    /// mode.
    Refused(ConnectError),
}

/// Application logic on top of sessions, one instance per shard.
pub trait SessionApp {
    /// An initiator proved its static key `peer` (Noise mode) and passed `allowed_peers`:
    /// admit it? Called before any session state exists, during the shard's bounded
    /// handshake work; `false` drops the Initiation (`NotAdmitted`) with no reply.
    /// Default: admit.
    fn admit(&mut self, peer: &PublicKey, addr: SocketAddr) -> bool {
        let _ = (peer, addr);
        true
    }

    /// A session completed its handshake (either direction).
    fn on_connected(&mut self, conn: ConnId, peer: SocketAddr, s: &mut Sessions<'_, '_>) {
        let _ = (conn, peer, s);
    }

    /// Application bytes arrived on a session.
    fn on_message(&mut self, conn: ConnId, bytes: &[u8], s: &mut Sessions<'_, '_>);

    /// Bytes another shard's [`Sessions::send`] handed to this shard for session `conn` found
    /// no such session here (closed, or never existed): they were not delivered (counted as
    /// `relayed_unknown`). The sender only learned `HandedToShard`; this is where the
    /// application can answer it (the relay sends `Unreachable`). Default: nothing.
    fn on_undeliverable(&mut self, conn: ConnId, bytes: &[u8], s: &mut Sessions<'_, '_>) {
        let _ = (conn, bytes, s);
    }

    /// A session ended; `by` says which side closed it.
    fn on_disconnected(
        &mut self,
        conn: ConnId,
        reason: CloseReason,
        by: Closer,
        s: &mut Sessions<'_, '_>,
    ) {
        let _ = (conn, reason, by, s);
    }

    /// Bytes shard `from`'s application sent this one with [`Sessions::send_to_shard`] on
    /// `lane` (control-lane messages are handled before data-lane ones). Default: ignored.
    fn on_shard_message(
        &mut self,
        from: usize,
        lane: Lane,
        bytes: &[u8],
        s: &mut Sessions<'_, '_>,
    ) {
        let _ = (from, lane, bytes, s);
    }

    /// Adds the application's own counters to the shard's final report.
    fn counters(&self, out: &mut Vec<(&'static str, u64)>) {
        let _ = out;
    }

    /// The server is draining: say goodbye (send last messages). Called once, before the host
    /// closes every session with `ShuttingDown`; a session with Data still queued is closed
    /// after the others, so its queue has time to leave.
    fn on_shutdown(&mut self, s: &mut Sessions<'_, '_>) {
        let _ = s;
    }
}

/// Counters of the session layer on one shard (beyond the endpoint's own). Every message the
/// host gives up on is counted under exactly one reason here (or the endpoint's), so these
/// ledgers balance:
///
/// - sender side: relays attempted = `relayed + relay_full + relay_closed`;
/// - owner side: handoffs received = handled by the endpoint (its drops counted by reason)
///   `+ misrouted`; `relayed_received` = accepted `+ relayed_send_full
///   + relayed_send_too_large + relayed_unknown + relayed_connect_refused`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostStats {
    /// Datagrams received from the kernel on this shard.
    pub datagrams: u64,
    /// Of those, handed to their owning shard.
    pub handed_off: u64,
    /// Handoffs dropped because the owner's lane was full.
    pub handoff_full: u64,
    /// Handoffs dropped because the owner had stopped.
    pub handoff_closed: u64,
    /// Handoffs received from other shards.
    pub handoffs_received: u64,
    /// Handed-off datagrams that again named another shard (dropped).
    pub misrouted: u64,
    /// Sends, closes and connects relayed to other shards.
    pub relayed: u64,
    /// Sends, closes and connects not relayed because the owner's lane was full (the caller
    /// is told too).
    pub relay_full: u64,
    /// Sends, closes and connects not relayed because the owner had stopped.
    pub relay_closed: u64,
    /// Sends, closes and connects relayed here from other shards.
    pub relayed_received: u64,
    /// Sends relayed here that found the session's data queue full (dropped).
    pub relayed_send_full: u64,
    /// Sends relayed here larger than the session's maximum payload (dropped).
    pub relayed_send_too_large: u64,
    /// Sends and closes relayed here for a session that no longer exists (dropped).
    pub relayed_unknown: u64,
    /// Connects relayed here that the endpoint refused (session table or control queue full).
    pub relayed_connect_refused: u64,
    /// Times the session layer ran out of send slots and kept output for the next turn.
    pub backlogged: u64,
    /// Times the shard's timer table refused the session layer's deadline. Nothing is lost:
    /// the deadline is checked again every loop turn and its timers run on the first turn
    /// after it.
    pub timer_refused: u64,
    /// Sessions the endpoint accepted while the host was draining: closed at once with
    /// `ShuttingDown`, never shown to the application (an admission refusal).
    pub refused_draining: u64,
    /// Messages that arrived on such sessions before their close (consumed, not delivered).
    pub draining_discarded: u64,
    /// Load reports sent to other shards (one per peer per exchange round).
    pub load_reports_sent: u64,
    /// Load reports not sent because the peer's control lane was full or it had stopped (the
    /// peer then counts this shard at its cap for that round: fail-closed).
    pub load_reports_lost: u64,
    /// Load reports received from other shards.
    pub load_reports_received: u64,
    /// Bytes of handoff buffers reserved in the memory budget: the other shards' data lanes
    /// into this one, full of the largest session datagrams.
    pub handoff_reserved: u64,
    /// Application messages handed to another shard ([`Sessions::send_to_shard`]).
    pub app_sent: u64,
    /// Application messages not sent because the lane was full.
    pub app_lane_full: u64,
    /// Application messages not sent because the shard had stopped or does not exist.
    pub app_lane_closed: u64,
    /// Application messages received from other shards.
    pub app_received: u64,
}

/// Where a [`SessionHost`] runs: its shard among the server's, the server's session clock,
/// and the largest datagram its shard sends and receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Placement {
    /// The server's clock: one [`SessionClock`] for all its shards (a cookie issued on one
    /// shard is checked on another).
    pub clock: SessionClock,
    /// This shard's index.
    pub shard: usize,
    /// Shards in the server.
    pub shards: usize,
    /// The shard's `max_datagram` (`ShardConfig::max_datagram`).
    pub max_datagram: usize,
}

impl Placement {
    /// Shard `shard` of `shards` on `clock`, whose datagrams may be up to `max_datagram` bytes.
    #[must_use]
    pub fn new(clock: SessionClock, shard: usize, shards: usize, max_datagram: usize) -> Self {
        Placement {
            clock,
            shard,
            shards,
            max_datagram,
        }
    }
}

/// Why [`SessionHost::new`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The endpoint refused its shard index or count.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// The shard cannot carry the session layer's largest datagram: Data above
    /// `max_datagram - 20` bytes would never be sent or received.
    #[error(
        "shard max_datagram {shard} is below the session layer's datagram size {needed}: \
         raise shard.max_datagram to at least {needed}"
    )]
    MaxDatagram {
        /// The shard's `max_datagram`.
        shard: usize,
        /// [`EndpointConfig::max_datagram`].
        needed: usize,
    },
}

/// 32 bytes from the operating system's random source (`getrandom`), for cookie keys and
/// connection-ID seeds.
pub fn random_key() -> std::io::Result<[u8; 32]> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(std::io::Error::from)?;
    Ok(key)
}

/// Messages one mesh data lane holds (the mesh's default `data_capacity`): the handoff
/// buffers a shard may have to free, per other shard.
const HANDOFF_LANE_CAPACITY: usize = 1024;

/// The [`Handler`] that runs sessions for a [`SessionApp`] on one shard.
pub struct SessionHost<A> {
    ep: Endpoint,
    clock: SessionClock,
    app: A,
    buf: Vec<u8>,
    timer: Option<(Timestamp, TimerId)>,
    backlog: bool,
    stats: HostStats,
    /// Set once the engine drains (`on_shutdown`).
    drain: Option<Drain>,
}

/// Moves everything the endpoint has to send into send slots, control frames first. Returns
/// false if the slots ran out first: the rest stays in the endpoint's bounded queues until the
/// next call.
fn flush(ep: &mut Endpoint, ctx: &mut Ctx<'_, SessionMsg>, buf: &mut [u8], now: Timestamp) -> bool {
    loop {
        if ctx.send_capacity() == 0 {
            return false;
        }
        let Some(t) = ep.poll_transmit(now, buf) else {
            return true;
        };
        if !to_slot(ep, ctx, buf, &t) {
            return true;
        }
    }
}

/// Copies the datagram `t` that the endpoint wrote into `buf` into a send slot, tagged with its
/// session. False if `buf` does not hold it (nothing sent). A slot refusal is counted by the
/// shard, and the endpoint learns of it as a failed send.
fn to_slot(ep: &mut Endpoint, ctx: &mut Ctx<'_, SessionMsg>, buf: &[u8], t: &Transmit) -> bool {
    let Some(bytes) = buf.get(..t.len) else {
        return false;
    };
    match ctx.send_to_tagged(t.dst, bytes, t.conn.map_or(0, |c| c.0)) {
        SlotOutcome::Queued => {}
        SlotOutcome::QueueFull | SlotOutcome::TooLarge { .. } => {
            if let Some(conn) = t.conn {
                ep.on_send_completed(conn, false);
            }
        }
    }
    true
}

/// What an application can do from inside a session callback.
pub struct Sessions<'a, 'b> {
    ep: &'a mut Endpoint,
    ctx: &'a mut Ctx<'b, SessionMsg>,
    buf: &'a mut [u8],
    stats: &'a mut HostStats,
    now: Timestamp,
}

impl Sessions<'_, '_> {
    /// This shard's index.
    pub fn shard_index(&self) -> usize {
        self.ctx.shard_index()
    }

    /// Sends `bytes` on `conn`, on whichever shard owns it.
    pub fn send(&mut self, conn: ConnId, bytes: &[u8]) -> SessionSend {
        let owner = usize::from(shard_of(conn.0));
        if owner == self.ctx.shard_index() {
            // Nothing ahead of it and a free slot: sealed straight into the slot (D73).
            if self.ctx.send_capacity() > 0
                && let Some(t) = self.ep.send_direct(self.now, conn, bytes, self.buf)
                && to_slot(self.ep, self.ctx, self.buf, &t)
            {
                return SessionSend::SentNow;
            }
            return match self.ep.send(self.now, conn, bytes) {
                SendOutcome::Queued => {
                    // Move it (and anything queued before it) into send slots now; it leaves
                    // with this loop turn's submit unless slots or the session's queue hold it.
                    flush(self.ep, self.ctx, self.buf, self.now);
                    match self.ep.queue_depth(conn) {
                        Some(0) => SessionSend::SentNow,
                        _ => SessionSend::Queued,
                    }
                }
                SendOutcome::Full => SessionSend::Full,
                SendOutcome::TooLarge => SessionSend::TooLarge,
                SendOutcome::UnknownConnection => SessionSend::Closed,
            };
        }
        let msg = SessionMsg::Send {
            conn,
            bytes: bytes.into(),
        };
        match self.relay(owner, Lane::Data, msg) {
            Ok(()) => SessionSend::HandedToShard(owner),
            Err(MeshSendError::Full(_)) => SessionSend::ShardFull(owner),
            Err(MeshSendError::Closed(_) | MeshSendError::NoSuchShard(_)) => {
                SessionSend::ShardClosed(owner)
            }
        }
    }

    /// Closes `conn` with `reason`, on whichever shard owns it. False if it was unknown here
    /// or could not be handed to its owner (counted as `relay_full` or `relay_closed`).
    ///
    /// A close is an abort: Data still queued for the session is discarded. A close for another
    /// shard's session travels on the mesh's control lane, so it overtakes Data relayed to the
    /// same session earlier in the turn (that Data is then counted as `relayed_unknown`).
    pub fn close(&mut self, conn: ConnId, reason: CloseReason) -> bool {
        let owner = usize::from(shard_of(conn.0));
        if owner == self.ctx.shard_index() {
            return matches!(self.ep.close(self.now, conn, reason), CloseOutcome::Closed);
        }
        self.relay(owner, Lane::Control, SessionMsg::Close { conn, reason })
            .is_ok()
    }

    /// Whether `conn` is a live session of this shard (handshaking ones included).
    pub fn is_open(&self, conn: ConnId) -> bool {
        self.ep.has_session(conn)
    }

    /// The static public key of `conn`'s peer, for a session on this shard (Noise mode).
    pub fn peer_key(&self, conn: ConnId) -> Option<PublicKey> {
        self.ep.session_stats(conn).and_then(|s| s.peer_key)
    }

    /// Opens a session to `addr` on the shard `connect_shard(addr, shards)` names.
    /// `server_key` is the server's static public key (required in Noise mode).
    pub fn connect(&mut self, addr: SocketAddr, server_key: Option<PublicKey>) -> Connecting {
        let shards = self.ctx.shards();
        let owner = usize::from(connect_shard(
            addr,
            shards.min(usize::from(u16::MAX)) as u16,
        ));
        if owner == self.ctx.shard_index() {
            return match self.ep.connect(self.now, addr, server_key) {
                Ok(conn) => Connecting::Started(conn),
                Err(e) => Connecting::Refused(e),
            };
        }
        match self.relay(
            owner,
            Lane::Control,
            SessionMsg::Connect { addr, server_key },
        ) {
            Ok(()) => Connecting::HandedToShard(owner),
            Err(MeshSendError::Full(_)) => Connecting::ShardFull(owner),
            Err(_) => Connecting::ShardClosed(owner),
        }
    }

    /// Hands `bytes` to shard `shard`'s application ([`SessionApp::on_shard_message`]) on
    /// `lane`: the control lane (64 messages per shard pair, drained first) for what must not
    /// wait behind data, the data lane (1,024) for the rest. Never waits; a refusal is
    /// returned and counted (`app_lane_full`, `app_lane_closed`).
    pub fn send_to_shard(&mut self, shard: usize, lane: Lane, bytes: &[u8]) -> ShardSend {
        let msg = SessionMsg::App {
            bytes: bytes.into(),
        };
        let r = if shard == self.ctx.shard_index() {
            Err(MeshSendError::NoSuchShard(msg))
        } else {
            match lane {
                Lane::Control => self.ctx.send_control_to_shard(shard, msg),
                Lane::Data => self.ctx.send_to_shard(shard, msg),
            }
        };
        match r {
            Ok(()) => {
                self.stats.app_sent += 1;
                ShardSend::Sent
            }
            Err(MeshSendError::Full(_)) => {
                self.stats.app_lane_full += 1;
                ShardSend::Full
            }
            Err(MeshSendError::Closed(_) | MeshSendError::NoSuchShard(_)) => {
                self.stats.app_lane_closed += 1;
                ShardSend::Closed
            }
        }
    }

    /// Shards in the server.
    pub fn shards(&self) -> usize {
        self.ctx.shards()
    }

    /// Sessions live on this shard.
    pub fn session_count(&self) -> usize {
        self.ep.session_count()
    }

    // ---- the connection manager (sessions on this shard; `TagError::UnknownSession` for
    // ---- another shard's session, or when the manager is off) ----

    /// Sets tag `name` of `conn` to `weight` (go-libp2p's `TagPeer`): a higher score keeps a
    /// session longer when the node trims.
    pub fn tag(&mut self, conn: ConnId, name: TagName, weight: i32) -> Result<(), TagError> {
        self.manager()?.tag(conn, name, weight)
    }

    /// Removes tag `name` from `conn`; `false` if it was not set.
    pub fn untag(&mut self, conn: ConnId, name: TagName) -> bool {
        self.manager().is_ok_and(|m| m.untag(conn, name))
    }

    /// Sets tag `name` of `conn` to `f(current)` (`current` is 0 when unset); returns the
    /// new weight.
    pub fn upsert_tag(
        &mut self,
        conn: ConnId,
        name: TagName,
        f: impl FnOnce(i32) -> i32,
    ) -> Result<i32, TagError> {
        self.manager()?.upsert_tag(conn, name, f)
    }

    /// Registers a decaying tag on this shard (go-libp2p's `RegisterDecayingTag`): values
    /// decay every `interval` by `decay` and combine bumps by `bump`. Register it on every
    /// shard whose sessions it tags (from each shard's `on_connected`, say).
    pub fn register_decaying_tag(
        &mut self,
        name: TagName,
        interval: std::time::Duration,
        decay: Decay,
        bump: Bump,
    ) -> Result<DecayingTag, TagError> {
        let now = self.now;
        self.manager()?
            .register_decaying_tag(now, name, interval, decay, bump)
    }

    /// Bumps `conn`'s value of decaying tag `tag` by `delta`; returns the new value.
    pub fn bump(&mut self, tag: DecayingTag, conn: ConnId, delta: i32) -> Result<i32, TagError> {
        let now = self.now;
        self.manager()?.bump(now, tag, conn, delta)
    }

    /// Protects `conn` from trimming under `name` (go-libp2p's `Protect`).
    pub fn protect(&mut self, conn: ConnId, name: TagName) -> Result<(), TagError> {
        self.manager()?.protect(conn, name)
    }

    /// Removes protection `name` from `conn`; returns whether another protection remains.
    pub fn unprotect(&mut self, conn: ConnId, name: TagName) -> bool {
        self.manager().is_ok_and(|m| m.unprotect(conn, name))
    }

    /// Whether `conn` is protected from trimming (by any name).
    pub fn is_protected(&self, conn: ConnId) -> bool {
        self.ep.manager().is_some_and(|m| m.is_protected(conn))
    }

    /// `conn`'s score now (tags, decaying tags, less pressure; `docs/DECISIONS.md` D25).
    pub fn score(&self, conn: ConnId) -> Option<i64> {
        self.ep.manager()?.score(self.now, conn)
    }

    /// Asks this shard for a trim round now, whatever the node's count and the silence
    /// period: down to its share of the low watermark, lowest score first, sparing protected
    /// and in-grace sessions. It runs incrementally from the next loop turn; each trimmed
    /// session is closed with `Close(Trimmed)` and reported by `on_disconnected`. `false`:
    /// the manager is off.
    pub fn force_trim(&mut self) -> bool {
        match self.ep.manager_mut() {
            Some(m) => {
                m.force_trim();
                true
            }
            None => false,
        }
    }

    fn manager(&mut self) -> Result<&mut crate::session::manager::ConnManager, TagError> {
        self.ep.manager_mut().ok_or(TagError::UnknownSession)
    }

    /// Hands `msg` to shard `owner`: Send on the data lane, Close and Connect on the control
    /// lane (control never waits behind data). Counts the outcome.
    fn relay(
        &mut self,
        owner: usize,
        lane: Lane,
        msg: SessionMsg,
    ) -> Result<(), MeshSendError<SessionMsg>> {
        let r = match lane {
            Lane::Control => self.ctx.send_control_to_shard(owner, msg),
            Lane::Data => self.ctx.send_to_shard(owner, msg),
        };
        match &r {
            Ok(()) => self.stats.relayed += 1,
            Err(MeshSendError::Full(_)) => self.stats.relay_full += 1,
            Err(MeshSendError::Closed(_) | MeshSendError::NoSuchShard(_)) => {
                self.stats.relay_closed += 1;
            }
        }
        r
    }
}

impl<A: SessionApp> SessionHost<A> {
    /// A host for the shard `place` names. All shards of a server must get the same
    /// `config.cookie_key`, security (identity) and `place.clock`; `seed` should differ per
    /// shard (see [`random_key`]). `config.unix_time_at_origin` is set from the clock. Refuses a shard whose `max_datagram` is below
    /// [`EndpointConfig::max_datagram`]: the session layer would silently lose its largest
    /// datagrams.
    pub fn new(
        mut config: EndpointConfig,
        place: Placement,
        seed: [u8; 32],
        app: A,
    ) -> Result<Self, HostError> {
        let needed = config.max_datagram();
        if place.max_datagram < needed {
            return Err(HostError::MaxDatagram {
                shard: place.max_datagram,
                needed,
            });
        }
        let to16 = |v: usize| u16::try_from(v).unwrap_or(u16::MAX);
        config.unix_time_at_origin = place.clock.unix_time_at_origin();
        let buf = vec![0u8; needed];
        let mut ep = Endpoint::new(
            config,
            to16(place.shard),
            to16(place.shards),
            seed,
            place.clock.stamp(Instant::now()),
        )?;
        let mut stats = HostStats::default();
        if let Some(budget) = ep.budget_mut() {
            // Handoff buffers: what the other shards' data lanes into this shard hold at
            // most (each message boxes one datagram), reserved once for good.
            let reserve = place
                .shards
                .saturating_sub(1)
                .saturating_mul(HANDOFF_LANE_CAPACITY)
                .saturating_mul(needed);
            if budget.try_handoff(reserve) {
                stats.handoff_reserved = reserve as u64;
            }
        }
        Ok(Self {
            ep,
            clock: place.clock,
            app,
            buf,
            timer: None,
            backlog: false,
            stats,
            drain: None,
        })
    }

    /// The session layer's own counters.
    pub fn stats(&self) -> HostStats {
        self.stats
    }

    /// Every session's flight recorder and the endpoint's counters.
    pub fn snapshot(&self) -> Snapshot {
        self.ep.snapshot()
    }

    /// The application.
    pub fn app(&self) -> &A {
        &self.app
    }

    /// The endpoint's timers and its bounded handshake work, with the application deciding
    /// admission.
    fn run_timeout(&mut self, now: Timestamp) {
        let app = &mut self.app;
        self.ep
            .handle_timeout_with(now, &mut |key, addr| app.admit(key, addr));
    }

    /// Delivers pending events to the application, sends what the endpoint has to send, and
    /// re-arms the endpoint's timer.
    fn pump(&mut self, ctx: &mut Ctx<'_, SessionMsg>) {
        let now = self.clock.stamp(ctx.now());
        while let Some(event) = self.ep.poll_event() {
            let mut s = Sessions {
                ep: &mut self.ep,
                ctx,
                buf: &mut self.buf,
                stats: &mut self.stats,
                now,
            };
            // While draining, a session accepted now is refused: closed next, unseen.
            if let Some(drain) = &mut self.drain {
                match &event {
                    Event::Connected { conn, .. } => {
                        drain.refuse(*conn);
                        s.stats.refused_draining += 1;
                        continue;
                    }
                    Event::Message { conn, .. } if drain.is_hidden(*conn) => {
                        s.stats.draining_discarded += 1;
                        continue;
                    }
                    Event::Disconnected { conn, .. } if drain.forget(*conn) => continue,
                    _ => {}
                }
            }
            match event {
                Event::Connected { conn, peer } => self.app.on_connected(conn, peer, &mut s),
                Event::Message { conn, bytes } => self.app.on_message(conn, &bytes, &mut s),
                Event::Disconnected { conn, reason, by } => {
                    self.app.on_disconnected(conn, reason, by, &mut s);
                }
            }
        }
        self.send_load_reports(ctx);
        self.flush(ctx, now);
        self.rearm(ctx);
    }

    /// Sends the count exchange's reports to every other shard, on the control lane.
    fn send_load_reports(&mut self, ctx: &mut Ctx<'_, SessionMsg>) {
        while let Some(r) = self.ep.poll_load_report() {
            let me = ctx.shard_index();
            for k in (0..ctx.shards()).filter(|&k| k != me) {
                match ctx.send_control_to_shard(k, SessionMsg::Load(r)) {
                    Ok(()) => self.stats.load_reports_sent += 1,
                    Err(_) => self.stats.load_reports_lost += 1,
                }
            }
        }
    }

    fn flush(&mut self, ctx: &mut Ctx<'_, SessionMsg>, now: Timestamp) {
        self.backlog = !flush(&mut self.ep, ctx, &mut self.buf, now);
        if self.backlog {
            self.stats.backlogged += 1;
        }
    }

    /// Keeps one shard timer at the endpoint's next deadline. Timers already due (the endpoint
    /// worked off a bounded batch and left the rest) get a timer at that past deadline, which
    /// makes the loop turn again at once, unless the control queue is what holds them: then
    /// the frames waiting in it are waiting for send slots, their completions end the loop's
    /// wait, and `on_turn` resumes the timers (a timer would only spin the loop meanwhile).
    fn rearm(&mut self, ctx: &mut Ctx<'_, SessionMsg>) {
        let now = self.clock.stamp(ctx.now());
        let next = self
            .ep
            .poll_timeout()
            .filter(|&d| d > now || self.ep.can_run_timers());
        if self.timer.map(|(t, _)| t) == next {
            return;
        }
        if let Some((_, id)) = self.timer.take() {
            ctx.cancel_timer(id);
        }
        // A deadline beyond what `Instant` holds never comes: no timer.
        if let Some(deadline) = next
            && let Some(at) = self.clock.instant(deadline)
        {
            match ctx.set_timer(at, 0) {
                Ok(id) => self.timer = Some((deadline, id)),
                // Counted; `on_turn` checks the deadline every turn and retries, so the
                // timers still run, on the first turn after their deadline.
                Err(_) => self.stats.timer_refused += 1,
            }
        }
    }
}

impl<A: SessionApp> Handler for SessionHost<A> {
    type Message = SessionMsg;

    fn on_datagram(&mut self, peer: SocketAddr, payload: &[u8], ctx: &mut Ctx<'_, SessionMsg>) {
        self.stats.datagrams += 1;
        let now = self.clock.stamp(ctx.now());
        match self.ep.handle_datagram(now, peer, payload) {
            Handled::Consumed => {}
            // Counted by the endpoint under its reason; no reply.
            Handled::Dropped(_) => {}
            Handled::OtherShard(k) => {
                let msg = SessionMsg::Handoff {
                    from: peer,
                    bytes: payload.into(),
                };
                match ctx.send_to_shard(usize::from(k), msg) {
                    Ok(()) => self.stats.handed_off += 1,
                    Err(MeshSendError::Full(_)) => self.stats.handoff_full += 1,
                    Err(_) => self.stats.handoff_closed += 1,
                }
                return;
            }
        }
        self.pump(ctx);
    }

    fn on_message(
        &mut self,
        from: usize,
        lane: Lane,
        msg: SessionMsg,
        ctx: &mut Ctx<'_, SessionMsg>,
    ) {
        let now = self.clock.stamp(ctx.now());
        if !matches!(
            msg,
            SessionMsg::Handoff { .. } | SessionMsg::Load(_) | SessionMsg::App { .. }
        ) {
            self.stats.relayed_received += 1;
        }
        match msg {
            SessionMsg::Handoff { from, bytes } => {
                self.stats.handoffs_received += 1;
                if let Handled::OtherShard(_) = self.ep.handle_datagram(now, from, &bytes) {
                    self.stats.misrouted += 1;
                }
            }
            SessionMsg::Send { conn, bytes } => {
                // Queued as it came (no second copy of the payload); kept if refused.
                let len = bytes.len();
                let mut bytes = Some(bytes);
                let take = || bytes.take().map(<[u8]>::into_vec).unwrap_or_default();
                match self.ep.send_with(conn, len, take) {
                    SendOutcome::Queued => {}
                    SendOutcome::Full => self.stats.relayed_send_full += 1,
                    SendOutcome::TooLarge => self.stats.relayed_send_too_large += 1,
                    SendOutcome::UnknownConnection => {
                        self.stats.relayed_unknown += 1;
                        let mut s = Sessions {
                            ep: &mut self.ep,
                            ctx,
                            buf: &mut self.buf,
                            stats: &mut self.stats,
                            now,
                        };
                        let bytes = bytes.unwrap_or_default();
                        self.app.on_undeliverable(conn, &bytes, &mut s);
                    }
                }
            }
            SessionMsg::Close { conn, reason } => match self.ep.close(now, conn, reason) {
                CloseOutcome::Closed => {}
                CloseOutcome::UnknownConnection => self.stats.relayed_unknown += 1,
            },
            SessionMsg::Connect { addr, server_key } => {
                if self.ep.connect(now, addr, server_key).is_err() {
                    self.stats.relayed_connect_refused += 1;
                }
            }
            SessionMsg::Load(report) => {
                self.stats.load_reports_received += 1;
                self.ep.on_load_report(report);
            }
            SessionMsg::App { bytes } => {
                self.stats.app_received += 1;
                let mut s = Sessions {
                    ep: &mut self.ep,
                    ctx,
                    buf: &mut self.buf,
                    stats: &mut self.stats,
                    now,
                };
                self.app.on_shard_message(from, lane, &bytes, &mut s);
            }
        }
        self.pump(ctx);
    }

    fn on_timer(&mut self, _token: u64, ctx: &mut Ctx<'_, SessionMsg>) {
        self.timer = None;
        self.run_timeout(self.clock.stamp(ctx.now()));
        self.pump(ctx);
    }

    fn on_send_complete(&mut self, tag: u64, result: std::io::Result<usize>) {
        self.ep.on_send_completed(ConnId(tag), result.is_ok());
    }

    fn on_turn(&mut self, ctx: &mut Ctx<'_, SessionMsg>) {
        let now = self.clock.stamp(ctx.now());
        if self.backlog {
            self.flush(ctx, now);
        }
        // Draining: close the next sessions the control queue has room for, then carry on
        // (timers still run: a Close does not wait for them).
        if let Some(drain) = &mut self.drain {
            drain.close_some(&mut self.ep, now);
            self.pump(ctx);
        }
        // Timers that are due and can run: ones a bounded call left, ones that waited for the
        // control queue to drain (it may just have), or a deadline the shard refused a timer.
        if self.ep.poll_timeout().is_some_and(|d| d <= now) && self.ep.can_run_timers() {
            self.run_timeout(now);
            self.pump(ctx);
        } else {
            // Cheap when nothing changed; retries a refused timer.
            self.rearm(ctx);
        }
    }

    /// The endpoint's counters, then the page's sessions' flight recorders: by connection ID,
    /// or the worst of a scanned page ([`ReportRequest::worst`]). One pass over the table's
    /// keys, and only the page's sessions read.
    fn report(&self, request: &ReportRequest, page: &mut ReportPage) -> Option<u64> {
        self.write_report(request, page)
    }

    /// The application says goodbye, then every session is closed with `ShuttingDown`, as many
    /// per turn as the control queue has room for (`host/drain.rs`).
    fn on_shutdown(&mut self, ctx: &mut Ctx<'_, SessionMsg>) {
        let now = self.clock.stamp(ctx.now());
        let mut s = Sessions {
            ep: &mut self.ep,
            ctx,
            buf: &mut self.buf,
            stats: &mut self.stats,
            now,
        };
        self.app.on_shutdown(&mut s);
        self.flush(ctx, now);
        let mut drain = Drain::new(&self.ep);
        drain.close_some(&mut self.ep, now);
        self.drain = Some(drain);
        self.pump(ctx);
    }

    fn drained(&self) -> bool {
        !self.backlog && self.drain.as_ref().is_some_and(|d| d.is_done(&self.ep))
    }

    fn counters(&self, out: &mut Vec<(&'static str, u64)>) {
        let s = self.stats;
        let e = self.ep.stats();
        out.extend([
            ("session_datagrams", s.datagrams),
            ("session_handed_off", s.handed_off),
            ("session_handoff_full", s.handoff_full),
            ("session_handoff_closed", s.handoff_closed),
            ("session_handoffs_received", s.handoffs_received),
            ("session_misrouted", s.misrouted),
            ("session_relayed", s.relayed),
            ("session_relayed_received", s.relayed_received),
            ("session_relay_full", s.relay_full),
            ("session_relay_closed", s.relay_closed),
            ("session_relayed_send_full", s.relayed_send_full),
            ("session_relayed_send_too_large", s.relayed_send_too_large),
            ("session_relayed_unknown", s.relayed_unknown),
            ("session_relayed_connect_refused", s.relayed_connect_refused),
            ("session_backlogged", s.backlogged),
            ("session_timer_refused", s.timer_refused),
            ("sessions", e.sessions as u64),
            ("sessions_accepted", e.sessions_accepted),
            ("session_cookies_sent", e.cookies_sent),
            ("session_handshakes_completed", e.handshakes_completed),
            ("session_initiations_sent", e.initiations_sent),
            ("session_dh_operations", e.dh_operations),
            ("session_resets_sent", e.resets_sent),
            ("session_resets_suppressed", e.resets_suppressed),
            ("session_key_updates", e.key_updates),
            ("session_key_updates_received", e.key_updates_received),
            ("session_drops", e.drops.total()),
            ("session_control_dropped", e.control_dropped),
            ("session_timers_deferred", e.timers_deferred),
            ("session_endpoint_datagrams", e.datagrams_in),
            ("session_refused_draining", s.refused_draining),
            ("session_draining_discarded", s.draining_discarded),
            ("session_refused_sent", e.refused_sent),
            ("session_shed_messages", e.shed_messages),
            ("session_load_reports_sent", s.load_reports_sent),
            (
                "session_load_reports_lost",
                s.load_reports_lost + e.load_reports_lost,
            ),
            ("session_load_reports_received", s.load_reports_received),
            ("session_app_sent", s.app_sent),
            ("session_app_lane_full", s.app_lane_full),
            ("session_app_lane_closed", s.app_lane_closed),
            ("session_app_received", s.app_received),
        ]);
        self.conn_control_counters(out);
        for reason in crate::session::DropReason::ALL {
            let n = e.drops[reason];
            if n > 0 {
                out.push((reason.name(), n));
            }
        }
        self.app.counters(out);
    }
}

mod conn_counters;
mod drain;
mod report;
#[cfg(test)]
mod tests;

pub use conn_counters::{REFUSALS_PREFIX, TRIMS_PREFIX, refusal_counter, trim_counter};
use drain::Drain;
