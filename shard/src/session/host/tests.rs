//! The host's own rules, driven without a ring: construction checks here; the loop-level
//! behaviour (timers, carry-over, mesh lanes) below with a hand-built [`Ctx`].
#![allow(clippy::unwrap_used)]

use super::*;
use crate::counters::Counters;
use crate::driver::SendSlots;
use crate::mesh::{MeshConfig, MeshEnd, SharedWake};
use crate::timer::Timers;

struct Quiet;

impl SessionApp for Quiet {
    fn on_message(&mut self, _conn: ConnId, _bytes: &[u8], _s: &mut Sessions<'_, '_>) {}
}

/// Plaintext mode: these tests are about the loop, not the cryptography (the sans-IO tests
/// cover that), and 4000 Noise handshakes would dominate their time.
fn config() -> EndpointConfig {
    let mut c = EndpointConfig::plaintext([3; 32]);
    // Thousands of clients open at one instant here; the cookie rate limit is not under test.
    c.cookie_replies_per_second = 1_000_000;
    c
}

#[test]
fn refuses_a_shard_datagram_smaller_than_the_session_layers() {
    let clock = SessionClock::start();
    let needed = config().max_datagram();
    let small = Placement::new(clock, 0, 1, 64);
    let err = SessionHost::new(config(), small, [1; 32], Quiet)
        .err()
        .unwrap();
    assert_eq!(err, HostError::MaxDatagram { shard: 64, needed });
    assert!(err.to_string().contains("shard.max_datagram"), "{err}");
    let exact = Placement::new(clock, 0, 1, needed);
    assert!(SessionHost::new(config(), exact, [1; 32], Quiet).is_ok());
    let bad_index = Placement::new(clock, 2, 2, needed);
    assert!(matches!(
        SessionHost::new(config(), bad_index, [1; 32], Quiet),
        Err(HostError::Endpoint(EndpointError::ShardIndex { .. }))
    ));
}

/// What the driver lends a handler for one callback, built by hand: send slots, timers,
/// counters and each shard's end of a mesh. (The one place these tests know `Ctx`'s fields.)
struct Rig {
    slots: SendSlots,
    timers: Timers,
    counters: Counters,
    mesh: Vec<MeshEnd<SessionMsg>>,
    now: Instant,
}

struct NoWake;

impl crate::ring::Wake for NoWake {
    fn wake(&self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Rig {
    fn new(shards: usize, slots: usize, max_timers: usize, mesh: MeshConfig) -> Self {
        let wakers: Vec<SharedWake> = (0..shards)
            .map(|_| std::sync::Arc::new(NoWake) as SharedWake)
            .collect();
        Rig {
            slots: SendSlots::new(slots, config().max_datagram()),
            timers: Timers::new(max_timers),
            counters: Counters::default(),
            mesh: if shards == 1 {
                vec![MeshEnd::solo(0)]
            } else {
                MeshEnd::build(mesh, &wakers)
            },
            now: Instant::now(),
        }
    }

    fn ctx(&mut self, shard: usize) -> Ctx<'_, SessionMsg> {
        Ctx {
            now: self.now,
            shard,
            slots: &mut self.slots,
            timers: &mut self.timers,
            counters: &mut self.counters,
            mesh: &mut self.mesh[shard],
            received: None,
            submit: None,
        }
    }

    /// Messages waiting for `shard`, by lane.
    fn inbound(&mut self, shard: usize) -> Vec<(usize, Lane, SessionMsg)> {
        let mut out = Vec::new();
        while self.mesh[shard].take_inbound(&mut out) {}
        out
    }

    /// Submits and completes every staged send, as the kernel would; returns the datagrams.
    fn complete_sends(&mut self, host: &mut impl Handler) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut sent = Vec::new();
        let mut tokens = Vec::new();
        while let Some((_, token)) = self.slots.staged(tokens.len()) {
            let (to, bytes) = self.slots.staged_datagram(tokens.len());
            sent.push((to.unwrap(), bytes));
            tokens.push(token);
        }
        self.slots.mark_submitted(tokens.len());
        for (token, (_, bytes)) in tokens.into_iter().zip(&sent) {
            let tag = self.slots.complete(token).unwrap();
            host.on_send_complete(tag, Ok(bytes.len()));
        }
        sent
    }

