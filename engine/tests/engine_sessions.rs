//! Sessions over real sockets: 1,000 sessions from distinct ports on two shards, relay
//! traffic both ways between sessions, across shards; kernel steering and handoff.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::{HANG, os};
use ringwire::apps::Relay;
use ringwire::apps::relay::RelayMsg;
use ringwire::kernel::available_or_explain;
use ringwire::session::client::ClientPool;
use ringwire::session::{ConnId, EndpointConfig, Event, Keypair, shard_of};
use ringwire::session::{Placement, SessionClock, SessionHost};
use ringwire::{Engine, EngineConfig, EngineHandle, EngineReport, ReportRequest};

const SESSIONS: usize = 1000;

/// Polls the pool until `done` holds; the deadline is a liveness guard only (handshakes
/// retransmit, so loopback loss slows them down but does not stop them).
fn pump_until(pool: &mut ClientPool, events: &mut Vec<Event>, done: impl Fn(&[Event]) -> bool) {
    let deadline = Instant::now() + HANG;
    while !done(events) {
        assert!(
            Instant::now() < deadline,
            "timed out with {} events",
            events.len()
        );
        if pool.poll(events).unwrap() == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn messages(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::Message { .. }))
        .count()
}

/// The relay's static identity (fixed: the clients are configured with its public key).
fn server_identity() -> Keypair {
    Keypair::from_seed_bytes([0x42; 32])
}

fn client_identity() -> Keypair {
    Keypair::from_seed_bytes([0x43; 32])
}

fn relay_engine(steering: bool) -> EngineHandle {
    let key = [42u8; 32];
    let mut config = common::config(2);
    config.shard.socket_recv_buffer = 8 << 20;
    config.steering = steering;
    let clock = SessionClock::start();
    let max_datagram = config.shard.max_datagram;
    Engine::try_start(&config, move |info| {
        let seed = [info.index as u8 + 1; 32];
        let place = Placement::new(clock, info.index, info.shards, max_datagram);
        SessionHost::new(
            EndpointConfig::new(key, server_identity()),
            place,
            seed,
            Relay::default(),
        )
    })
    .unwrap()
}

/// Connects `n` sessions from `n` sockets; returns them with their relay IDs (the server-side
/// connection IDs the relay announces in `Welcome`).
fn connect_all(
    pool: &mut ClientPool,
    server: SocketAddr,
    n: usize,
) -> (Vec<ConnId>, HashMap<ConnId, u64>) {
    let mut conns = Vec::with_capacity(n);
    let mut events = Vec::new();
    for i in 0..n {
        conns.push(
            pool.connect(
                "127.0.0.1:0".parse().unwrap(),
                server,
                Some(server_identity().public),
            )
            .unwrap(),
        );
        if i % 100 == 99 {
            pool.poll(&mut events).unwrap();
        }
    }
    pump_until(pool, &mut events, |ev| messages(ev) >= n);
    let mut relay_id = HashMap::new();
    for e in events {
        match e {
            Event::Connected { .. } => {}
            Event::Message { conn, bytes } => match RelayMsg::decode(&bytes).unwrap() {
                RelayMsg::Welcome { conn_id } => {
                    relay_id.insert(conn, conn_id);
                }
                other => panic!("unexpected {other:?}"),
            },
            Event::Disconnected { conn, reason, .. } => panic!("{conn:?} closed: {reason:?}"),
        }
    }
    assert_eq!(relay_id.len(), n);
    (conns, relay_id)
}

/// Datagrams the session layer has dropped, over every shard, from the shards' live handler
/// counters (`session_drops`).
fn live_drops(engine: &mut EngineHandle) -> u64 {
    live_counter(engine, "session_drops")
}

/// One handler counter summed over the shards, as of now.
fn live_counter(engine: &mut EngineHandle, counter: &str) -> u64 {
    engine
        .app_counters(HANG)
        .into_iter()
        .map(|c| {
            let c = c.expect("every shard answers");
            c.iter()
                .find(|(name, _)| *name == counter)
                .map(|(_, v)| *v)
                .unwrap_or_else(|| panic!("no {counter} counter in {c:?}"))
        })
        .sum()
}

