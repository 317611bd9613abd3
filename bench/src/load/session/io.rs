//! [`SessionIo`]: one client [`Endpoint`] driving sessions over peer sockets.
//!
//! Session `i` sends from socket `i % sockets`: a socket (one source address and port) may
//! carry many sessions, which the server tells apart by connection ID, so a few thousand
//! sockets carry a million sessions. The [`Transport`]'s "peers" are the sessions.
//!
//! Receive: only the sockets epoll reports ready are read, with `recvmmsg`,
//! and every datagram goes to `Endpoint::handle_datagram`. Send: the
//! endpoint's transmits are written straight into a `sendmmsg` batch, and
//! runs of consecutive transmits of the same session go out in one call.
//! `Transmit.conn` picks the session, and so its socket.
//!
//! Bulk mode (`--bulk`): the peers read with `UDP_GRO` and split each buffer
//! into its datagrams; a run of one session's transmits of one size (the last
//! may be shorter) goes out as `UDP_SEGMENT` sends (GSO) instead of a
//! `sendmmsg`.

use super::codec::{self, Flavor, Incoming};
use crate::load::payload::Probe;
use crate::load::peers::PeerSet;
use crate::load::transport::{Sink, Transport, ns_since};
use crate::load::worker::{BATCH, Reply};
use crate::sys::gso::{self, GroBatch};
use crate::sys::mmsg::MmsgBatch;
use ringwire_shard::session::{
    CloseReason, ConnId, ConnIdGen, ConnectError, Endpoint, EndpointConfig, EndpointError, Event,
    Keypair, PublicKey, SendOutcome, SessionClock, Timestamp,
};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

/// Client endpoint settings the load generator may change from the library's defaults.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientTuning {
    /// Keepalive interval: `Some(None)` turns keepalives off, `None` keeps the default.
    pub keepalive: Option<Option<std::time::Duration>>,
    /// Idle timeout (`None`: the default).
    pub idle_timeout: Option<std::time::Duration>,
    /// Send-key lifetime (`None`: the default, 120 s).
    pub rekey_after: Option<std::time::Duration>,
    /// First Initiation retransmission delay (`None`: the default, 500 ms); the maximum
    /// delay becomes 4 times it and the handshake timeout at least 8 times it. A million
    /// handshakes queue behind the server's Diffie-Hellman work for longer than 500 ms, and
    /// every retransmitted Initiation costs both sides a new handshake.
    pub handshake_rto: Option<std::time::Duration>,
}

/// How long after a session ended it is opened again (traffic phase).
const REOPEN_AFTER: std::time::Duration = std::time::Duration::from_millis(100);

/// Relay: how long a connected session waits for its Welcome (one datagram, which the network
/// may lose) before the client closes it: it then fails (handshake phase) or is opened again
/// (traffic phase) rather than waiting for ever.
const WELCOME_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// A worker's sessions over its peer sockets, all on one client endpoint.
pub struct SessionIo {
    peers: PeerSet,
    target: SocketAddr,
    server_key: Option<PublicKey>,
    flavor: Flavor,
    ep: Endpoint,
    origin: Instant,
    conns: Vec<Option<ConnId>>,
    by_conn: HashMap<ConnId, usize>,
    relay_ids: Vec<Option<u64>>,
    /// Each session's relay ID before it was opened again (probes sent to the old one may
    /// still arrive).
    old_relay_ids: Vec<Option<u64>>,
    ready: Vec<bool>,
    /// Traffic phase: a session that ends is opened again ([`SessionIo::reopen_lost_sessions`]).
    reopen: bool,
    /// Sessions that ended, to open again from the given time on, oldest first.
    lost: VecDeque<(usize, Timestamp)>,
    /// Sessions being opened again (counted when ready).
    reopening: Vec<bool>,
    /// Relay: connected sessions and when their Welcome is due at the latest, oldest first.
    awaiting_welcome: VecDeque<(usize, ConnId, Timestamp)>,
    ready_count: usize,
    failed: usize,
    rx: MmsgBatch,
    /// Sessions (the transport's peers); session `i` uses socket `i % peers.len()`.
    sessions: usize,
    /// Bulk mode: coalesced buffers are read here instead of `rx`.
    gro: Option<GroBatch>,
    /// Bulk mode: a run of transmits copied back to back for one GSO send.
    run: Vec<u8>,
    tx: MmsgBatch,
    tx_conn: Vec<Option<ConnId>>,
    payload_len: usize,
    staging: Vec<u8>,
    staged_len: Vec<usize>,
    scratch: Vec<u8>,
    /// Events of the datagrams the last poll read, each with the time it was decrypted and
    /// the kernel's receive time (ns since the sink's epoch), for [`SessionIo::drain_events`].
    stamped: Vec<(Event, u64, Option<u64>)>,
    send_errors: u64,
    /// Datagrams in the send calls that failed.
    send_failed: u64,
}

