//! QUIC inside the shard loop: [`QuicHost`], a [`Handler`] that owns one shard's
//! `quinn_proto::Endpoint` and every connection on it, and drives them from the loop's
//! datagrams, timers and mesh messages.
//!
//! - **Datagrams in.** Each datagram's owner is read from its destination CID
//!   ([`owner_shard`]); one that names another shard (steering off, or a packet the kernel's
//!   hash put here) is handed to the owner over the mesh's data lane and counted. The rest go
//!   to the endpoint with the turn's `now`, the source address and no ECN.
//! - **Driving.** A connection that received, fired a timer or was written to is marked dirty;
//!   once per loop turn ([`Handler::on_turn`], after every datagram and timer of the turn) each
//!   dirty connection's endpoint events and application events are handled, then its
//!   transmits are polled into the shard's send slots (at most as many datagrams as there are
//!   free slots, so nothing quinn hands over is refused; consecutive datagrams of one
//!   transmit go to one destination with one size, which the driver sends as one GSO send),
//!   then its next deadline is set on the shard's timer set (one timer per connection,
//!   cancelled and re-armed only when the deadline moves earlier; a timer that fires before a
//!   deadline that moved later finds nothing expired and is re-armed).
//! - **No tokio, no lock**: the endpoint is sans-IO and lives on this thread; the server
//!   configuration is shared read-only.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use quinn_proto::{
    ConnectionError, ConnectionHandle, DatagramEvent, Endpoint, EndpointConfig, Event, Incoming,
    ServerConfig, StreamEvent, Transmit, VarInt,
};

use super::app::{QuicApp, QuicConn, QuicConnId};
use super::cid::{ShardCidGenerator, owner_shard};
use super::config::{CLOSE_TRIMMED, QuicConfigError, QuicOptions};
use super::control::{ConnControl, Intake};
use super::stats::{QuicStats, refusal_counter, trim_counter};
use crate::handler::{Ctx, Handler, Lane, MeshSendError, SendOutcome};
use crate::report::{ReportPage, ReportRequest};
use crate::session::admission::{AdmissionController, LoadReport, RefusalReason};
use crate::session::manager::{ConnManager, TrimReason};
use crate::timer::TimerId;

/// Most datagrams one `poll_transmit` may return: the driver's largest GSO send.
const MAX_BATCH: usize = 64;

/// The timer token of the connection control's timer (connections' timers carry their slot).
const CONTROL_TIMER: u64 = u64::MAX;

/// What QUIC hosts send each other over the mesh.
#[derive(Debug)]
pub enum QuicMsg {
    /// A datagram whose CID names the receiving shard, read by another.
    Handoff {
        /// Its source.
        from: SocketAddr,
        /// Its bytes, copied once out of the receive buffer; the owner hands them to its
        /// endpoint as they are.
        bytes: BytesMut,
    },
    /// A shard's connection count for the count exchange (admission's node cap, the
    /// manager's watermarks), on the control lane.
    Load(LoadReport),
}

/// One connection and the host's bookkeeping for it.
struct Entry {
    id: QuicConnId,
    conn: quinn_proto::Connection,
    /// The address it was admitted from (admission's per-prefix count).
    peer: SocketAddr,
    /// Its handshake completed.
    connected: bool,
    /// The deadline armed on the shard's timer set, and its timer.
    timer: Option<(Instant, TimerId)>,
    /// A deadline the timer set refused: checked every turn.
    unarmed: Option<Instant>,
    dirty: bool,
    /// `on_closed` was called.
    reported: bool,
}

/// A shard's QUIC server: the endpoint, its connections and the application.
pub struct QuicHost<A: QuicApp> {
    shard: usize,
    shards: usize,
    endpoint: Endpoint,
    max_connections: usize,
    control: ConnControl,
    /// The control timer armed, if any.
    control_timer: Option<(Instant, TimerId)>,
    /// Indexed by `ConnectionHandle`: the endpoint's slab index.
    conns: Vec<Option<Entry>>,
    live: usize,
    dirty: Vec<usize>,
    /// The list `drive_dirty` works through, kept (empty) with its capacity between turns.
    driving: Vec<usize>,
    unarmed: Vec<usize>,
    next_seq: u64,
    draining: bool,
    app: A,
    buf: Vec<u8>,
    stats: QuicStats,
}

