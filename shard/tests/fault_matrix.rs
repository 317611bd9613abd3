//! The fault matrix: the sans-IO session core through the seeded simulator under loss from 0
//! to 30%, 5% duplication, reordering, 1% corruption, blackholes shorter and longer than the
//! idle timeout, and a peer that restarts. Deterministic: every time is virtual, every fault
//! drawn from the seed.
//!
//! In every cell: nothing corrupted or forged is delivered (each message is one the peer sent,
//! byte for byte), nothing is delivered twice, each session connects at most once and
//! disconnects exactly once with no event after; sessions survive outages shorter than the
//! idle timeout and close exactly once on longer ones; the same seed gives the same trace.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::collections::{HashMap, HashSet};

use common::*;
use ringwire_shard::session::sim::TraceEntry;

const CLIENTS: u8 = 4;
const SERVER: usize = 0;
/// Each side sends on each session this often.
const PERIOD: Duration = Duration::from_millis(100);

/// Noise mode with a 10 s keepalive and a 30 s idle timeout (the defaults, stated).
fn config(id: u8) -> EndpointConfig {
    let mut c = cfg_id(id);
    c.idle_timeout = Duration::from_secs(30);
    c.keepalive_interval = Some(Duration::from_secs(10));
    c
}

/// A server with 2 shards and `CLIENTS` clients, each opening one session.
struct Net {
    sim: Sim,
    clients: Vec<(usize, ConnId)>,
    /// Every payload sent, by the sending node.
    sent: HashMap<usize, HashSet<Vec<u8>>>,
    seq: u32,
}

impl Net {
    fn new(seed: u64, faults: FaultConfig) -> Self {
        let mut sim = Sim::new(seed, faults);
        let s = sim.add_node(addr(2, 2000), 2, config(2));
        assert_eq!(s, SERVER);
        let clients = (0..CLIENTS)
            .map(|i| {
                let c = sim.add_node(addr(10 + i, 1000), 1, config(10 + i));
                (c, sim.connect(c, sim.addr(SERVER)).unwrap())
            })
            .collect();
        Net {
            sim,
            clients,
            sent: HashMap::new(),
            seq: 0,
        }
    }

    /// The server's live sessions (connected, not yet disconnected).
    fn server_conns(&self) -> Vec<ConnId> {
        let gone: HashSet<ConnId> = disconnects(&self.sim, SERVER)
            .into_iter()
            .map(|d| d.1)
            .collect();
        connected(&self.sim, SERVER)
            .into_iter()
            .filter(|c| !gone.contains(c))
            .collect()
    }

    /// Both sides send one unique message on every session, then time moves on by `PERIOD`.
    fn round(&mut self) {
        let mut sends: Vec<(usize, ConnId)> = self.clients.clone();
        sends.extend(self.server_conns().into_iter().map(|c| (SERVER, c)));
        for (node, conn) in sends {
            self.seq += 1;
            let mut payload = vec![node as u8];
            payload.extend_from_slice(&self.seq.to_be_bytes());
            payload.resize(40, 0x5a);
            if self.sim.send(node, conn, &payload) == SendOutcome::Queued {
                self.sent.entry(node).or_default().insert(payload);
            }
        }
        self.sim.run_for(PERIOD);
    }

    fn rounds(&mut self, d: Duration) {
        for _ in 0..(d.as_millis() / PERIOD.as_millis()) {
            self.round();
        }
    }

    /// The invariants of every cell; returns (messages delivered, by receiving node).
    fn check(&self) -> HashMap<usize, usize> {
        check_trace(self.sim.trace(), &self.sent, &HashSet::new())
    }
}

/// Nothing forged or corrupted delivered, nothing twice, each session connected at most once
/// and disconnected at most once with nothing after. `forgotten`: sessions a restart erased
/// (no disconnect of theirs is owed).
fn check_trace(
    trace: &[TraceEntry],
    sent: &HashMap<usize, HashSet<Vec<u8>>>,
    forgotten: &HashSet<(usize, ConnId)>,
) -> HashMap<usize, usize> {
    let mut connected = HashSet::new();
    let mut closed = HashSet::new();
    let mut delivered: HashMap<usize, HashSet<&[u8]>> = HashMap::new();
    for e in trace {
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
            Event::Connected { .. } => assert!(connected.insert(key), "connected twice: {e:?}"),
            Event::Message { bytes, .. } => {
                let from = if e.node == SERVER {
                    usize::from(bytes[0])
                } else {
                    SERVER
                };
                assert!(
                    sent.get(&from).is_some_and(|s| s.contains(bytes)),
                    "delivered but never sent (corrupted or forged): {e:?}"
                );
                assert!(
                    delivered.entry(e.node).or_default().insert(bytes),
                    "delivered twice: {e:?}"
                );
            }
            Event::Disconnected { .. } => {
                assert!(
                    !forgotten.contains(&key),
                    "a forgotten session closed: {e:?}"
                );
                closed.insert(key);
            }
        }
    }
    delivered.into_iter().map(|(n, s)| (n, s.len())).collect()
}