/// A value drawn once per process (std's per-process hash keys, from the OS).
fn process_salt() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    static SALT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SALT.get_or_init(|| {
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    })
}

impl SessionIo {
    /// `sessions` sessions over `peers` to `target` (whose static public key is `server_key`),
    /// for `payload_len`-byte probes; `seed` picks the client's identity and, with a value
    /// drawn once per process, its connection IDs (so that a second run against the same
    /// server, whose sessions from the first are still alive, is not taken for a late
    /// retransmission of the first's handshakes: same key and CID); `bulk`: bulk mode (the
    /// peers opened for it); `plaintext`: sessions without Noise (`security = none`). The
    /// client's own identity is a keypair derived from `seed`. Call on the worker thread.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        peers: PeerSet,
        sessions: usize,
        tuning: ClientTuning,
        target: SocketAddr,
        server_key: Option<PublicKey>,
        plaintext: bool,
        flavor: Flavor,
        payload_len: usize,
        seed: u64,
        bulk: bool,
    ) -> Result<Self, EndpointError> {
        let identity = Keypair::from_seed_bytes(ConnIdGen::seed_from_u64(seed ^ 0x1d));
        let cookie_key = ConnIdGen::seed_from_u64(!seed);
        let mut config = if plaintext {
            EndpointConfig::plaintext(cookie_key)
        } else {
            EndpointConfig::new(cookie_key, identity)
        };
        config.accept_incoming = false;
        let clock = SessionClock::start();
        config.unix_time_at_origin = clock.unix_time_at_origin();
        config.max_sessions = config.max_sessions.max(sessions);
        if let Some(k) = tuning.keepalive {
            config.keepalive_interval = k;
        }
        if let Some(t) = tuning.idle_timeout {
            config.idle_timeout = t;
        }
        if let Some(t) = tuning.rekey_after {
            config.rekey_after = t;
        }
        if let Some(rto) = tuning.handshake_rto {
            config.handshake_initial_rto = rto;
            config.handshake_max_rto = config.handshake_max_rto.max(rto * 4);
            config.handshake_timeout = config.handshake_timeout.max(rto * 8);
        }
        let max_datagram = config.max_datagram();

        let ep = Endpoint::new(
            config,
            0,
            1,
            ConnIdGen::seed_from_u64(seed ^ process_salt()),
            Timestamp::ZERO,
        )?;
        let n = sessions;
        Ok(Self {
            peers,
            sessions,
            target,
            server_key,
            flavor,
            ep,
            origin: clock.origin(),
            conns: vec![None; n],
            by_conn: HashMap::with_capacity(n),
            relay_ids: vec![None; n],
            old_relay_ids: vec![None; n],
            ready: vec![false; n],
            reopen: false,
            lost: VecDeque::new(),
            reopening: vec![false; n],
            awaiting_welcome: VecDeque::new(),
            ready_count: 0,
            failed: 0,
            rx: if flavor == Flavor::Fanout {
                MmsgBatch::new(BATCH, max_datagram, false).with_timestamps()
            } else {
                MmsgBatch::new(BATCH, max_datagram, false)
            },
            gro: bulk.then(|| GroBatch::new(8, false)),
            run: Vec::with_capacity(if bulk { gso::MAX_GSO_BYTES } else { 0 }),
            tx: MmsgBatch::new(BATCH, max_datagram, false),
            tx_conn: vec![None; BATCH],
            payload_len,
            staging: vec![0; BATCH * payload_len],
            staged_len: vec![0; BATCH],
            scratch: Vec::with_capacity(max_datagram),
            stamped: Vec::with_capacity(BATCH),
            send_errors: 0,
            send_failed: 0,
        })
    }

    fn now(&self) -> Timestamp {
        Timestamp(u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    /// The socket session `session` sends from.
    fn socket_of(&self, session: usize) -> usize {
        session % self.peers.len().max(1)
    }

    /// Fan-out: every session but the publisher (session 0) subscribes to it. Call once all
    /// are ready; the Subscribes leave at once.
    pub fn subscribe_all(&mut self) {
        for i in 1..self.sessions {
            self.subscribe(i);
            if i % 256 == 0 {
                self.flush();
            }
        }
        self.flush();
    }

    /// Fan-out: queues subscriber `i`'s Subscribe to the publisher's current relay ID, if both
    /// are ready ([`SessionIo::flush`] sends it).
    fn subscribe(&mut self, i: usize) {
        let Some(publisher) = self.relay_ids[0].filter(|_| self.ready[0]) else {
            return;
        };
        if let Some(c) = self.conns[i].filter(|_| self.ready[i]) {
            let msg = ringwire::apps::relay::RelayMsg::Subscribe {
                publisher_conn_id: publisher,
            }
            .to_vec();
            let _ = self.ep.send(self.now(), c, &msg);
        }
    }

    /// Starts peer `peer`'s handshake (queues its Initiation; [`SessionIo::flush`]
    /// sends it).
    pub fn connect(&mut self, peer: usize) -> Result<(), ConnectError> {
        let conn = self.ep.connect(self.now(), self.target, self.server_key)?;
        self.conns[peer] = Some(conn);
        self.by_conn.insert(conn, peer);
        Ok(())
    }

    /// Sessions ready for traffic: established (session echo) or welcomed
    /// with their relay ID (relay).
    #[must_use]
    pub fn ready_count(&self) -> usize {
        self.ready_count
    }

    /// Sessions that ended (handshake timeout, or closed later).
    #[must_use]
    pub fn failed_count(&self) -> usize {
        self.failed
    }

    /// Sends every datagram the endpoint has queued.
    pub fn flush(&mut self) {
        let now = self.now();
        let (mut start, mut k) = (0, 0);
        let mut group: Option<usize> = None;
        while let Some(t) = self.ep.poll_transmit(now, self.tx.slot_mut(k)) {
            let Some(peer) = t.conn.and_then(|c| self.by_conn.get(&c)).copied() else {
                continue;
            };
            if let Some(g) = group.filter(|&g| g != peer) {
                self.send_run(g, start, k);
                start = k;
            }
            self.tx.set_len(k, t.len);
            self.tx_conn[k] = t.conn;
            group = Some(peer);
            k += 1;
            if k == BATCH {
                self.send_run(peer, start, k);
                (start, k, group) = (0, 0, None);
            }
        }
        if let Some(g) = group {
            self.send_run(g, start, k);
        }
    }

    /// Sends batch slots `start..end`, all of `peer`'s session, in one call
    /// (bulk mode: as GSO sends when they are of one size).
    fn send_run(&mut self, session: usize, start: usize, end: usize) {
        let fd = self.peers.fd(self.socket_of(session));
        let sent = match self.segmented(start, end) {
            Some(segment) => gso::send_segmented(fd, &self.run, segment),
            None => self.tx.send(fd, start, end, 0),
        };
        let sent = match sent {
            Ok(m) => m,
            Err(_) => {
                self.send_errors += 1;
                self.send_failed += (end - start) as u64;
                0
            }
        };
        for i in start..end {
            if let Some(conn) = self.tx_conn[i] {
                self.ep.on_send_completed(conn, i < start + sent);
            }
        }
    }

    /// Bulk mode: when slots `start..end` hold two or more datagrams of one
    /// size (the last may be shorter), copies them back to back into `run`
    /// and returns the size.
    fn segmented(&mut self, start: usize, end: usize) -> Option<usize> {
        self.gro.as_ref()?;
        let segment = self.tx.staged(start).len();
        let last = end.checked_sub(1).filter(|l| *l > start)?;
        let fits = (start..last).all(|i| self.tx.staged(i).len() == segment)
            && (1..=segment).contains(&self.tx.staged(last).len());
        if !fits {
            return None;
        }
        self.run.clear();
        for i in start..end {
            self.run.extend_from_slice(self.tx.staged(i));
        }
        Some(segment)
    }

    /// Marks `peer` ready; counts it reopened if it was being opened again. Fan-out, traffic
    /// phase: a subscriber opened again subscribes to the publisher, and a publisher opened
    /// again (a new relay ID; its old subscriptions went with its old session) is subscribed
    /// to by every ready subscriber.
    fn mark_ready(&mut self, peer: usize, sink: &mut Sink<'_>) {
        if !self.ready[peer] {
            self.ready[peer] = true;
            self.ready_count += 1;
            if std::mem::take(&mut self.reopening[peer]) {
                sink.stats.sessions_reopened += 1;
                if self.flavor == Flavor::Fanout {
                    if peer == 0 {
                        self.subscribe_all();
                    } else {
                        self.subscribe(peer);
                        self.flush();
                    }
                }
            }
        }
    }

    /// From now on (the traffic phase), a session that ends (closed by the server, timed
    /// out) is counted in `sessions_lost` and opened again 100 ms later, until it
    /// is ready (`sessions_reopened`); probes in flight on it are lost. Without this a
    /// restarted server would leave the run with no session to send on.
    pub fn reopen_lost_sessions(&mut self) {
        self.reopen = true;
    }

    /// Relay: closes the connected sessions whose Welcome did not come in [`WELCOME_WAIT`]
    /// (their `Disconnected` follows).
    fn close_unwelcomed(&mut self, now: Timestamp) {
        while let Some(&(peer, conn, due)) = self.awaiting_welcome.front() {
            if due > now {
                break;
            }
            self.awaiting_welcome.pop_front();
            if self.conns[peer] == Some(conn) && !self.ready[peer] {
                let _ = self.ep.close(now, conn, CloseReason::Normal);
            }
        }
    }

    /// Opens again the lost sessions whose time has come, as many as the control queue
    /// takes.
    fn reopen_due(&mut self, now: Timestamp) {
        while let Some(&(peer, at)) = self.lost.front() {
            if at > now {
                break;
            }
            match self.connect(peer) {
                Ok(()) => {
                    self.lost.pop_front();
                }
                // The control queue is full: the rest waits for the next poll.
                Err(ConnectError::ControlQueueFull) => break,
                // Anything else (a session limit): try again later.
                Err(_) => {
                    self.lost.pop_front();
                    self.lost
                        .push_back((peer, now.saturating_add(REOPEN_AFTER)));
                    break;
                }
            }
        }
    }

    /// Drains the endpoint's events: lifecycle into the peer states, probes
    /// into `out`. Messages of datagrams read by [`Transport::poll`] carry the times taken
    /// when each was decrypted (and the kernel's, with receive timestamps); any other event is
    /// stamped now.
    fn drain_events(&mut self, sink: &mut Sink<'_>) {
        let mut stamped = std::mem::take(&mut self.stamped);
        for (event, recv_ns, kernel_ns) in stamped.drain(..) {
            self.on_event(event, recv_ns, kernel_ns, sink);
        }
        self.stamped = stamped;
        let recv_ns = ns_since(sink.epoch);
        while let Some(event) = self.ep.poll_event() {
            self.on_event(event, recv_ns, None, sink);
        }
    }

    fn on_event(
        &mut self,
        event: Event,
        recv_ns: u64,
        kernel_ns: Option<u64>,
        sink: &mut Sink<'_>,
    ) {
        match event {
            Event::Connected { conn, .. } => {
                if let Some(&p) = self.by_conn.get(&conn) {
                    if self.flavor == Flavor::Echo {
                        self.mark_ready(p, sink);
                    } else {
                        let due = self.now().saturating_add(WELCOME_WAIT);
                        self.awaiting_welcome.push_back((p, conn, due));
                    }
                }
            }
            Event::Message { conn, bytes } => {
                let Some(&p) = self.by_conn.get(&conn) else {
                    return;
                };
                match codec::unwrap(self.flavor, &bytes) {
                    Incoming::Welcome(id) => {
                        if let Some(old) = self.relay_ids[p].replace(id) {
                            self.old_relay_ids[p] = Some(old);
                        }
                        self.mark_ready(p, sink);
                    }
                    Incoming::Probe { src, bytes } => {
                        let from = codec::partner(self.flavor, p);
                        let probe = Probe::decode(bytes);
                        match probe {
                            Some(probe)
                                if src.is_none()
                                    || src == self.relay_ids[from]
                                    || src == self.old_relay_ids[from] =>
                            {
                                // Fan-out: the probe names the peer the loop sent it
                                // as, whichever subscriber received it.
                                let peer = match self.flavor {
                                    Flavor::Fanout => probe.peer as usize,
                                    _ => from,
                                };
                                sink.out.push(Reply {
                                    peer,
                                    probe,
                                    recv_ns,
                                    kernel_ns,
                                });
                            }
                            _ => sink.stats.misrouted += 1,
                        }
                    }
                    Incoming::Unreachable => sink.stats.unreachable += 1,
                    Incoming::Other => sink.stats.misrouted += 1,
                }
            }
            Event::Disconnected { conn, .. } => {
                if let Some(p) = self.by_conn.remove(&conn) {
                    self.conns[p] = None;
                    self.failed += 1;
                    if std::mem::take(&mut self.ready[p]) {
                        self.ready_count -= 1;
                    }
                    if self.reopen {
                        // Counted once until it is ready again (a reopening attempt
                        // that fails is tried again, not counted again).
                        if !std::mem::replace(&mut self.reopening[p], true) {
                            sink.stats.sessions_lost += 1;
                        }
                        let at = self.now().saturating_add(REOPEN_AFTER);
                        self.lost.push_back((p, at));
                    }
                }
            }
        }
    }
}

impl Transport for SessionIo {
    fn peer_count(&self) -> usize {
        self.sessions
    }

    fn copies(&self) -> u64 {
        match self.flavor {
            Flavor::Fanout => self.ready_count.saturating_sub(1) as u64,
            _ => 1,
        }
    }

    fn slot_mut(&mut self, j: usize) -> &mut [u8] {
        let len = self.payload_len;
        &mut self.staging[j * len..(j + 1) * len]
    }

    fn set_len(&mut self, j: usize, len: usize) {
        self.staged_len[j] = len.min(self.payload_len);
    }

    fn send(&mut self, peer: usize, n: usize) -> io::Result<usize> {
        // Fan-out: the publisher sends every probe, whichever peer the loop picked.
        let peer = if self.flavor == Flavor::Fanout {
            0
        } else {
            peer
        };
        let to = codec::partner(self.flavor, peer);
        let conn = match self.conns[peer] {
            Some(c) if self.ready[peer] && self.ready[to] => c,
            _ => return Ok(0),
        };
        let dst = self.relay_ids[to].unwrap_or(0);
        let now = self.now();
        let mut sent = 0;
        for j in 0..n.min(BATCH) {
            let at = j * self.payload_len;
            let probe = &self.staging[at..at + self.staged_len[j]];
            let msg = codec::wrap(self.flavor, dst, probe, &mut self.scratch);
            match self.ep.send(now, conn, msg) {
                SendOutcome::Queued => sent += 1,
                _ => break,
            }
        }
        self.flush();
        Ok(sent)
    }

    fn finish(&mut self, stats: &mut crate::load::stats::WorkerStats) {
        stats.endpoint_drops += self.ep.stats().drops.total();
        stats.send_failed += self.send_failed;
    }

    fn poll(&mut self, timeout_ms: i32, sink: &mut Sink<'_>) -> io::Result<()> {
        let now = self.now();
        let (ep, target, stamped) = (&mut self.ep, self.target, &mut self.stamped);
        let epoch = sink.epoch;
        // The wall clock at the epoch, to place the kernel's receive times (`CLOCK_REALTIME`)
        // on the run's clock.
        let wall_epoch = SystemTime::now().checked_sub(epoch.elapsed());
        // Each datagram's events are stamped as soon as it is decrypted, not once per poll:
        // a fan-out client reads many copies per poll, and the last one's decryption is no
        // part of the first one's latency. Drops are counted by the endpoint; nothing else to
        // do with its verdicts.
        let errors = match &mut self.gro {
            None => self
                .peers
                .for_each_ready(timeout_ms, &mut self.rx, |_, rx, n| {
                    for i in 0..n {
                        let _ = ep.handle_datagram(now, target, rx.received(i));
                        let recv_ns = ns_since(epoch);
                        let kernel_ns = rx.kernel_ns_since(i, wall_epoch);
                        while let Some(e) = ep.poll_event() {
                            stamped.push((e, recv_ns, kernel_ns));
                        }
                    }
                })?,
            Some(gro) => self.peers.for_each_ready(timeout_ms, gro, |_, rx, n| {
                for i in 0..n {
                    for datagram in rx.datagrams(i) {
                        let _ = ep.handle_datagram(now, target, datagram);
                        let recv_ns = ns_since(epoch);
                        while let Some(e) = ep.poll_event() {
                            stamped.push((e, recv_ns, None));
                        }
                    }
                }
            })?,
        };
        sink.stats.errors += errors + std::mem::take(&mut self.send_errors);
        let now = self.now();
        if self.ep.poll_timeout().is_some_and(|t| t <= now) {
            self.ep.handle_timeout(now);
        }
        self.flush();
        self.drain_events(sink);
        if !self.awaiting_welcome.is_empty() {
            self.close_unwelcomed(self.now());
            self.flush();
            self.drain_events(sink);
        }
        if !self.lost.is_empty() {
            self.reopen_due(self.now());
            self.flush();
        }
        Ok(())
    }
}