impl<A: QuicApp> QuicHost<A> {
    /// The host of shard `shard` of `shards`, serving with `server` (one configuration shared
    /// by every shard, from [`QuicOptions::server_config`]). Fails for a shard index above 255
    /// (the CID names its shard in one byte).
    pub fn new(
        shard: usize,
        shards: usize,
        server: Arc<ServerConfig>,
        options: &QuicOptions,
        app: A,
    ) -> Result<Self, QuicConfigError> {
        let index = u8::try_from(shard).map_err(|_| QuicConfigError::ShardIndex { shard })?;
        let mut config = EndpointConfig::default();
        config.cid_generator(move || Box::new(ShardCidGenerator::new(index)));
        // Path MTU discovery needs datagrams the network never fragments: the options say
        // whether the socket was set up so (`*_PMTUDISC_PROBE`).
        let endpoint = Endpoint::new(Arc::new(config), Some(server), options.mtu_discovery, None);
        Ok(Self {
            shard,
            shards,
            endpoint,
            max_connections: options.max_connections_per_shard,
            control: ConnControl::new(shard, shards, options)?,
            control_timer: None,
            conns: Vec::new(),
            live: 0,
            dirty: Vec::new(),
            driving: Vec::new(),
            unarmed: Vec::new(),
            next_seq: 0,
            draining: false,
            app,
            buf: Vec::with_capacity(MAX_BATCH * 1500),
            stats: QuicStats::default(),
        })
    }

    /// The application.
    pub fn app(&self) -> &A {
        &self.app
    }

    /// The host's counters.
    pub fn stats(&self) -> QuicStats {
        self.stats
    }

    /// Connections held now.
    pub fn connections(&self) -> usize {
        self.live
    }

    /// Admission control for QUIC connections, if configured ([`QuicOptions::admission`]).
    pub fn admission(&self) -> Option<&AdmissionController> {
        self.control.admission()
    }

    /// The connection manager, if configured ([`QuicOptions::manager`]).
    pub fn manager(&self) -> Option<&ConnManager> {
        self.control.manager()
    }

    /// The connection manager, to tag and protect connections (it names them
    /// `ConnId(QuicConnId.0)`) or force a trim (taken at the next control timer or turn).
    pub fn manager_mut(&mut self) -> Option<&mut ConnManager> {
        self.control.manager_mut()
    }

    fn entry(&mut self, ch: usize) -> Option<&mut Entry> {
        self.conns.get_mut(ch).and_then(Option::as_mut)
    }

    fn mark_dirty(&mut self, ch: usize) {
        if let Some(e) = self.entry(ch)
            && !e.dirty
        {
            e.dirty = true;
            self.dirty.push(ch);
        }
    }

    /// Gives one datagram (its one copy out of the receive buffer) to the endpoint.
    fn receive<M: Send>(&mut self, from: SocketAddr, bytes: BytesMut, ctx: &mut Ctx<'_, M>) {
        self.stats.to_endpoint += 1;
        let now = ctx.now();
        self.buf.clear();
        let event = self
            .endpoint
            .handle(now, from, None, None, bytes, &mut self.buf);
        match event {
            None => {}
            Some(DatagramEvent::ConnectionEvent(ch, event)) => {
                if let Some(e) = self.entry(ch.0) {
                    e.conn.handle_event(event);
                    self.mark_dirty(ch.0);
                }
            }
            Some(DatagramEvent::NewConnection(incoming)) => self.incoming(incoming, now, ctx),
            Some(DatagramEvent::Response(t)) => {
                self.stats.stateless_out += 1;
                send(ctx, &t, &self.buf, &mut self.stats);
            }
        }
    }

