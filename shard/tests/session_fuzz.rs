//! Property tests: no input, random or a mutation of a valid datagram, makes an endpoint
//! panic, answer with more bytes than it received, or allocate a session without a complete
//! Noise handshake.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use proptest::prelude::*;
use ringwire_shard::session::sim::{FaultConfig, Sim};
use ringwire_shard::session::{ConnIdGen, Endpoint, EndpointConfig, Handled, Timestamp, wire};

/// Deterministic by default (same cases on every run and in CI); set `PROPTEST_RNG_SEED` to
/// explore other inputs, and `PROPTEST_CASES` to run more.
fn proptest_config(cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = cases;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        c.rng_seed = proptest::test_runner::RngSeed::Fixed(0x7269_6e67_7769_7265);
    }
    c
}

fn cfg() -> EndpointConfig {
    let mut c = EndpointConfig::new(
        [0x33; 32],
        ringwire_shard::session::Keypair::from_seed_bytes([0x44; 32]),
    );
    c.unix_time_at_origin = Duration::from_secs(1_700_000_000);
    c
}

fn addr(last: u8, port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, last), port))
}

/// Valid datagrams of every type, captured from a real exchange (handshake, data, pings,
/// close), with their sender and receiver.
fn corpus() -> Vec<(SocketAddr, SocketAddr, Vec<u8>)> {
    let mut sim = Sim::new(1, FaultConfig::default());
    sim.set_capture(true);
    let c = sim.add_node(addr(1, 1000), 1, cfg());
    let s = sim.add_node(addr(2, 2000), 1, cfg());
    let cc = sim.connect(c, sim.addr(s)).unwrap();
    sim.run_for(Duration::from_millis(100));
    let _ = sim.send(c, cc, b"some data");
    sim.run_for(Duration::from_secs(12)); // a keepalive round
    let _ = sim.close(c, cc, ringwire_shard::session::CloseReason::Application(3));
    sim.run_for(Duration::from_millis(100));
    sim.captured()
        .iter()
        .map(|d| (d.from, d.to, d.bytes.clone()))
        .collect()
}

/// A server endpoint with one live session (so mutations can reach session code too).
fn server_with_session() -> (Endpoint, SocketAddr, Vec<Vec<u8>>) {
    let mut sim = Sim::new(2, FaultConfig::default());
    sim.set_capture(true);
    let c = sim.add_node(addr(1, 1000), 1, cfg());
    let s = sim.add_node(addr(2, 2000), 1, cfg());
    let cc = sim.connect(c, sim.addr(s)).unwrap();
    sim.run_for(Duration::from_millis(100));
    let _ = sim.send(c, cc, b"x");
    sim.run_for(Duration::from_millis(100));
    let to_server: Vec<Vec<u8>> = sim
        .captured()
        .iter()
        .filter(|d| d.to == sim.addr(s))
        .map(|d| d.bytes.clone())
        .collect();
    // Take the server's endpoint (with its live session) out of the simulator.
    let ep = std::mem::replace(
        sim.endpoint_mut(s, 0),
        Endpoint::new(cfg(), 0, 1, ConnIdGen::seed_from_u64(0), Timestamp::ZERO).unwrap(),
    );
    (ep, addr(1, 1000), to_server)
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, bits: u8 },
    Set { at: usize, value: u8 },
    Truncate(usize),
    Extend(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, bits)| Mutation::Flip { at, bits }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::Set { at, value }),
        any::<usize>().prop_map(Mutation::Truncate),
        proptest::collection::vec(any::<u8>(), 1..16).prop_map(Mutation::Extend),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    match m {
        Mutation::Flip { at, bits } if !bytes.is_empty() => {
            let i = at % bytes.len();
            bytes[i] ^= bits;
        }
        Mutation::Set { at, value } if !bytes.is_empty() => {
            let i = at % bytes.len();
            bytes[i] = *value;
        }
        Mutation::Truncate(n) => bytes.truncate(n % (bytes.len() + 1)),
        Mutation::Extend(tail) => bytes.extend_from_slice(tail),
        _ => {}
    }
}

/// Feeds `bytes` and checks the endpoint's promises on whatever it queues in reply.
fn feed(ep: &mut Endpoint, now: Timestamp, from: SocketAddr, bytes: &[u8]) {
    ep.handle_timeout(now);
    let sessions_before = ep.session_count();
    let h = ep.handle_datagram(now, from, bytes);
    ep.handle_timeout(now);
    let mut buf = vec![0u8; ep.config().max_datagram()];
    while let Some(t) = ep.poll_transmit(now, &mut buf) {
        assert!(t.len <= buf.len());
        if t.conn.is_none() {
            // Stateless replies (CookieReply, Reset) never exceed their trigger.
            assert!(
                t.len <= bytes.len(),
                "stateless reply {} to {} bytes",
                t.len,
                bytes.len()
            );
        }
    }
    while ep.poll_event().is_some() {}
    if ep.session_count() > sessions_before {
        // Only an Initiation that completes a Noise handshake can allocate.
        assert_eq!(h, Handled::Consumed);
        assert_eq!(bytes.len(), wire::INITIATION_LEN);
    }
}

