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
//!   cancelled and re-armed only when the deadline moves).
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
use super::config::{QuicConfigError, QuicOptions};
use super::stats::QuicStats;
use crate::handler::{Ctx, Handler, Lane, MeshSendError, SendOutcome};
use crate::report::{ReportPage, ReportRequest};
use crate::timer::TimerId;

/// Most datagrams one `poll_transmit` may return: the driver's largest GSO send.
const MAX_BATCH: usize = 64;

/// What QUIC hosts send each other over the mesh.
#[derive(Debug)]
pub enum QuicMsg {
    /// A datagram whose CID names the receiving shard, read by another.
    Handoff {
        /// Its source.
        from: SocketAddr,
        /// Its bytes.
        bytes: Box<[u8]>,
    },
}

/// One connection and the host's bookkeeping for it.
struct Entry {
    id: QuicConnId,
    conn: quinn_proto::Connection,
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
    retry: bool,
    /// Indexed by `ConnectionHandle`: the endpoint's slab index.
    conns: Vec<Option<Entry>>,
    live: usize,
    dirty: Vec<usize>,
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
        // Path MTU discovery needs datagrams the network never fragments (IP_PMTUDISC_DO),
        // which the shard's socket does not ask for: QUIC's 1200-byte floor it is.
        let endpoint = Endpoint::new(Arc::new(config), Some(server), false, None);
        Ok(Self {
            shard,
            shards,
            endpoint,
            max_connections: options.max_connections_per_shard,
            retry: options.retry,
            conns: Vec::new(),
            live: 0,
            dirty: Vec::new(),
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

    /// Gives one datagram to the endpoint.
    fn receive<M: Send>(&mut self, from: SocketAddr, bytes: &[u8], ctx: &mut Ctx<'_, M>) {
        self.stats.to_endpoint += 1;
        let now = ctx.now();
        self.buf.clear();
        let event =
            self.endpoint
                .handle(now, from, None, None, BytesMut::from(bytes), &mut self.buf);
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
            let t = self.endpoint.refuse(incoming, &mut self.buf);
            self.stats.stateless_out += 1;
            send(ctx, &t, &self.buf, &mut self.stats);
            return;
        }
        if self.retry && !incoming.remote_address_validated() && incoming.may_retry() {
            match self.endpoint.retry(incoming, &mut self.buf) {
                Ok(t) => {
                    self.stats.retries += 1;
                    send(ctx, &t, &self.buf, &mut self.stats);
                }
                Err(e) => self.endpoint.ignore(e.into_incoming()),
            }
            return;
        }
        match self.endpoint.accept(incoming, now, &mut self.buf, None) {
            Ok((ch, conn)) => {
                let seq = self.next_seq;
                self.next_seq += 1;
                let id = QuicConnId(((self.shard as u64) << 48) | (seq & ((1 << 48) - 1)));
                if self.conns.len() <= ch.0 {
                    self.conns.resize_with(ch.0 + 1, || None);
                }
                self.conns[ch.0] = Some(Entry {
                    id,
                    conn,
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
                self.stats.accept_failed += 1;
                tracing::debug!(shard = self.shard, cause = %e.cause, "QUIC connection not accepted");
                if let Some(t) = e.response {
                    self.stats.stateless_out += 1;
                    send(ctx, &t, &self.buf, &mut self.stats);
                }
            }
        }
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
        let deadline = entry.conn.poll_timeout();
        if entry.timer.map(|(d, _)| d) != deadline {
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
            conns[ch] = None;
            self.live -= 1;
            self.stats.closed += 1;
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
                self.receive(peer, payload, ctx);
            }
            Some(k) if k == self.shard => {
                self.stats.owned_here += 1;
                self.receive(peer, payload, ctx);
            }
            Some(k) => {
                let msg = QuicMsg::Handoff {
                    from: peer,
                    bytes: payload.into(),
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
                self.receive(from, &bytes, ctx);
            }
        }
    }

    fn on_timer(&mut self, token: u64, ctx: &mut Ctx<'_, QuicMsg>) {
        let ch = token as usize;
        let now = ctx.now();
        if let Some(e) = self.entry(ch) {
            e.timer = None;
            e.conn.handle_timeout(now);
            self.mark_dirty(ch);
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
        let dirty = std::mem::take(&mut self.dirty);
        for ch in dirty {
            self.drive(ch, ctx);
        }
    }

    fn counters(&self, out: &mut Vec<(&'static str, u64)>) {
        self.stats.append(out);
        out.push(("quic_connections", self.live as u64));
        self.app.counters(out);
    }

    /// A one-line summary (connections, accepted, closed, refused, handoffs); no items yet.
    fn report(&self, _request: &ReportRequest, page: &mut ReportPage) -> Option<u64> {
        use std::fmt::Write;
        let s = &self.stats;
        let _ = write!(
            page.summary,
            "quic connections={} accepted={} closed={} refused={} retries={} handed_off={} \
             handoffs_received={} backlogged={}",
            self.live,
            s.accepted,
            s.closed,
            s.refused_full + s.refused_by_app + s.refused_draining,
            s.retries,
            s.handed_off,
            s.handoffs_received,
            s.backlogged,
        );
        None
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
        let dirty = std::mem::take(&mut self.dirty);
        for ch in dirty {
            self.drive(ch, ctx);
        }
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