fn app_totals(report: &EngineReport) -> HashMap<&'static str, u64> {
    let mut totals = HashMap::new();
    for (k, v) in report.shards.iter().flat_map(|s| s.app.iter().copied()) {
        *totals.entry(k).or_default() += v;
    }
    totals
}

#[test]
fn thousand_sessions_relay_both_ways_across_shards() {
    if !available_or_explain() {
        return;
    }
    let mut engine = relay_engine(true);
    let server = engine.local_addr();
    let mut pool = ClientPool::new(EndpointConfig::new([7u8; 32], client_identity()), 1).unwrap();
    let (conns, relay_id) = connect_all(&mut pool, server, SESSIONS);
    let shards_used: std::collections::HashSet<u16> =
        relay_id.values().map(|id| shard_of(*id)).collect();
    assert_eq!(shards_used.len(), 2, "sessions live on both shards");

    // Pairs (2k, 2k+1) message each other through the relay. Data is not retransmitted, so
    // loopback must not drop any: at most WINDOW forwards are outstanding, which no socket
    // buffer can overflow on (the shards' sockets hold hundreds of small datagrams even at
    // the kernel's default limits).
    const WINDOW: usize = 100;
    let mut cross_shard_pairs = 0;
    let mut events = Vec::new();
    for (k, pair) in conns.chunks(2).enumerate() {
        let (a, b) = (pair[0], pair[1]);
        if shard_of(relay_id[&a]) != shard_of(relay_id[&b]) {
            cross_shard_pairs += 1;
        }
        for (from, to) in [(a, b), (b, a)] {
            let msg = RelayMsg::Forward {
                dst_conn_id: relay_id[&to],
                bytes: &relay_id[&from].to_be_bytes(),
            };
            let _ = pool.send(from, &msg.to_vec()).unwrap();
        }
        let forwarded = 2 * (k + 1);
        if forwarded % WINDOW == 0 || forwarded == SESSIONS {
            pump_until(&mut pool, &mut events, |ev| messages(ev) >= forwarded);
        }
    }
    assert!(cross_shard_pairs > 0, "some pairs span both shards");
    assert_eq!(messages(&events), SESSIONS, "one Delivered per Forward");
    let by_relay_id: HashMap<u64, ConnId> = relay_id.iter().map(|(c, r)| (*r, *c)).collect();
    let index: HashMap<ConnId, usize> = conns.iter().enumerate().map(|(i, c)| (*c, i)).collect();
    let mut delivered = 0;
    for e in events {
        if let Event::Message { conn, bytes } = e {
            let RelayMsg::Delivered { src_conn_id, bytes } = RelayMsg::decode(&bytes).unwrap()
            else {
                panic!("expected Delivered");
            };
            assert_eq!(bytes, &src_conn_id.to_be_bytes()[..]);
            let partner = by_relay_id[&src_conn_id];
            assert_eq!(
                index[&conn] / 2,
                index[&partner] / 2,
                "delivered from its partner"
            );
            delivered += 1;
        }
    }
    assert_eq!(delivered, SESSIONS);

    // The flight recorder, read from the running engine: one line per session.
    let reports = engine.reports(ReportRequest::first(SESSIONS), HANG);
    let items: Vec<&ringwire::ReportItem> = reports
        .iter()
        .flat_map(|r| &r.as_ref().expect("every shard answers").items)
        .collect();
    assert_eq!(items.len(), SESSIONS);
    let field = |i: &ringwire::ReportItem, name: &str| {
        i.fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert!(
        items.iter().all(|i| field(i, "state") == "Established"),
        "{}",
        items[0]
    );
    assert!(
        items.iter().all(|i| !field(i, "in").starts_with("0/")),
        "{}",
        items[0]
    );

    let report = common::shutdown(engine);
    let app = app_totals(&report);
    assert_eq!(app["sessions_accepted"], SESSIONS as u64);
    assert_eq!(
        app["relay_forwarded_local"] + app["relay_forwarded_remote"],
        SESSIONS as u64
    );
    assert!(app["relay_forwarded_remote"] > 0);
    // Today's BPF program hashes Initiations (type 1) by 4-tuple and the endpoint hands each
    // to the shard its route byte names; the uniform v2 program (docs/PROTOCOL.md §2) steers
    // them directly. Nothing else is handed off.
    assert!(
        app["session_handed_off"] <= app["session_handshakes_completed"],
        "{app:?}"
    );
    println!(
        "handoff fraction with steering: 0 of {} datagrams; {} forwards crossed shards",
        app["session_datagrams"], app["relay_forwarded_remote"]
    );
}

/// Datagrams that carry a session's connection ID from source ports the session never used
/// (what a NAT rebinding looks like) reach the owning shard directly with steering; without
/// it the kernel's 4-tuple hash sends about half to the other shard, which hands them over.
#[test]
fn steering_delivers_to_the_owner_without_handoff() {
    if !available_or_explain() {
        return;
    }
    let mut handed = Vec::new();
    for steering in [true, false] {
        let mut engine = relay_engine(steering);
        let server = engine.local_addr();
        let mut pool =
            ClientPool::new(EndpointConfig::new([7u8; 32], client_identity()), 2).unwrap();
        let (_conns, relay_id) = connect_all(&mut pool, server, 64);
        let strangers: Vec<UdpSocket> = (0..32)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let drops_before = live_drops(&mut engine);
        let handed_before = live_counter(&mut engine, "session_handed_off");
        let mut sent = 0u64;
        for (i, cid) in relay_id.values().enumerate() {
            // A Data header (version 2, type 4) naming the session, from a port it never used.
            let mut dgram = vec![0u8; 24];
            dgram[0] = 0x24;
            dgram[4..12].copy_from_slice(&cid.to_be_bytes());
            dgram[12..20].copy_from_slice(&(1000 + i as u64).to_be_bytes());
            strangers[i % strangers.len()]
                .send_to(&dgram, server)
                .unwrap();
            sent += 1;
        }
        // Each one ends as a drop on its owner (address mismatch), after a handoff if it
        // reached the other shard: wait until the live reports count them all. Nothing else
        // is dropped here (a retransmitted handshake message is answered, not dropped).
        os::wait_until("every rebinding datagram dropped by its owner", || {
            live_drops(&mut engine) == drops_before + sent
        });
        let handed_during = live_counter(&mut engine, "session_handed_off") - handed_before;
        let report = common::shutdown(engine);
        let app = app_totals(&report);
        let n = app["session_handed_off"];
        let retransmitted = pool.stats().initiations_sent - 64;
        println!(
            "steering={steering}: {n} datagrams handed off between shards, {handed_during} \
             while the {sent} rebinding datagrams arrived ({retransmitted} Initiations \
             retransmitted)"
        );
        // read = handled + dropped by reason: the owner dropped each one for its address,
        // never made a session of it, and every handoff arrived.
        assert_eq!(app["address_mismatch"], sent, "{app:?}");
        assert_eq!(app["sessions"], 64);
        assert_eq!(app["session_handoffs_received"], n, "{app:?}");
        assert_eq!(
            app["session_handoff_full"] + app["session_handoff_closed"],
            0
        );
        // Besides the rebinding datagrams, only Initiations are handed off (today's BPF
        // program hashes them by 4-tuple; see above). Every session connected before the
        // burst, so its owner had already handled one of its Initiations: the only ones
        // that can still be on their way (and handed off during the burst) are the
        // retransmissions, every Initiation the clients sent beyond the first per session.
        handed.push((n, handed_during, retransmitted));
    }
    // With steering no rebinding datagram is handed off: what was handed off while they
    // arrived can only be retransmitted Initiations (none at all on a quiet machine).
    let (_, during, retransmitted) = handed[0];
    assert!(
        during <= retransmitted,
        "with steering no rebinding datagram is handed off: {during} handoffs during the \
         burst, {retransmitted} Initiations retransmitted"
    );
    let (_, during, _) = handed[1];
    assert!(during > 0, "without steering the hash misroutes some");
}

/// A shard too small for the session layer's datagrams is refused at start, naming the
/// setting, instead of running and silently never passing Data above 44 bytes.
#[test]
fn a_shard_datagram_below_the_session_layers_is_refused_at_start() {
    if !available_or_explain() {
        return;
    }
    let mut config = EngineConfig::unpinned("127.0.0.1:0".parse().unwrap(), 1);
    config.shard.max_datagram = 64;
    let clock = SessionClock::start();
    let err = Engine::try_start(&config, move |info| {
        let place = Placement::new(clock, info.index, info.shards, 64);
        SessionHost::new(
            EndpointConfig::new([1; 32], server_identity()),
            place,
            [2; 32],
            Relay::default(),
        )
    })
    .err()
    .expect("refused");
    let message = err.to_string();
    assert!(message.contains("shard.max_datagram"), "{message}");
    assert!(message.contains("1236"), "{message}");
}

/// A Forward to an ID that names the other shard but no live session there (never existed,
/// or closed) is answered with `Unreachable`, as a local one is: the owner shard's relay tells
/// the sender through the session layer's undeliverable hook.
#[test]
fn forward_to_an_unknown_or_closed_id_on_another_shard_gets_unreachable() {
    if !available_or_explain() {
        return;
    }
    let engine = relay_engine(true);
    let server = engine.local_addr();
    let mut pool = ClientPool::new(EndpointConfig::new([7u8; 32], client_identity()), 3).unwrap();
    let (conns, relay_id) = connect_all(&mut pool, server, 16);
    // A sender, and a peer of it on the other shard, which then leaves.
    let sender = conns[0];
    let shard = shard_of(relay_id[&sender]);
    let gone = *conns
        .iter()
        .find(|c| shard_of(relay_id[c]) != shard)
        .expect("16 sessions use both shards");
    let gone_id = relay_id[&gone];
    let _ = pool.close(gone, ringwire::session::CloseReason::Normal);
    let never = (u64::from(1 - shard) << 56) | 0x00de_adbe_ef42;
    let mut events = Vec::new();
    // Wait until the relay's shard has freed `gone` (its Disconnected is not visible here,
    // so retry the Forward until the answer is Unreachable rather than delivered silence).
    for dst in [never, gone_id] {
        let forward = RelayMsg::Forward {
            dst_conn_id: dst,
            bytes: b"anyone?",
        }
        .to_vec();
        let deadline = Instant::now() + HANG;
        loop {
            let _ = pool.send(sender, &forward).unwrap();
            let start = events.len();
            let until = Instant::now() + Duration::from_millis(200);
            while Instant::now() < until && events.len() == start {
                if pool.poll(&mut events).unwrap() == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            let answered = events[start..].iter().any(|e| match e {
                Event::Message { conn, bytes } if *conn == sender => {
                    RelayMsg::decode(bytes) == Ok(RelayMsg::Unreachable { dst_conn_id: dst })
                }
                _ => false,
            });
            if answered {
                break;
            }
            assert!(Instant::now() < deadline, "no Unreachable for {dst:#x}");
        }
    }
    let report = common::shutdown(engine);
    let app = app_totals(&report);
    assert!(app["relay_unreachable"] >= 2, "{app:?}");
}

/// Fan-out across shards on a real two-shard engine: every subscriber of a publisher, on the
/// publisher's shard or the other one, receives its Publishes (the other shard's through one
/// mesh message per Publish); a Subscribe to an ID of the other shard that is no session there
/// is answered `Unreachable`, and when the publisher leaves, its subscribers on the other
/// shard are told `Unreachable` too.
#[test]
fn fan_out_reaches_subscribers_on_the_other_shard() {
    if !available_or_explain() {
        return;
    }
    let engine = relay_engine(true);
    let server = engine.local_addr();
    let mut pool = ClientPool::new(EndpointConfig::new([9u8; 32], client_identity()), 5).unwrap();
    let (conns, relay_id) = connect_all(&mut pool, server, 24);
    let publisher = conns[0];
    let p = relay_id[&publisher];
    let subscribers = &conns[1..];
    let remote: Vec<ConnId> = subscribers
        .iter()
        .copied()
        .filter(|c| shard_of(relay_id[c]) != shard_of(p))
        .collect();
    assert!(!remote.is_empty(), "24 sessions use both shards");
    let subscribe = RelayMsg::Subscribe {
        publisher_conn_id: p,
    }
    .to_vec();
    for &c in subscribers {
        let _ = pool.send(c, &subscribe).unwrap();
    }
    // A Subscribe takes effect when the relay reads it (no acknowledgement), and the other
    // shard's registration crosses the mesh after that: publish until every subscriber has
    // a copy (loopback may also lose a datagram).
    let mut events = Vec::new();
    let mut got: HashMap<ConnId, u64> = HashMap::new();
    let deadline = Instant::now() + HANG;
    let mut round = 0u64;
    while got.len() < subscribers.len() {
        assert!(
            Instant::now() < deadline,
            "{} of {} subscribers got a copy",
            got.len(),
            subscribers.len()
        );
        round += 1;
        let publish = RelayMsg::Publish {
            publisher_conn_id: p,
            bytes: &round.to_be_bytes(),
        }
        .to_vec();
        let _ = pool.send(publisher, &publish).unwrap();
        let until = Instant::now() + Duration::from_millis(50);
        while Instant::now() < until {
            if pool.poll(&mut events).unwrap() == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        for e in events.drain(..) {
            if let Event::Message { conn, bytes } = e {
                match RelayMsg::decode(&bytes).unwrap() {
                    RelayMsg::Delivered { src_conn_id, bytes } => {
                        assert_eq!(src_conn_id, p);
                        assert_ne!(conn, publisher, "a publisher gets no copy of its own");
                        let n = u64::from_be_bytes(bytes.try_into().unwrap());
                        assert!(n <= round);
                        got.insert(conn, n);
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
    }
    // A Subscribe naming no session of the other shard.
    let never = (u64::from(1 - shard_of(p)) << 56) | 0x00de_adbe_ef43;
    let subscribe_never = RelayMsg::Subscribe {
        publisher_conn_id: never,
    }
    .to_vec();
    let local = subscribers
        .iter()
        .copied()
        .find(|c| shard_of(relay_id[c]) == shard_of(p))
        .expect("24 sessions use both shards");
    let _ = pool.send(local, &subscribe_never).unwrap();
    // The publisher leaves: its subscribers on the other shard hear Unreachable.
    let _ = pool.close(publisher, ringwire::session::CloseReason::Normal);
    let mut told: HashMap<ConnId, Vec<u64>> = HashMap::new();
    let wanted = |told: &HashMap<ConnId, Vec<u64>>| {
        remote
            .iter()
            .all(|c| told.get(c).is_some_and(|v| v.contains(&p)))
            && told.values().flatten().any(|&d| d == never)
    };
    let deadline = Instant::now() + HANG;
    while !wanted(&told) {
        assert!(Instant::now() < deadline, "not told: {told:?}");
        if pool.poll(&mut events).unwrap() == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        for e in events.drain(..) {
            if let Event::Message { conn, bytes } = e
                && let Ok(RelayMsg::Unreachable { dst_conn_id }) = RelayMsg::decode(&bytes)
            {
                told.entry(conn).or_default().push(dst_conn_id);
            }
        }
    }
    let report = common::shutdown(engine);
    let app = app_totals(&report);
    assert!(app["relay_fanout_shard_sent"] > 0, "{app:?}");
    assert!(
        app["relay_fanout_shard_received"] > 0
            && app["relay_fanout_shard_received"] <= app["relay_fanout_shard_sent"],
        "{app:?}"
    );
    assert_eq!(app["relay_fanout_shard_full"], 0, "{app:?}");
    assert_eq!(app["relay_fanout_dropped"], 0, "{app:?}");
    assert_eq!(app["relay_subscribe_lost"], 0, "{app:?}");
}

/// A drain under load, as a library caller asks for it: every one of 1,000 sessions hears
/// `Close(ShuttingDown)` (or a Reset that overtook it), every shard ends gracefully, every
/// message a client sent is answered or counted: echoed, refused by the app, discarded on a
/// session refused during the drain, or dropped by the session layer under a reason (a message
/// that reaches a session already closed), and every datagram that reached a client after its
/// session's end is counted there. Keepalives are off on both sides, so that every datagram
/// after the handshakes is one of those messages.
#[test]
fn a_drain_under_load_closes_every_session_and_answers_or_counts_every_message() {
    use ringwire::apps::SessionEcho;
    use ringwire::session::{CloseReason, Closer, SendOutcome};

    if !available_or_explain() {
        return;
    }
    // At most this many messages in flight: no socket buffer can overflow on them.
    const WINDOW: usize = 100;
    let mut config = common::config(2);
    config.steering = true;
    let clock = SessionClock::start();
    let max_datagram = config.shard.max_datagram;
    let engine = Engine::try_start(&config, move |info| {
        let mut ep = EndpointConfig::new([8u8; 32], server_identity());
        ep.keepalive_interval = None;
        let place = Placement::new(clock, info.index, info.shards, max_datagram);
        SessionHost::new(
            ep,
            place,
            [info.index as u8 + 9; 32],
            SessionEcho::default(),
        )
    })
    .unwrap();
    let mut client = EndpointConfig::new([8u8; 32], client_identity());
    client.keepalive_interval = None;
    let mut pool = ClientPool::new(client, 5).unwrap();
    let server_key = server_identity().public;
    let mut events = Vec::new();
    let mut conns = Vec::with_capacity(SESSIONS);
    for i in 0..SESSIONS {
        conns.push(
            pool.connect(
                "127.0.0.1:0".parse().unwrap(),
                engine.local_addr(),
                Some(server_key),
            )
            .unwrap(),
        );
        if i % 100 == 99 {
            pool.poll(&mut events).unwrap();
        }
    }
    pump_until(&mut pool, &mut events, |ev| {
        ev.iter()
            .filter(|e| matches!(e, Event::Connected { .. }))
            .count()
            == SESSIONS
    });
    events.clear();
    let mut sent = 0u64;
    let mut send = |pool: &mut ClientPool, conn| {
        if pool.send(conn, b"load").unwrap() == SendOutcome::Queued {
            sent += 1;
        }
    };
    for round in 0..10 {
        for k in 0..WINDOW {
            send(&mut pool, conns[(round * WINDOW + k) % SESSIONS]);
        }
        pump_until(&mut pool, &mut events, |ev| {
            messages(ev) >= (round + 1) * WINDOW
        });
    }
    // The drain begins with a window in flight.
    for conn in &conns[..WINDOW] {
        send(&mut pool, *conn);
    }
    engine.shutdown_handle().drain(Instant::now() + HANG);
    pump_until(&mut pool, &mut events, |ev| {
        ev.iter()
            .filter(|e| matches!(e, Event::Disconnected { .. }))
            .count()
            == SESSIONS
    });
    // UDP may reorder even on loopback (a sender that moved to another CPU between two sends,
    // while the first CPU's receive backlog waited for its softirq). So a session's end can
    // reach its client before datagrams the server sent earlier: an echo after the Close, or
    // the Close after the server's Reset for Data that reached it once the session had ended.
    let mut closed = std::collections::HashSet::new();
    let mut overtaken = 0u64;
    for e in &events {
        if let Event::Disconnected { conn, reason, by } = e {
            match (*reason, *by) {
                (CloseReason::ShuttingDown, Closer::Peer) => {}
                (CloseReason::Reset, Closer::Peer) => overtaken += 1,
                other => panic!("{conn:?} ended by {other:?}"),
            }
            assert!(closed.insert(*conn), "one end per session");
        }
    }
    let echoes = messages(&events) as u64;
    let report = engine.wait(HANG).unwrap();
    assert!(report.drained_gracefully(), "{:?}", report.shards);
    // A transport datagram that reaches its client after the session's end (a late echo, or a
    // Close after the server's Reset) draws a Reset (every one here is longer than a Reset),
    // which the pool, a socket per session, cannot send: every unroutable frame is such a
    // Reset. Late transport datagrams are echoes the server counted, or those Closes.
    let client = pool.stats();
    let late = client.resets_sent + client.resets_suppressed;
    assert_eq!(pool.unroutable(), client.resets_sent, "{client:?}");
    let app = app_totals(&report);
    assert!(overtaken <= app["session_resets_sent"], "{app:?}");
    let total = report.total();
    assert_eq!(total.kernel_drops, 0, "{total}");
    assert_eq!(
        app["echoed"]
            + app["echo_refused"]
            + app["session_draining_discarded"]
            + app["session_drops"],
        sent,
        "{app:?}"
    );
    assert!(
        echoes + late <= app["echoed"] + overtaken,
        "{echoes} echoes, {late} late, {overtaken} Closes overtaken by a Reset, {app:?}"
    );
    assert_eq!(app["session_control_dropped"], 0, "{app:?}");
    assert_eq!(app["sessions"], 0, "{app:?}");
}