proptest! {
    #![proptest_config(proptest_config(512))]

    #[test]
    fn random_bytes_never_panic(datagrams in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..1300), 1..16)) {
        let mut ep = Endpoint::new(cfg(), 0, 4, ConnIdGen::seed_from_u64(5), Timestamp::ZERO).unwrap();
        for (i, d) in datagrams.iter().enumerate() {
            feed(&mut ep, Timestamp::from_millis(i as u64), addr(9, 9), d);
            let _ = wire::parse(d);
        }
        prop_assert_eq!(ep.session_count(), 0);
    }

    #[test]
    fn random_bytes_with_a_valid_header_never_panic(
        ty in 0u8..16, dst in any::<u64>(), pn in any::<u64>(), body in proptest::collection::vec(any::<u8>(), 0..80)
    ) {
        let mut b = vec![0x10 | ty, 0, 0, 0];
        b.extend_from_slice(&dst.to_be_bytes());
        b.extend_from_slice(&pn.to_be_bytes());
        b.extend_from_slice(&body);
        let mut ep = Endpoint::new(cfg(), 0, 1, ConnIdGen::seed_from_u64(5), Timestamp::ZERO).unwrap();
        feed(&mut ep, Timestamp::ZERO, addr(9, 9), &b);
    }

    #[test]
    fn mutated_valid_datagrams_never_panic(
        picks in proptest::collection::vec((any::<prop::sample::Index>(), proptest::collection::vec(mutation(), 1..4)), 1..24)
    ) {
        let (mut ep, client, to_server) = server_with_session();
        let all = corpus();
        let now = Timestamp::from_millis(200);
        for (pick, muts) in &picks {
            // Alternate between the server's own traffic and every captured datagram.
            let mut bytes = if pick.index(2) == 0 {
                pick.get(&to_server).clone()
            } else {
                pick.get(&all).2.clone()
            };
            for m in muts {
                apply(&mut bytes, m);
            }
            feed(&mut ep, now, client, &bytes);
        }
        prop_assert!(ep.session_count() <= 1 + picks.len());
    }
}

#[derive(Debug, Clone)]
enum Op {
    Connect { client: usize },
    Send { client: usize, len: usize },
    ServerSend { pick: prop::sample::Index },
    Close { client: usize, app: u16 },
    Advance { millis: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..3).prop_map(|client| Op::Connect { client }),
        (0usize..3, 0usize..1300).prop_map(|(client, len)| Op::Send { client, len }),
        any::<prop::sample::Index>().prop_map(|pick| Op::ServerSend { pick }),
        (0usize..3, any::<u16>()).prop_map(|(client, app)| Op::Close { client, app }),
        (1u64..15_000).prop_map(|millis| Op::Advance { millis }),
    ]
}

proptest! {
    #![proptest_config(proptest_config(48))]

    /// Random application calls over a faulty network: every session, on either side, ends
    /// with exactly one Disconnected (after at most one Connected), and nothing leaks.
    #[test]
    fn lifecycle_invariants_hold_under_random_operations(
        seed in any::<u64>(), loss in 0.0f64..0.3, ops in proptest::collection::vec(op(), 1..40)
    ) {
        use ringwire_shard::session::{CloseReason, ConnId, Event};
        use std::collections::BTreeMap;
        let faults = FaultConfig { loss, duplicate: 0.05, reorder: 0.1, corrupt: 0.05, ..FaultConfig::default() };
        let mut sim = Sim::new(seed, faults);
        let server = sim.add_node(addr(2, 2000), 2, cfg());
        let clients: Vec<usize> = (0..3).map(|i| sim.add_node(addr(10 + i as u8, 1000), 2, cfg())).collect();
        let mut opened: Vec<Vec<ConnId>> = vec![Vec::new(); 3];
        for op in &ops {
            match op {
                Op::Connect { client } => {
                    let c = sim.connect(clients[*client], sim.addr(server)).unwrap();
                    opened[*client].push(c);
                }
                Op::Send { client, len } => {
                    if let Some(&c) = opened[*client].last() {
                        let _ = sim.send(clients[*client], c, &vec![7u8; *len]);
                    }
                }
                Op::ServerSend { pick } => {
                    let live: Vec<ConnId> = sim.endpoint(server, 0).snapshot().sessions.iter()
                        .chain(sim.endpoint(server, 1).snapshot().sessions.iter()).map(|(c, _)| *c).collect();
                    if !live.is_empty() {
                        let _ = sim.send(server, *pick.get(&live), b"from server");
                    }
                }
                Op::Close { client, app } => {
                    if let Some(&c) = opened[*client].last() {
                        let _ = sim.close(clients[*client], c, CloseReason::Application(*app));
                    }
                }
                Op::Advance { millis } => sim.run_for(Duration::from_millis(*millis)),
            }
        }
        // Cut the network: idle and handshake timeouts must end everything.
        sim.set_faults(FaultConfig { loss: 1.0, ..FaultConfig::default() });
        sim.run_for(Duration::from_secs(60));
        prop_assert_eq!(sim.session_count(server), 0);
        for &c in &clients {
            prop_assert_eq!(sim.session_count(c), 0);
        }
        // Per (node, conn): Connected at most once, then exactly one Disconnected, last.
        let mut life: BTreeMap<(usize, ConnId), Vec<u8>> = BTreeMap::new();
        for e in sim.trace() {
            let (conn, tag) = match &e.event {
                Event::Connected { conn, .. } => (*conn, b'C'),
                Event::Message { conn, .. } => (*conn, b'M'),
                Event::Disconnected { conn, .. } => (*conn, b'D'),
            };
            life.entry((e.node, conn)).or_default().push(tag);
        }
        for (key, tags) in &life {
            prop_assert_eq!(tags.iter().filter(|&&t| t == b'D').count(), 1, "{:?} {:?}", key, tags);
            prop_assert_eq!(*tags.last().unwrap(), b'D');
            prop_assert!(tags.iter().filter(|&&t| t == b'C').count() <= 1);
            if tags.contains(&b'M') {
                prop_assert_eq!(tags[0], b'C', "messages only after Connected");
            }
        }
        // Every client connect ended with its one Disconnected.
        for (i, conns) in opened.iter().enumerate() {
            for c in conns {
                prop_assert!(life.contains_key(&(clients[i], *c)));
            }
        }
    }
}