    /// One loop turn's timer step and `on_turn`, at `self.now`, as the driver runs them.
    fn turn(&mut self, host: &mut impl Handler<Message = SessionMsg>, shard: usize) {
        let mut fired = Vec::new();
        self.timers.expire(self.now, &mut fired);
        for (_, token) in fired {
            host.on_timer(token, &mut self.ctx(shard));
        }
        host.on_turn(&mut self.ctx(shard));
    }
}

fn host(clock: SessionClock, shard: usize, shards: usize) -> SessionHost<Quiet> {
    let place = Placement::new(clock, shard, shards, config().max_datagram());
    SessionHost::new(config(), place, [shard as u8 + 1; 32], Quiet).unwrap()
}

fn peer(port: u16) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], port))
}

/// Lets a test act as the application inside a callback.
fn with_sessions<R>(
    host: &mut SessionHost<Quiet>,
    ctx: &mut Ctx<'_, SessionMsg>,
    f: impl FnOnce(&mut Sessions<'_, '_>) -> R,
) -> R {
    let now = host.clock.stamp(ctx.now());
    let mut s = Sessions {
        ep: &mut host.ep,
        ctx,
        buf: &mut host.buf,
        stats: &mut host.stats,
        now,
    };
    let r = f(&mut s);
    host.pump(ctx);
    r
}

#[test]
fn app_messages_take_the_lane_asked_for_and_every_outcome_is_counted() {
    let clock = SessionClock::start();
    let mesh = MeshConfig {
        control_capacity: 1,
        data_capacity: 2,
        data_batch: 8,
    };
    let mut rig = Rig::new(2, 64, 16, mesh);
    let mut h0 = host(clock, 0, 2);
    let mut ctx = rig.ctx(0);
    let got = with_sessions(&mut h0, &mut ctx, |s| {
        [
            s.send_to_shard(1, Lane::Control, b"c1"),
            s.send_to_shard(1, Lane::Control, b"c2"),
            s.send_to_shard(1, Lane::Data, b"d1"),
            s.send_to_shard(1, Lane::Data, b"d2"),
            s.send_to_shard(1, Lane::Data, b"d3"),
            // Not to itself, nor to a shard that does not exist.
            s.send_to_shard(0, Lane::Data, b"self"),
            s.send_to_shard(7, Lane::Control, b"none"),
        ]
    });
    use ShardSend::{Closed, Full, Sent};
    assert_eq!(got, [Sent, Full, Sent, Sent, Full, Closed, Closed]);
    let st = h0.stats();
    assert_eq!(
        (st.app_sent, st.app_lane_full, st.app_lane_closed),
        (3, 2, 2)
    );
    let got: Vec<(Lane, Vec<u8>)> = rig
        .inbound(1)
        .into_iter()
        .map(|(from, lane, m)| {
            assert_eq!(from, 0);
            match m {
                SessionMsg::App { bytes } => (lane, bytes.to_vec()),
                other => panic!("{other:?}"),
            }
        })
        .collect();
    assert_eq!(
        got,
        [
            (Lane::Control, b"c1".to_vec()),
            (Lane::Data, b"d1".to_vec()),
            (Lane::Data, b"d2".to_vec()),
        ]
    );
}