/// Every cell of the random-fault matrix: loss 0 to 30% with 5% duplication, 10% reordering
/// (up to 50 ms) and 1% corruption. Sessions open, carry traffic for 10 s, then close.
#[test]
fn random_faults_matrix() {
    for (i, loss) in [0.0, 0.05, 0.1, 0.2, 0.3].into_iter().enumerate() {
        let faults = FaultConfig {
            loss,
            duplicate: 0.05,
            reorder: 0.1,
            reorder_delay: Duration::from_millis(50),
            corrupt: 0.01,
            jitter: Duration::from_millis(5),
            ..FaultConfig::default()
        };
        let mut net = Net::new(100 + i as u64, faults);
        net.rounds(Duration::from_secs(10));
        // Handshakes that failed: each ends once, with HandshakeTimeout; a corrupted datagram
        // is lost too. The bound is the protocol's (common::handshake_failure_bound).
        let failed: Vec<_> = net
            .clients
            .iter()
            .filter(|(c, conn)| !connected(&net.sim, *c).contains(conn))
            .collect();
        let bound = max_failures(u32::from(CLIENTS), handshake_failure_bound(loss + 0.01));
        assert!(
            failed.len() as u32 <= bound,
            "loss {loss}: {} handshakes failed, bound {bound}",
            failed.len()
        );
        // Established sessions survive: nothing but loss and corruption (no forgery can pass
        // them) reaches them, and a message every 100 ms each way keeps them far from idle.
        for &(c, conn) in &net.clients {
            let closes: Vec<_> = disconnects(&net.sim, c)
                .into_iter()
                .filter(|d| d.1 == conn)
                .collect();
            if connected(&net.sim, c).contains(&conn) {
                assert!(closes.is_empty(), "loss {loss}: closed {closes:?}");
            } else {
                assert_eq!(closes.len(), 1, "loss {loss}: a failed handshake ends once");
                assert_eq!(closes[0].2, CloseReason::HandshakeTimeout);
            }
        }
        let delivered = net.check();
        if loss == 0.0 {
            // Only corruption lost anything: most got through.
            assert!(delivered.values().all(|n| *n > 0), "{delivered:?}");
        }
        // Clients close; every session of both sides ends exactly once (a lost Close is
        // covered by the idle timeout).
        for (c, conn) in net.clients.clone() {
            let _ = net.sim.close(c, conn, CloseReason::Normal);
        }
        net.sim.run_for(Duration::from_secs(90));
        net.check();
        for node in 0..=usize::from(CLIENTS) {
            assert_eq!(net.sim.session_count(node), 0, "loss {loss}: node {node}");
            let opened: HashSet<ConnId> = connected(&net.sim, node).into_iter().collect();
            let ended: Vec<ConnId> = disconnects(&net.sim, node)
                .into_iter()
                .map(|d| d.1)
                .collect();
            assert!(
                opened.iter().all(|c| ended.contains(c)),
                "loss {loss}: node {node}"
            );
        }
    }
}

/// Duplication and reordering without loss or corruption: every message arrives exactly once.
#[test]
fn duplication_and_reordering_lose_nothing() {
    let faults = FaultConfig {
        duplicate: 0.05,
        reorder: 0.2,
        reorder_delay: Duration::from_millis(50),
        jitter: Duration::from_millis(5),
        ..FaultConfig::default()
    };
    let mut net = Net::new(7, faults);
    net.rounds(Duration::from_secs(10));
    net.sim.run_for(Duration::from_secs(1));
    let delivered = net.check();
    let client_sent: usize = net.clients.iter().map(|(c, _)| net.sent[c].len()).sum();
    assert_eq!(
        delivered[&SERVER], client_sent,
        "every client message, once"
    );
    let server_sent = net.sent[&SERVER].len();
    let client_got: usize = (1..=usize::from(CLIENTS)).map(|n| delivered[&n]).sum();
    assert_eq!(client_got, server_sent, "every server message, once");
}