    /// A client's first Initial: refuse, ask for a Retry, or accept.
    fn incoming<M: Send>(&mut self, incoming: Incoming, now: Instant, ctx: &mut Ctx<'_, M>) {
        self.buf.clear();
        let refuse = if self.draining {
            self.stats.refused_draining += 1;
            true
        } else if self.live >= self.max_connections {
            self.stats.refused_full += 1;
            true
        } else if !self.app.admit(incoming.remote_address()) {
            self.stats.refused_by_app += 1;
            true
        } else {
            false
        };
        if refuse {
            self.refuse(incoming, ctx);
            return;
        }
        let peer = incoming.remote_address();
        let stamp = self.control.stamp(now);
        let intake = self.control.intake(
            stamp,
            peer,
            self.live,
            incoming.remote_address_validated(),
            incoming.may_retry(),
        );
        match intake {
            Intake::Retry { under_load } => {
                match self.endpoint.retry(incoming, &mut self.buf) {
                    Ok(t) => {
                        self.stats.retries += 1;
                        self.stats.retries_under_load += u64::from(under_load);
                        send(ctx, &t, &self.buf, &mut self.stats);
                    }
                    Err(e) => self.endpoint.ignore(e.into_incoming()),
                }
                return;
            }
            Intake::Refuse { reply, .. } => {
                if reply {
                    self.refuse(incoming, ctx);
                } else {
                    self.stats.refusal_replies_suppressed += 1;
                    self.endpoint.ignore(incoming);
                }
                return;
            }
            Intake::Accept => {}
        }
        match self.endpoint.accept(incoming, now, &mut self.buf, None) {
            Ok((ch, conn)) => {
                let seq = self.next_seq;
                self.next_seq += 1;
                let id = QuicConnId(((self.shard as u64) << 48) | (seq & ((1 << 48) - 1)));
                if self.conns.len() <= ch.0 {
                    self.conns.resize_with(ch.0 + 1, || None);
                }
                self.control.accepted(id, ch.0);
                self.conns[ch.0] = Some(Entry {
                    id,
                    conn,
                    peer,
                    connected: false,
                    timer: None,
                    unarmed: None,
                    dirty: false,
                    reported: false,
                });
                self.live += 1;
                self.stats.accepted += 1;
                self.mark_dirty(ch.0);
            }
            Err(e) => {
                self.control.not_accepted(stamp, peer);
                self.stats.accept_failed += 1;
                tracing::debug!(shard = self.shard, cause = %e.cause, "QUIC connection not accepted");
                if let Some(t) = e.response {
                    self.stats.stateless_out += 1;
                    send(ctx, &t, &self.buf, &mut self.stats);
                }
            }
        }
    }

    /// Answers an Initial with `CONNECTION_REFUSED` (stateless, smaller than the Initial).
    fn refuse<M: Send>(&mut self, incoming: Incoming, ctx: &mut Ctx<'_, M>) {
        self.buf.clear();
        let t = self.endpoint.refuse(incoming, &mut self.buf);
        self.stats.stateless_out += 1;
        send(ctx, &t, &self.buf, &mut self.stats);
    }

    /// The connection control's bounded work (count-exchange round, one trim step), its load
    /// reports sent, and its timer re-armed.
    fn run_control(&mut self, ctx: &mut Ctx<'_, QuicMsg>) {
        let now = ctx.now();
        let stamp = self.control.stamp(now);
        let due = self.control.due().is_some_and(|t| t <= stamp);
        if due {
            let mut trimmed = Vec::new();
            self.control.run(stamp, |slot, _reason| trimmed.push(slot));
            for slot in trimmed {
                if let Some(e) = self.entry(slot) {
                    e.conn.close(
                        now,
                        VarInt::from_u32(CLOSE_TRIMMED),
                        bytes::Bytes::from_static(b"trimmed"),
                    );
                    self.mark_dirty(slot);
                }
            }
        }
        let me = ctx.shard_index();
        while let Some(r) = self.control.poll_report() {
            for k in (0..ctx.shards()).filter(|&k| k != me) {
                match ctx.send_control_to_shard(k, QuicMsg::Load(r)) {
                    Ok(()) => self.control.stats.reports_sent += 1,
                    Err(_) => self.control.stats.reports_lost += 1,
                }
            }
        }
        let next = self.control.due().map(|t| now + t.saturating_since(stamp));
        if self.control_timer.map(|(d, _)| d) != next {
            if let Some((_, id)) = self.control_timer.take() {
                ctx.cancel_timer(id);
            }
            if let Some(d) = next {
                match ctx.set_timer(d, CONTROL_TIMER) {
                    Ok(id) => self.control_timer = Some((d, id)),
                    // Checked again next turn.
                    Err(_) => self.stats.timer_refused += 1,
                }
            }
        }
    }

