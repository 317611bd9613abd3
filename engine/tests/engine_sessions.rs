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
use ringwire::{Engine, EngineConfig, EngineHandle, EngineReport, ReportRequest};
use ringwire_shard::driver::available_or_explain;
use ringwire_shard::session::client::ClientPool;
use ringwire_shard::session::{ConnId, EndpointConfig, Event, Keypair, shard_of};
use ringwire_shard::session::{Placement, SessionClock, SessionHost};

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

/// Datagrams the session layer has dropped, over every shard, from the shards' live reports
/// (their first line: `sessions=.. drops=N ..`; no session lines asked for).
fn live_drops(engine: &mut EngineHandle) -> u64 {
    engine
        .reports(ReportRequest::first(0), HANG)
        .iter()
        .map(|r| {
            let r = &r.as_ref().expect("every shard answers").text;
            r.lines()
                .next()
                .and_then(|l| l.split(' ').find_map(|f| f.strip_prefix("drops=")))
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("no drops= in the report's first line: {r}"))
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
    let lines: Vec<&str> = reports
        .iter()
        .map(|r| r.as_ref().expect("every shard answers").text.as_str())
        .flat_map(str::lines)
        .filter(|l| l.starts_with("session "))
        .collect();
    assert_eq!(lines.len(), SESSIONS);
    assert!(
        lines.iter().all(|l| l.contains("state=Established")),
        "{}",
        lines[0]
    );
    assert!(lines.iter().all(|l| !l.contains(" in=0/")), "{}", lines[0]);

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
        let report = common::shutdown(engine);
        let app = app_totals(&report);
        let n = app["session_handed_off"];
        println!(
            "steering={steering}: {n} of {sent} rebinding datagrams handed off between shards"
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
        handed.push(n);
    }
    // With steering only Initiations are handed off (until the BPF program adopts the
    // uniform v2 rule): at most one per session on loopback.
    assert!(
        handed[0] <= 64,
        "with steering no rebinding datagram is handed off"
    );
    assert!(handed[1] > 0, "without steering the hash misroutes some");
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
    let _ = pool.close(gone, ringwire_shard::session::CloseReason::Normal);
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