#[test]
fn close_and_connect_take_the_control_lane_and_every_relay_outcome_is_counted() {
    let clock = SessionClock::start();
    let mesh = MeshConfig {
        control_capacity: 2,
        data_capacity: 2,
        data_batch: 8,
    };
    let mut rig = Rig::new(2, 64, 16, mesh);
    let mut h0 = host(clock, 0, 2);
    // A connection ID owned by shard 1 (top byte 1).
    let remote = ConnId(1 << 56 | 0x2a);
    let mut ctx = rig.ctx(0);
    let (sends, closes) = with_sessions(&mut h0, &mut ctx, |s| {
        let sends = [
            s.send(remote, b"a"),
            s.send(remote, b"b"),
            s.send(remote, b"c"),
        ];
        let closes = [
            s.close(remote, CloseReason::Normal),
            s.close(remote, CloseReason::Normal),
            s.close(remote, CloseReason::Normal),
        ];
        (sends, closes)
    });
    assert_eq!(
        sends,
        [
            SessionSend::HandedToShard(1),
            SessionSend::HandedToShard(1),
            SessionSend::ShardFull(1)
        ]
    );
    // Two fit the control lane; the data lane's content does not matter to it.
    assert_eq!(closes, [true, true, false]);
    let st = h0.stats();
    assert_eq!((st.relayed, st.relay_full, st.relay_closed), (4, 2, 0));

    let got = rig.inbound(1);
    let lanes: Vec<(Lane, &'static str)> = got
        .iter()
        .map(|(_, lane, m)| {
            let kind = match m {
                SessionMsg::Send { .. } => "send",
                SessionMsg::Close { .. } => "close",
                SessionMsg::Connect { .. } => "connect",
                SessionMsg::Handoff { .. } => "handoff",
                SessionMsg::App { .. } => "app",
                SessionMsg::Load(_) => "load",
            };
            (*lane, kind)
        })
        .collect();
    assert_eq!(
        lanes,
        [
            (Lane::Control, "close"),
            (Lane::Control, "close"),
            (Lane::Data, "send"),
            (Lane::Data, "send"),
        ]
    );

    // The owner has no such session: each relayed message is a counted drop, by reason.
    let mut h1 = host(clock, 1, 2);
    for (from, lane, msg) in got {
        h1.on_message(from, lane, msg, &mut rig.ctx(1));
    }
    assert_eq!(
        (h1.stats().relayed_received, h1.stats().relayed_unknown),
        (4, 4)
    );

    // A connect to an address shard 1 owns goes on the control lane too.
    let addr = (1..).map(peer).find(|a| connect_shard(*a, 2) == 1).unwrap();
    let outcome = with_sessions(&mut h0, &mut rig.ctx(0), |s| s.connect(addr, None));
    assert_eq!(outcome, Connecting::HandedToShard(1));
    let got = rig.inbound(1);
    assert!(matches!(
        got.as_slice(),
        [(0, Lane::Control, SessionMsg::Connect { .. })]
    ));

    // A stopped owner: counted as relay_closed.
    rig.mesh.truncate(1);
    let closed = with_sessions(&mut h0, &mut rig.ctx(0), |s| {
        s.close(remote, CloseReason::Normal)
    });
    assert!(!closed);
    assert_eq!(h0.stats().relay_closed, 1);
}

#[test]
fn a_refused_timer_is_counted_and_its_deadline_still_runs() {
    let clock = SessionClock::start();
    let mut rig = Rig::new(1, 64, 1, MeshConfig::default());
    // The shard's one timer slot is taken: the host's deadline is refused.
    rig.timers
        .schedule(rig.now + std::time::Duration::from_secs(3600), 99)
        .unwrap();
    rig.now = clock.origin();
    let mut h = host(clock, 0, 1);
    let started = with_sessions(&mut h, &mut rig.ctx(0), |s| s.connect(peer(4433), None));
    assert!(matches!(started, Connecting::Started(_)));
    assert_eq!(h.stats().timer_refused, 1);
    let hellos = rig.complete_sends(&mut h);
    assert_eq!(hellos.len(), 1);

    // Past the first retransmission deadline, a loop turn (with no timer of ours firing)
    // runs it: the Hello is sent again.
    rig.now += config().handshake_initial_rto;
    rig.turn(&mut h, 0);
    let again = rig.complete_sends(&mut h);
    assert_eq!(again.len(), 1, "the retransmission happened");
    assert_eq!(again[0].0, peer(4433));
    assert_eq!(again[0].1[0] & 0x0f, 1, "an Initiation");
    assert!(h.stats().timer_refused >= 2, "each refusal is counted");
}

/// Opens a plaintext session through the host as a client at `from` would: Initiation,
/// CookieReply, Initiation with mac2, Response, and a confirming Ping (its Pong drained).
fn open_through_host<A: SessionApp>(
    h: &mut SessionHost<A>,
    rig: &mut Rig,
    from: SocketAddr,
    cid: u64,
) {
    use crate::session::{cookie, crypto, handshake, wire};
    let mut init = [0u8; wire::INITIATION_LEN];
    let n = handshake::write_plain_initiation(cid, 0, None, &mut init);
    h.on_datagram(from, &init[..n], &mut rig.ctx(0));
    let reply = rig.complete_sends(h);
    let Ok(wire::Body::CookieReply { nonce, sealed }) = wire::parse(&reply[0].1).map(|d| d.body)
    else {
        panic!("expected a CookieReply");
    };
    let mut mac1 = [0u8; 16];
    mac1.copy_from_slice(&init[wire::field::INIT_PLAIN_MAC1]);
    let c =
        crypto::open_cookie(&cookie::cookie_seal_key(&[0; 32]), &nonce, &mac1, &sealed).unwrap();
    let n = handshake::write_plain_initiation(cid, 1, Some(c), &mut init);
    h.on_datagram(from, &init[..n], &mut rig.ctx(0));
    let resp = rig.complete_sends(h);
    let Ok(wire::Body::Response { plain_conn_id, .. }) = wire::parse(&resp[0].1).map(|d| d.body)
    else {
        panic!("expected a Response");
    };
    let mut ping = vec![0u8; wire::transport_len(wire::PING_BODY, false)];
    wire::write_header(&mut ping, wire::MsgType::Ping, 0, plain_conn_id, 0);
    h.on_datagram(from, &ping, &mut rig.ctx(0));
    assert_eq!(rig.complete_sends(h).len(), 1, "a Pong");
}

/// Thousands of sessions whose timers come due in one wake, through the host and a loop
/// with few send slots: the host works them off a bounded batch at a time, waits for send
/// completions (not a timer) while the control queue is at the timers' share, and never stops
/// with work left or turns without progress. Every session pings and is closed exactly once.
#[test]
fn coinciding_timers_are_worked_off_across_turns_without_stalling_or_spinning() {
    const SESSIONS: usize = 4000;
    let clock = SessionClock::start();
    let mut rig = Rig::new(1, 32, 16, MeshConfig::default());
    rig.now = clock.origin();
    let mut h = host(clock, 0, 1);
    for i in 0..SESSIONS {
        let from = SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 5000));
        open_through_host(&mut h, &mut rig, from, i as u64 + 1);
    }
    assert_eq!(h.ep.session_count(), SESSIONS);

    // The peers fall silent; the loop wakes at most every 2 s, so every first keepalive
    // (spread over 1/8 of the interval by jitter) falls due in one wake.
    let tick = std::time::Duration::from_secs(2);
    let (mut pings, mut closes, mut busiest) = (0usize, 0usize, 0usize);
    let mut at_instant = 0;
    let mut idle_turns = 0;
    loop {
        rig.turn(&mut h, 0);
        let sent = rig.complete_sends(&mut h);
        at_instant += sent.len();
        busiest = busiest.max(at_instant);
        for (_, bytes) in &sent {
            use crate::session::wire;
            let Ok(wire::Body::Transport { ty, body, .. }) = wire::parse(bytes).map(|d| d.body)
            else {
                panic!("not a transport message");
            };
            match wire::parse_plain(ty, body).unwrap() {
                wire::Message::Ping => pings += 1,
                wire::Message::Close(CloseReason::IdleTimeout) => closes += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        // The driver's wait: sends in flight end it at once (their completions), as does a
        // timer already due; otherwise the loop sleeps to the next timer, or forever.
        if !sent.is_empty() {
            idle_turns = 0;
            continue;
        }
        match rig.timers.next_deadline() {
            Some(d) if d <= rig.now => {
                idle_turns += 1;
                assert!(idle_turns < 3, "the loop turns without progress");
            }
            Some(d) => {
                let since = d.saturating_duration_since(clock.origin()).as_nanos();
                let ticks = since.div_ceil(tick.as_nanos()) as u32;
                rig.now = clock.origin() + tick * ticks;
                at_instant = 0;
            }
            None => break,
        }
    }
    let e = h.ep.stats();
    assert_eq!(h.ep.session_count(), 0, "the loop slept with sessions left");
    assert_eq!(closes, SESSIONS, "every idle close, once");
    assert!(pings >= SESSIONS, "every session pinged");
    assert_eq!((e.control_dropped, e.drops.total()), (0, 0));
    assert!(
        busiest > 1024,
        "more frames in one wake than the control queue holds"
    );
    assert!(e.timers_deferred > 0);
    assert_eq!(h.stats().timer_refused, 0);
}

/// Counts what the application is shown.
#[derive(Default)]
struct Seen {
    connected: usize,
    disconnected: usize,
    said_goodbye: bool,
}

impl SessionApp for Seen {
    fn on_connected(&mut self, _: ConnId, _: SocketAddr, _: &mut Sessions<'_, '_>) {
        self.connected += 1;
    }
    fn on_message(&mut self, _: ConnId, _: &[u8], _: &mut Sessions<'_, '_>) {}
    fn on_disconnected(&mut self, _: ConnId, _: CloseReason, _: Closer, _: &mut Sessions<'_, '_>) {
        self.disconnected += 1;
    }
    fn on_shutdown(&mut self, _: &mut Sessions<'_, '_>) {
        self.said_goodbye = true;
    }
}

/// Draining thousands of sessions, more than the control queue holds, through few send slots:
/// every session gets exactly one Close(ShuttingDown), none is lost to a full control queue,
/// the host says it is drained only once every Close has left, and a session accepted during
/// the drain is closed at once without the application ever seeing it.
#[test]
fn a_drain_closes_every_session_once_across_turns_and_admits_none() {
    use crate::session::{cookie, crypto, handshake, wire};
    const SESSIONS: usize = 4000;
    let clock = SessionClock::start();
    let mut rig = Rig::new(1, 32, 16, MeshConfig::default());
    rig.now = clock.origin();
    let place = Placement::new(clock, 0, 1, config().max_datagram());
    let mut h = SessionHost::new(config(), place, [1; 32], Seen::default()).unwrap();
    let peer_of = |i: usize| SocketAddr::from(([10, 2, (i >> 8) as u8, i as u8], 6000));
    for i in 0..SESSIONS {
        open_through_host(&mut h, &mut rig, peer_of(i), i as u64 + 1);
    }
    assert_eq!(h.app().connected, SESSIONS);
    assert!(SESSIONS > config().control_queue_capacity);

    h.on_shutdown(&mut rig.ctx(0));
    assert!(h.app().said_goodbye);
    let mut closes = std::collections::HashMap::new();
    let mut turns = 0;
    // A client that connects during the drain: Initiation, CookieReply, Initiation with the
    // cookie, Response, and its confirming Ping (only then is the session shown to the app,
    // which the drain refuses).
    let late = SocketAddr::from(([10, 9, 9, 9], 7000));
    let late_cid = 999_999;
    let mut init = [0u8; wire::INITIATION_LEN];
    let first = handshake::write_plain_initiation(late_cid, 0, None, &mut init);
    let mut accepted = false;
    let mut sends = Vec::new();
    loop {
        turns += 1;
        assert!(turns < 10 * SESSIONS, "the drain makes no progress");
        if turns == 5 {
            h.on_datagram(late, &init[..first], &mut rig.ctx(0));
        }
        sends.extend(rig.complete_sends(&mut h));
        for (to, bytes) in sends.drain(..) {
            match wire::parse(&bytes).unwrap().body {
                wire::Body::Transport { ty, body, .. } => match wire::parse_plain(ty, body) {
                    Ok(wire::Message::Close(CloseReason::ShuttingDown)) => {
                        *closes.entry(to).or_insert(0) += 1;
                    }
                    Ok(wire::Message::Pong { .. }) if to == late => {}
                    other => panic!("unexpected {other:?} to {to}"),
                },
                wire::Body::CookieReply { nonce, sealed } if to == late => {
                    let mut mac1 = [0u8; 16];
                    mac1.copy_from_slice(&init[wire::field::INIT_PLAIN_MAC1]);
                    let seal = cookie::cookie_seal_key(&[0; 32]);
                    let c = crypto::open_cookie(&seal, &nonce, &mac1, &sealed).unwrap();
                    let n = handshake::write_plain_initiation(late_cid, 1, Some(c), &mut init);
                    h.on_datagram(late, &init[..n], &mut rig.ctx(0));
                }
                wire::Body::Response { plain_conn_id, .. } if to == late => {
                    accepted = true;
                    let mut ping = vec![0u8; wire::transport_len(wire::PING_BODY, false)];
                    wire::write_header(&mut ping, wire::MsgType::Ping, 0, plain_conn_id, 0);
                    h.on_datagram(late, &ping, &mut rig.ctx(0));
                }
                other => panic!("unexpected {other:?} to {to}"),
            }
        }
        if h.drained() && turns > 5 {
            break;
        }
        rig.turn(&mut h, 0);
    }
    assert!(accepted, "the late Initiation was answered");
    assert_eq!(closes.get(&late), Some(&1), "the late session was closed");
    assert_eq!(closes.len(), SESSIONS + 1);
    assert!(closes.values().all(|n| *n == 1), "one Close each");
    let e = h.ep.stats();
    assert_eq!((e.control_dropped, e.sessions), (0, 0));
    assert_eq!(h.stats().refused_draining, 1);
    assert_eq!(
        h.app().connected,
        SESSIONS,
        "the late session was never shown"
    );
    assert_eq!(h.app().disconnected, SESSIONS);
    assert!(turns > 1, "the drain took several turns");
}

#[test]
fn shards_exchange_their_counts_on_the_control_lane() {
    use crate::session::admission::AdmissionConfig;
    use crate::session::manager::ManagerConfig;
    let clock = SessionClock::start();
    let mut rig = Rig::new(2, 64, 16, MeshConfig::default());
    let managed = |shard: usize| {
        let mut c = config();
        c.admission = Some(AdmissionConfig::default());
        c.manager = Some(ManagerConfig::default());
        let place = Placement::new(clock, shard, 2, config().max_datagram());
        SessionHost::new(c, place, [shard as u8 + 1; 32], Quiet).unwrap()
    };
    let (mut h0, mut h1) = (managed(0), managed(1));
    rig.turn(&mut h0, 0);
    let got = rig.inbound(1);
    assert!(
        got.iter().any(|(from, lane, m)| *from == 0
            && *lane == Lane::Control
            && matches!(m, SessionMsg::Load(r) if r.shard == 0)),
        "{got:?}"
    );
    for (from, lane, msg) in got {
        h1.on_message(from, lane, msg, &mut rig.ctx(1));
    }
    let st = h1.stats();
    assert_eq!(st.load_reports_received, 1);
    assert_eq!(st.relayed_received, 0, "a report is not a relayed request");
    assert_eq!(h0.stats().load_reports_sent, 1);
    assert_eq!(
        h0.stats().handoff_reserved,
        (HANDOFF_LANE_CAPACITY * config().max_datagram()) as u64,
        "one other shard's data lane of the largest datagrams"
    );
    let mut counters = Vec::new();
    h1.counters(&mut counters);
    for name in [
        "session_refusals_prefix_rate",
        "session_trims_watermark",
        "session_memory_limit",
        "session_load_reports_received",
    ] {
        assert!(counters.iter().any(|(n, _)| *n == name), "{name}");
    }
}
