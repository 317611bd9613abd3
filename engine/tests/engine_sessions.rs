//! Sessions over real sockets: 1,000 sessions from distinct ports on two shards, relay
//! traffic both ways between sessions, across shards.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ringwire::apps::Relay;
use ringwire::{Engine, EngineConfig};
use ringwire_shard::driver::probe;
use ringwire_shard::session::relay_msg::RelayMsg;
use ringwire_shard::session::{ConnId, EndpointConfig, Event, shard_of};
use ringwire_shard::session_client::ClientPool;
use ringwire_shard::session_host::SessionHost;

const SESSIONS: usize = 1000;

fn pump_until(pool: &mut ClientPool, events: &mut Vec<Event>, done: impl Fn(&[Event]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
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

#[test]
fn thousand_sessions_relay_both_ways_across_shards() {
    if let Err(e) = probe() {
        println!("skipping: {e}");
        return;
    }
    let key = [42u8; 32];
    let mut config = EngineConfig::unpinned("127.0.0.1:0".parse().unwrap(), 2);
    config.shard.socket_recv_buffer = 8 << 20;
    let engine = Engine::try_start(&config, move |info| {
        let seed = [info.index as u8 + 1; 32];
        SessionHost::new(
            EndpointConfig::new(key),
            info.index,
            info.shards,
            seed,
            Relay::default(),
        )
    })
    .unwrap();
    let server: SocketAddr = engine.local_addr();

    let mut pool = ClientPool::new(EndpointConfig::new([7u8; 32]), 1).unwrap();
    let mut conns = Vec::with_capacity(SESSIONS);
    let mut events = Vec::new();
    for i in 0..SESSIONS {
        conns.push(
            pool.connect("127.0.0.1:0".parse().unwrap(), server)
                .unwrap(),
        );
        if i % 100 == 99 {
            pool.poll(&mut events).unwrap();
        }
    }
    // Every session connects and is welcomed with its relay ID.
    pump_until(&mut pool, &mut events, |ev| {
        ev.iter()
            .filter(|e| matches!(e, Event::Message { .. }))
            .count()
            >= SESSIONS
    });
    let mut relay_id: HashMap<ConnId, u64> = HashMap::new();
    for e in events.drain(..) {
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
    assert_eq!(relay_id.len(), SESSIONS);
    let shards_used: std::collections::HashSet<u16> =
        relay_id.values().map(|id| shard_of(*id)).collect();
    assert_eq!(shards_used.len(), 2, "sessions live on both shards");

    // Pairs (2k, 2k+1) message each other through the relay.
    let mut cross_shard_pairs = 0;
    for pair in conns.chunks(2) {
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
    }
    assert!(cross_shard_pairs > 0, "some pairs span both shards");
    pump_until(&mut pool, &mut events, |ev| {
        ev.iter()
            .filter(|e| matches!(e, Event::Message { .. }))
            .count()
            >= SESSIONS
    });
    let by_relay_id: HashMap<u64, ConnId> = relay_id.iter().map(|(c, r)| (*r, *c)).collect();
    let mut delivered = 0;
    for e in events.drain(..) {
        if let Event::Message { conn, bytes } = e {
            let RelayMsg::Delivered { src_conn_id, bytes } = RelayMsg::decode(&bytes).unwrap()
            else {
                panic!("expected Delivered");
            };
            assert_eq!(bytes, &src_conn_id.to_be_bytes()[..]);
            let partner = by_relay_id[&src_conn_id];
            let i = conns.iter().position(|c| *c == conn).unwrap();
            let j = conns.iter().position(|c| *c == partner).unwrap();
            assert_eq!(i / 2, j / 2, "delivered from its partner");
            delivered += 1;
        }
    }
    assert_eq!(delivered, SESSIONS);

    // The flight recorder, read from the running engine: one line per session.
    let reports = engine.reports(Duration::from_secs(5));
    let lines: Vec<&str> = reports
        .iter()
        .map(|r| r.as_deref().expect("every shard answers"))
        .flat_map(str::lines)
        .filter(|l| l.starts_with("session "))
        .collect();
    assert_eq!(lines.len(), SESSIONS);
    assert!(
        lines
            .iter()
            .all(|l| l.contains("state=Established") && l.contains("confirmed="))
    );
    // Each session received Hello+cookie and a Forward, and sent Cookie/Accept, Welcome and a Delivered.
    assert!(lines.iter().all(|l| !l.contains(" in=0/")), "{}", lines[0]);

    let report = engine.shutdown(Duration::from_secs(3)).unwrap();
    let app: HashMap<&str, u64> = report
        .shards
        .iter()
        .flat_map(|s| s.app.iter().copied())
        .fold(HashMap::new(), |mut m, (k, v)| {
            *m.entry(k).or_default() += v;
            m
        });
    assert_eq!(app["sessions_accepted"], SESSIONS as u64);
    assert_eq!(
        app["relay_forwarded_local"] + app["relay_forwarded_remote"],
        SESSIONS as u64
    );
    assert!(app["relay_forwarded_remote"] > 0);
    let fraction = app["session_handed_off"] as f64 / app["session_datagrams"] as f64;
    println!(
        "handoff fraction: {fraction:.4} ({} of {} datagrams)",
        app["session_handed_off"], app["session_datagrams"]
    );
}
