//! Target `session`: the session state machine fed arbitrary sequences of events through the
//! seeded simulator (`session::sim`, virtual clock): application sends and closes on both
//! sides, new connections, time passing (keepalives, rekeys, idle timeouts, handshake
//! retransmits), network faults, raw bytes from either side or a stranger, and replays of real
//! datagrams with bytes flipped. The server has two shards, so forwarding is exercised too.
//!
//! Properties (Noise mode, where a fuzzer cannot forge a datagram): no panic; every message
//! delivered was sent by the peer, byte for byte, and is delivered at most once; each session
//! connects at most once, disconnects at most once, and has no event after its disconnect.
//! Plaintext mode (anyone can forge a datagram there) is checked for panics only.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use ringwire_shard::session::sim::{FaultConfig, Sim};
use ringwire_shard::session::{CloseReason, ConnId, EndpointConfig, Event, Keypair};

use crate::input::Input;

const COOKIE_KEY: [u8; 32] = [0x5a; 32];
const UNIX_AT_ZERO: Duration = Duration::from_secs(1_700_000_000);

fn addr(last: u8, port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, last), port))
}

fn config(plaintext: bool, key: u8) -> EndpointConfig {
    let mut c = if plaintext {
        EndpointConfig::plaintext(COOKIE_KEY)
    } else {
        EndpointConfig::new(COOKIE_KEY, Keypair::from_seed_bytes([key; 32]))
    };
    c.unix_time_at_origin = UNIX_AT_ZERO;
    c.keepalive_interval = Some(Duration::from_secs(5));
    c.idle_timeout = Duration::from_secs(20);
    // Small enough that a fuzz input reaches rekeying.
    c.rekey_after_messages = 16;
    c
}

/// One input: a flag byte (plaintext mode, fault seed), then operations.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.u8();
    let plaintext = flags & 0x80 != 0;
    let mut sim = Sim::new(u64::from(flags & 0x7f), FaultConfig::default());
    sim.set_capture(true);
    let client = sim.add_node(addr(1, 1000), 1, config(plaintext, 3));
    let server = sim.add_node(addr(2, 2000), 2, config(plaintext, 2));
    let (client_addr, server_addr) = (sim.addr(client), sim.addr(server));
    let mut client_conns: Vec<ConnId> = sim.connect(client, server_addr).into_iter().collect();
    // Every payload sent, by sending node; each is unique (a counter leads it).
    let mut sent: [HashSet<Vec<u8>>; 2] = [HashSet::new(), HashSet::new()];
    let mut counter = 0u32;
    let mut ops = 0;
    while !input.is_empty() && ops < 256 {
        ops += 1;
        match input.u8() % 10 {
            0 => {
                let ms = u64::from(input.u8());
                sim.run_for(Duration::from_millis(ms * ms * 2));
            }
            op @ (1 | 2) => {
                let (node, conns) = if op == 1 {
                    (client, client_conns.clone())
                } else {
                    (server, connected(&sim, server))
                };
                let pick = usize::from(input.u8());
                let len = usize::from(input.u8() % 64);
                if let Some(&conn) = conns.get(pick % conns.len().max(1)) {
                    counter += 1;
                    let mut payload = counter.to_be_bytes().to_vec();
                    payload.resize(4 + len, op);
                    sent[op as usize - 1].insert(payload.clone());
                    let _ = sim.send(node, conn, &payload);
                }
            }
            3 => sim.inject(client_addr, server_addr, input.short_bytes().to_vec()),
            4 => sim.inject(server_addr, client_addr, input.short_bytes().to_vec()),
            5 => {
                let pick = usize::from(input.u16());
                let captured = sim.captured();
                if !captured.is_empty() {
                    let c = &captured[pick % captured.len()];
                    let (from, to, mut bytes) = (c.from, c.to, c.bytes.clone());
                    let flips = input.u8() % 4;
                    for _ in 0..flips {
                        let at = usize::from(input.u8());
                        let mask = input.u8();
                        if !bytes.is_empty() {
                            let i = at % bytes.len();
                            bytes[i] ^= mask;
                        }
                    }
                    sim.inject(from, to, bytes);
                }
            }
            6 => {
                let who = input.u8();
                let reason = match who >> 2 {
                    0 => CloseReason::Normal,
                    n => CloseReason::Application(u16::from(n)),
                };
                let (node, conns) = if who & 1 == 0 {
                    (client, client_conns.clone())
                } else {
                    (server, connected(&sim, server))
                };
                if let Some(&conn) = conns.get(usize::from(who >> 1) % conns.len().max(1)) {
                    let _ = sim.close(node, conn, reason);
                }
            }
            7 => {
                if let Ok(conn) = sim.connect(client, server_addr) {
                    client_conns.push(conn);
                }
            }
            8 => {
                let f = input.u8();
                sim.set_faults(FaultConfig {
                    loss: f64::from(f & 0x3) * 0.1,
                    duplicate: f64::from((f >> 2) & 0x3) * 0.1,
                    reorder: f64::from((f >> 4) & 0x3) * 0.1,
                    corrupt: f64::from(f >> 6) * 0.05,
                    ..FaultConfig::default()
                });
            }
            _ => sim.inject(addr(9, 9000), server_addr, input.short_bytes().to_vec()),
        }
    }
    // Let everything in flight land and every timer that is due now fire.
    sim.run_for(Duration::from_millis(200));
    check(&sim, [client, server], &sent, plaintext);
}

/// The server's sessions that connected (their IDs), in order.
fn connected(sim: &Sim, node: usize) -> Vec<ConnId> {
    sim.trace()
        .iter()
        .filter(|e| e.node == node)
        .filter_map(|e| match e.event {
            Event::Connected { conn, .. } => Some(conn),
            _ => None,
        })
        .collect()
}

fn check(sim: &Sim, nodes: [usize; 2], sent: &[HashSet<Vec<u8>>; 2], plaintext: bool) {
    // Per node and session: connected, disconnected, and each message delivered.
    let mut connected: HashSet<(usize, ConnId)> = HashSet::new();
    let mut closed: HashSet<(usize, ConnId)> = HashSet::new();
    let mut delivered: HashMap<usize, HashSet<Vec<u8>>> = HashMap::new();
    for e in sim.trace() {
        let conn = match &e.event {
            Event::Connected { conn, .. }
            | Event::Message { conn, .. }
            | Event::Disconnected { conn, .. } => *conn,
        };
        let key = (e.node, conn);
        assert!(
            !closed.contains(&key),
            "an event after the disconnect: {e:?}"
        );
        match &e.event {
            Event::Connected { .. } => {
                assert!(connected.insert(key), "connected twice: {e:?}");
            }
            Event::Message { bytes, .. } if !plaintext => {
                let from = if e.node == nodes[0] { 1 } else { 0 };
                assert!(sent[from].contains(bytes), "a message nobody sent: {e:?}");
                assert!(
                    delivered.entry(e.node).or_default().insert(bytes.clone()),
                    "delivered twice: {e:?}"
                );
            }
            Event::Message { .. } => {}
            Event::Disconnected { .. } => {
                closed.insert(key);
            }
        }
    }
}