    /// Drives every connection marked dirty. The list trades places with a spare one that keeps
    /// its capacity, so a turn allocates nothing (taking it, as before, left an empty `Vec`
    /// that the next turn's first `mark_dirty` allocated again); a connection marked dirty
    /// meanwhile (out of send slots) waits in the other for the next turn.
    fn drive_dirty<M: Send>(&mut self, ctx: &mut Ctx<'_, M>) {
        let mut driving = std::mem::take(&mut self.driving);
        std::mem::swap(&mut driving, &mut self.dirty);
        for &ch in &driving {
            self.drive(ch, ctx);
        }
        driving.clear();
        self.driving = driving;
    }

    /// Handles a connection's events, sends what it has to send, re-arms its timer, and frees
    /// it once drained.
    fn drive<M: Send>(&mut self, ch: usize, ctx: &mut Ctx<'_, M>) {
        let now = ctx.now();
        let Self {
            endpoint,
            conns,
            app,
            buf,
            stats,
            dirty,
            unarmed,
            control,
            ..
        } = self;
        let Some(entry) = conns.get_mut(ch).and_then(Option::as_mut) else {
            return;
        };
        entry.dirty = false;
        loop {
            let mut progressed = false;
            while let Some(event) = entry.conn.poll_endpoint_events() {
                progressed = true;
                if let Some(back) = endpoint.handle_event(ConnectionHandle(ch), event) {
                    entry.conn.handle_event(back);
                }
            }
            while let Some(event) = entry.conn.poll() {
                progressed = true;
                if matches!(event, Event::Connected) {
                    entry.connected = true;
                    control.connected(control.stamp(now), entry.id);
                }
                dispatch(app, entry, event, now);
            }
            if !progressed {
                break;
            }
        }
        loop {
            let room = ctx.send_capacity();
            if room == 0 {
                stats.backlogged += 1;
                entry.dirty = true;
                dirty.push(ch);
                break;
            }
            buf.clear();
            let Some(t) = entry.conn.poll_transmit(now, room.min(MAX_BATCH), buf) else {
                break;
            };
            send(ctx, &t, buf, stats);
        }
        // Re-armed only when the deadline moves earlier (or goes): a live connection's
        // deadline moves later with nearly every packet (loss detection, idle), and a timer
        // that fires before it finds the deadline still ahead and is re-armed at it without
        // driving the connection (`on_timer`; D63, D82).
        let deadline = entry.conn.poll_timeout();
        let keep = matches!((entry.timer, deadline), (Some((armed, _)), Some(d)) if armed <= d);
        if !keep && entry.timer.map(|(d, _)| d) != deadline {
            arm(entry, ch, deadline, ctx, stats, unarmed);
        }
        if entry.conn.is_drained() {
            while let Some(event) = entry.conn.poll_endpoint_events() {
                let _ = endpoint.handle_event(ConnectionHandle(ch), event);
            }
            if let Some((_, id)) = entry.timer.take() {
                ctx.cancel_timer(id);
            }
            if !entry.reported {
                app.on_closed(entry.id, &ConnectionError::LocallyClosed);
            }
            control.freed(control.stamp(now), entry.id, entry.peer, entry.connected);
            conns[ch] = None;
            self.live -= 1;
            self.stats.closed += 1;
        }
    }
}