/// A blackhole shorter than the idle timeout: no session ends, and everything sent after it
/// lifts is delivered.
#[test]
fn short_blackhole_is_survived() {
    let mut net = Net::new(11, FaultConfig::default());
    net.rounds(Duration::from_secs(2));
    assert_eq!(net.server_conns().len(), usize::from(CLIENTS));
    net.sim.set_faults(FaultConfig {
        loss: 1.0,
        ..FaultConfig::default()
    });
    net.rounds(Duration::from_secs(15));
    net.sim.set_faults(FaultConfig::default());
    let before = net.check();
    let sent_before: usize = net.sent.values().map(HashSet::len).sum();
    net.rounds(Duration::from_secs(5));
    net.sim.run_for(Duration::from_secs(1));
    let after = net.check();
    for node in 0..=usize::from(CLIENTS) {
        assert!(
            disconnects(&net.sim, node).is_empty(),
            "node {node} closed a session"
        );
    }
    let sent_after = net.sent.values().map(HashSet::len).sum::<usize>() - sent_before;
    let got_after = after.values().sum::<usize>() - before.values().sum::<usize>();
    assert_eq!(got_after, sent_after, "everything after the outage arrives");
}

/// A blackhole longer than the idle timeout: every session ends exactly once on each side,
/// by idle timeout; afterwards a new session works.
#[test]
fn long_blackhole_closes_each_session_once() {
    let mut net = Net::new(12, FaultConfig::default());
    net.rounds(Duration::from_secs(2));
    net.sim.set_faults(FaultConfig {
        loss: 1.0,
        ..FaultConfig::default()
    });
    net.rounds(Duration::from_secs(60));
    net.sim.set_faults(FaultConfig::default());
    net.rounds(Duration::from_secs(5));
    net.check();
    for node in 0..=usize::from(CLIENTS) {
        let closes = disconnects(&net.sim, node);
        let opened = connected(&net.sim, node);
        assert_eq!(closes.len(), opened.len(), "node {node}: {closes:?}");
        assert!(
            closes.iter().all(|d| d.2 == CloseReason::IdleTimeout),
            "{closes:?}"
        );
        assert_eq!(net.sim.session_count(node), 0);
    }
    let (c, _) = net.clients[0];
    let conn = net.sim.connect(c, net.sim.addr(SERVER)).unwrap();
    net.sim.run_for(Duration::from_millis(100));
    assert!(
        connected(&net.sim, c).contains(&conn),
        "a new session after the outage"
    );
}

/// The server restarts (every session lost, same identity): each client's session ends exactly
/// once, by the restarted server's authenticated Reset, and a new session works.
#[test]
fn peer_restart_ends_each_session_once() {
    let mut net = Net::new(13, FaultConfig::default());
    net.rounds(Duration::from_secs(2));
    let forgotten: HashSet<(usize, ConnId)> = net
        .server_conns()
        .into_iter()
        .map(|c| (SERVER, c))
        .collect();
    assert_eq!(forgotten.len(), usize::from(CLIENTS));
    net.sim.restart_node(SERVER);
    net.rounds(Duration::from_secs(5));
    check_trace(net.sim.trace(), &net.sent, &forgotten);
    for &(c, conn) in &net.clients {
        let closes: Vec<_> = disconnects(&net.sim, c)
            .into_iter()
            .filter(|d| d.1 == conn)
            .collect();
        assert_eq!(closes.len(), 1, "client {c}: {closes:?}");
        assert_eq!(closes[0].2, CloseReason::Reset, "client {c}");
    }
    let (c, _) = net.clients[0];
    let conn = net.sim.connect(c, net.sim.addr(SERVER)).unwrap();
    net.sim.run_for(Duration::from_millis(100));
    assert!(
        connected(&net.sim, c).contains(&conn),
        "a new session after the restart"
    );
}

/// The same seed gives the same trace, in the harshest cell, blackhole and restart included.
#[test]
fn same_seed_same_trace_under_every_fault() {
    fn run(seed: u64) -> Vec<TraceEntry> {
        let faults = FaultConfig {
            loss: 0.3,
            duplicate: 0.05,
            reorder: 0.1,
            corrupt: 0.01,
            jitter: Duration::from_millis(5),
            ..FaultConfig::default()
        };
        let mut net = Net::new(seed, faults);
        net.rounds(Duration::from_secs(5));
        net.sim.set_faults(FaultConfig {
            loss: 1.0,
            ..faults
        });
        net.rounds(Duration::from_secs(10));
        net.sim.set_faults(faults);
        net.sim.restart_node(SERVER);
        net.rounds(Duration::from_secs(5));
        net.sim.trace().to_vec()
    }
    let a = run(21);
    assert!(a.len() > 100, "a busy trace: {}", a.len());
    assert_eq!(a, run(21));
}
