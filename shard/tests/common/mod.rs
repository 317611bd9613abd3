//! Helpers shared by the `session_*` integration tests (each binary uses a subset).
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