impl<A: QuicApp> QuicHost<A> {
    /// The load signal's, admission's and the manager's counters (`quic_refusals_<reason>`,
    /// `quic_trims_<reason>`, levels).
    fn control_counters(&self, out: &mut Vec<(&'static str, u64)>) {
        let n = |v: usize| v as u64;
        let l = self.control.stats;
        out.extend([
            ("quic_retries_connections", l.retries_connections),
            ("quic_retries_rate", l.retries_rate),
            ("quic_load_reports_sent", l.reports_sent),
            ("quic_load_reports_lost", l.reports_lost),
            ("quic_load_reports_received", l.reports_received),
        ]);
        if let Some(adm) = self.control.admission() {
            let a = adm.stats();
            for r in RefusalReason::ALL {
                out.push((refusal_counter(r), a.refused[r]));
            }
            out.extend([
                ("quic_admitted", a.admitted),
                ("quic_pending", n(a.pending)),
                ("quic_refusal_replies", a.replies),
                ("quic_memory_used", n(a.memory.used)),
                ("quic_node_ceiling", n(a.node.ceiling)),
                ("quic_node_peer_connections", n(a.node.peer_sessions)),
                ("quic_prefixes", n(a.prefixes.entries)),
            ]);
        }
        if let Some(m) = self.control.manager() {
            let st = m.stats();
            for r in TrimReason::ALL {
                out.push((trim_counter(r), st.trimmed[r]));
            }
            out.extend([
                ("quic_managed", n(st.sessions)),
                ("quic_protected", n(st.protected)),
                ("quic_high_share", n(st.high_share)),
                ("quic_trim_rounds", st.rounds),
                ("quic_trim_rounds_short", st.rounds_short),
            ]);
        }
    }
}

/// Sets `entry`'s one timer to `deadline` (cancelling the armed one), or notes a deadline the
/// timer set refused for the turn's check.
fn arm<M: Send>(
    entry: &mut Entry,
    ch: usize,
    deadline: Option<Instant>,
    ctx: &mut Ctx<'_, M>,
    stats: &mut QuicStats,
    unarmed: &mut Vec<usize>,
) {
    if let Some((_, id)) = entry.timer.take() {
        ctx.cancel_timer(id);
    }
    entry.unarmed = None;
    if let Some(d) = deadline {
        match ctx.set_timer(d, ch as u64) {
            Ok(id) => entry.timer = Some((d, id)),
            Err(_) => {
                stats.timer_refused += 1;
                entry.unarmed = Some(d);
                unarmed.push(ch);
            }
        }
    }
}

/// Turns one quinn event into the application's callback.
fn dispatch<A: QuicApp>(app: &mut A, entry: &mut Entry, event: Event, now: Instant) {
    if let Event::ConnectionLost { reason } = &event {
        entry.reported = true;
        app.on_closed(entry.id, reason);
        return;
    }
    let mut c = QuicConn {
        id: entry.id,
        conn: &mut entry.conn,
        now,
    };
    match event {
        Event::Connected => app.on_connected(&mut c),
        Event::Stream(StreamEvent::Opened { dir }) => {
            while let Some(stream) = c.conn.streams().accept(dir) {
                app.on_stream_opened(&mut c, stream);
                app.on_readable(&mut c, stream);
            }
        }
        Event::Stream(StreamEvent::Readable { id }) => app.on_readable(&mut c, id),
        Event::Stream(StreamEvent::Writable { id }) => app.on_writable(&mut c, id),
        Event::Stream(StreamEvent::Stopped { id, error_code }) => {
            app.on_stopped(&mut c, id, error_code);
        }
        Event::DatagramReceived => {
            while let Some(bytes) = c.conn.datagrams().recv() {
                app.on_datagram(&mut c, bytes);
            }
        }
        _ => {}
    }
}

/// Hands a transmit's datagrams (one, or several of `segment_size` bytes) to the send slots.
fn send<M: Send>(ctx: &mut Ctx<'_, M>, t: &Transmit, buf: &[u8], stats: &mut QuicStats) {
    let bytes = &buf[..t.size.min(buf.len())];
    let segment = t.segment_size.unwrap_or(bytes.len()).max(1);
    for datagram in bytes.chunks(segment) {
        match ctx.send_to(t.destination, datagram) {
            SendOutcome::Queued => stats.datagrams_out += 1,
            _ => stats.send_refused += 1,
        }
    }
}

impl<A: QuicApp> Handler for QuicHost<A> {
    type Message = QuicMsg;

    fn on_datagram(&mut self, peer: SocketAddr, payload: &[u8], ctx: &mut Ctx<'_, QuicMsg>) {
        self.stats.datagrams += 1;
        match owner_shard(payload, self.shards) {
            None => {
                self.stats.hashed += 1;
                self.receive(peer, BytesMut::from(payload), ctx);
            }
            Some(k) if k == self.shard => {
                self.stats.owned_here += 1;
                self.receive(peer, BytesMut::from(payload), ctx);
            }
            Some(k) => {
                let msg = QuicMsg::Handoff {
                    from: peer,
                    bytes: BytesMut::from(payload),
                };
                match ctx.send_to_shard(k, msg) {
                    Ok(()) => self.stats.handed_off += 1,
                    Err(MeshSendError::Full(_)) => self.stats.handoff_full += 1,
                    Err(_) => self.stats.handoff_closed += 1,
                }
            }
        }
    }

    fn on_message(&mut self, _from: usize, _lane: Lane, msg: QuicMsg, ctx: &mut Ctx<'_, QuicMsg>) {
        match msg {
            QuicMsg::Handoff { from, bytes } => {
                self.stats.handoffs_received += 1;
                self.receive(from, bytes, ctx);
            }
            QuicMsg::Load(report) => self.control.on_load_report(report),
        }
    }

