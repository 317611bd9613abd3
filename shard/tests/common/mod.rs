//! Helpers shared by the shard's integration tests (each binary uses a subset): the session
//! simulator and protocol bounds here, `/proc` observables in [`os`].
#![allow(dead_code, unused_imports, clippy::unwrap_used)]

pub mod os;

pub use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
pub use std::time::Duration;

pub use ringwire_shard::session::sim::{FaultConfig, Sim};
pub use ringwire_shard::session::wire::{self, Message};
pub use ringwire_shard::session::{
    CloseOutcome, CloseReason, Closer, ConnId, ConnIdGen, DropReason, Endpoint, EndpointConfig,
    Event, Handled, SESSION_STATE_SIZE, SendOutcome, SessionState, Timestamp,
};

pub const KEY: [u8; 32] = [0x5a; 32];

pub fn cfg() -> EndpointConfig {
    EndpointConfig::new(KEY)
}

pub fn addr(last: u8, port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, last), port))
}

/// A client node and a server node, connected; returns (sim, client conn, server conn).
pub fn established(
    seed: u64,
    client: EndpointConfig,
    server: EndpointConfig,
) -> (Sim, ConnId, ConnId) {
    let mut sim = Sim::new(seed, FaultConfig::default());
    let c = sim.add_node(addr(1, 1000), 1, client);
    let s = sim.add_node(addr(2, 2000), 1, server);
    let cc = sim.connect(c, sim.addr(s)).unwrap();
    sim.run_for(Duration::from_millis(100));
    let sc = server_conn(&sim, s).expect("server accepted");
    assert!(connected(&sim, c).contains(&cc));
    (sim, cc, sc)
}

pub fn connected(sim: &Sim, node: usize) -> Vec<ConnId> {
    sim.trace()
        .iter()
        .filter(|e| e.node == node)
        .filter_map(|e| match e.event {
            Event::Connected { conn, .. } => Some(conn),
            _ => None,
        })
        .collect()
}

pub fn server_conn(sim: &Sim, node: usize) -> Option<ConnId> {
    connected(sim, node).first().copied()
}

pub fn disconnects(sim: &Sim, node: usize) -> Vec<(Timestamp, ConnId, CloseReason, Closer)> {
    sim.trace()
        .iter()
        .filter(|e| e.node == node)
        .filter_map(|e| match e.event {
            Event::Disconnected { conn, reason, by } => Some((e.at, conn, reason, by)),
            _ => None,
        })
        .collect()
}

pub fn messages(sim: &Sim, node: usize) -> Vec<Vec<u8>> {
    sim.trace()
        .iter()
        .filter(|e| e.node == node)
        .filter_map(|e| match &e.event {
            Event::Message { bytes, .. } => Some(bytes.clone()),
            _ => None,
        })
        .collect()
}

pub fn hello(src_conn_id: u64, cookie: Option<wire::CookieToken>) -> Vec<u8> {
    let mut b = vec![0u8; wire::HELLO_LEN];
    let n = wire::encode(
        0,
        0,
        &Message::Hello {
            src_conn_id,
            cookie,
        },
        &mut b,
    )
    .unwrap();
    assert_eq!(n, wire::HELLO_LEN);
    b
}

/// Client Hello attempts before the handshake gives up: sent at 0, 0.5, 1.5, 3.5, 5.5, 7.5 and
/// 9.5 s, timeout at 10 s (`handshake_retransmits_with_backoff_then_times_out_once` pins them).
pub const HELLO_ATTEMPTS: i32 = 7;

/// An upper bound on the probability that a handshake fails when every datagram is lost with
/// probability `loss`, from the protocol rather than from runs: each Hello attempt is a round
/// trip (20 ms here, far inside the gaps between attempts) that survives with
/// `q = (1 - loss)^2`, and a handshake needs two that survive (Hello -> Cookie, then Hello with
/// cookie -> Accept; a lost Accept is answered again on the next attempt). The client also sends
/// its Hello with cookie as soon as a Cookie arrives, a chance this model leaves out, so the
/// real rate is at most `P(Binomial(7, q) <= 1)`.
pub fn handshake_failure_bound(loss: f64) -> f64 {
    let q = (1.0 - loss).powi(2);
    let n = HELLO_ATTEMPTS;
    (1.0 - q).powi(n) + f64::from(n) * q * (1.0 - q).powi(n - 1)
}

/// The most failures out of `runs` independent tries, each failing with probability at most
/// `p`, that the test accepts: the smallest `k` with `P(Binomial(runs, p) > k) < 1e-6`. A
/// protocol that meets its bound fails such a check one time in a million seeds; one that
/// stopped retransmitting would fail it outright.
pub fn max_failures(runs: u32, p: f64) -> u32 {
    let pmf = |j: u32| -> f64 {
        let choose: f64 = (1..=j)
            .map(|i| f64::from(runs - j + i) / f64::from(i))
            .product();
        choose * p.powi(j as i32) * (1.0 - p).powi((runs - j) as i32)
    };
    (0..=runs)
        .find(|&k| (k + 1..=runs).map(pmf).sum::<f64>() < 1e-6)
        .unwrap_or(runs)
}