    fn on_timer(&mut self, token: u64, ctx: &mut Ctx<'_, QuicMsg>) {
        if token == CONTROL_TIMER {
            self.control_timer = None;
            return;
        }
        let ch = token as usize;
        let now = ctx.now();
        let manages = self.control.manages();
        let Self {
            conns,
            stats,
            unarmed,
            ..
        } = self;
        if let Some(e) = conns.get_mut(ch).and_then(Option::as_mut) {
            e.timer = None;
            // Armed at an earlier deadline that has since moved later (`drive` re-arms only
            // when it moves earlier): nothing of the connection's is due, so `handle_timeout`
            // would find nothing expired, and nothing has changed since its last drive, which
            // sent all it could (or left it dirty). Re-armed at the real deadline, not driven:
            // quinn's own driver likewise calls `handle_timeout` only once its deadline has
            // passed (D82).
            let deadline = e.conn.poll_timeout();
            if deadline.is_some_and(|d| d > now) {
                stats.timers_early += 1;
                arm(e, ch, deadline, ctx, stats, unarmed);
                return;
            }
            e.conn.handle_timeout(now);
            // A connection's timers (loss detection, ACK delay, idle) are when its losses
            // reach the manager's score.
            let losses = manages.then(|| (e.id, e.conn.stats().path.lost_packets));
            self.mark_dirty(ch);
            if let Some((id, lost)) = losses {
                self.control.note_losses(id, lost);
            }
        }
    }

    fn on_turn(&mut self, ctx: &mut Ctx<'_, QuicMsg>) {
        let now = ctx.now();
        if !self.unarmed.is_empty() {
            let waiting = std::mem::take(&mut self.unarmed);
            for ch in waiting {
                let Some(e) = self.entry(ch) else { continue };
                match e.unarmed {
                    Some(d) if d <= now => {
                        e.unarmed = None;
                        e.conn.handle_timeout(now);
                        self.mark_dirty(ch);
                    }
                    Some(_) => self.unarmed.push(ch),
                    None => {}
                }
            }
        }
        self.run_control(ctx);
        self.drive_dirty(ctx);
    }

    fn counters(&self, out: &mut Vec<(&'static str, u64)>) {
        self.stats.append(out);
        out.push(("quic_connections", self.live as u64));
        self.control_counters(out);
        self.app.counters(out);
    }

    /// A one-line summary (connections, accepted, closed, refused, retries, handoffs), then
    /// one item per connection of the page (`quic/report.rs`).
    fn report(&self, request: &ReportRequest, page: &mut ReportPage) -> Option<u64> {
        use std::fmt::Write;
        let s = &self.stats;
        let _ = write!(
            page.summary,
            "quic connections={} accepted={} closed={} refused={} retries={} handed_off={} \
             handoffs_received={} backlogged={}",
            self.live,
            s.accepted,
            s.closed,
            s.refused_full
                + s.refused_by_app
                + s.refused_draining
                + self
                    .control
                    .admission()
                    .map_or(0, |a| a.stats().refused.total()),
            s.retries,
            s.handed_off,
            s.handoffs_received,
            s.backlogged,
        );
        let scanned = request.scan(self.control.keys());
        page.items = super::report::items(request, &scanned.keys, |key| {
            let e = self.conns.get(self.control.slot_of(key)?)?.as_ref()?;
            Some(super::report::Row {
                key,
                conn: &e.conn,
                connected: e.connected,
            })
        });
        scanned.next
    }

    fn on_shutdown(&mut self, ctx: &mut Ctx<'_, QuicMsg>) {
        self.draining = true;
        let now = ctx.now();
        for ch in 0..self.conns.len() {
            if let Some(e) = self.entry(ch) {
                e.conn.close(
                    now,
                    VarInt::from_u32(0),
                    bytes::Bytes::from_static(b"shutting down"),
                );
                self.mark_dirty(ch);
            }
        }
        // Hand the CONNECTION_CLOSE packets to send slots now: the loop may park before its
        // next `on_turn`, and nothing else would wake it before a connection's timer.
        self.drive_dirty(ctx);
    }

    fn drained(&self) -> bool {
        self.dirty.is_empty()
            && self
                .conns
                .iter()
                .flatten()
                .all(|e| e.conn.is_closed() || e.conn.is_drained())
    }
}
