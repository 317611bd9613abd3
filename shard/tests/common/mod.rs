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
    Event, Handled, Keypair, PublicKey, SESSION_STATE_SIZE, SendOutcome, SessionState, Timestamp,
};

pub const KEY: [u8; 32] = [0x5a; 32];
/// The Unix time at the simulator's time zero (Initiation timestamps are wall-clock).
pub const UNIX_AT_ZERO: Duration = Duration::from_secs(1_700_000_000);

/// A fixed identity: keypair number `n`.
pub fn keypair(n: u8) -> Keypair {
    Keypair::from_seed_bytes([n; 32])
}

/// Noise mode with identity `n`.
pub fn cfg_id(n: u8) -> EndpointConfig {
    let mut c = EndpointConfig::new(KEY, keypair(n));
    c.unix_time_at_origin = UNIX_AT_ZERO;
    c
}

/// Noise mode, identity 1 (tests where every node may share it).
pub fn cfg() -> EndpointConfig {
    cfg_id(1)
}

/// Plaintext mode.
pub fn plain_cfg() -> EndpointConfig {
    let mut c = EndpointConfig::plaintext(KEY);
    c.unix_time_at_origin = UNIX_AT_ZERO;
    // Tests open thousands of sessions at one instant; the cookie rate limit has its own test.
    c.cookie_replies_per_second = 1_000_000;
    c
}

pub fn addr(last: u8, port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, last), port))
}

/// Carries every datagram between two endpoints at `now` (the client at `c_addr`, the server
/// at `s_addr`), the server's due timers fired each round, until neither has one to send: a
/// handshake and its confirming Ping, without a simulated network.
pub fn exchange_until_quiet(
    client: &mut Endpoint,
    server: &mut Endpoint,
    c_addr: SocketAddr,
    s_addr: SocketAddr,
    now: Timestamp,
) {
    let mut buf = vec![0u8; 2048];
    loop {
        let mut moved = false;
        while let Some(t) = client.poll_transmit(now, &mut buf) {
            let _ = server.handle_datagram(now, c_addr, &buf[..t.len]);
            moved = true;
        }
        server.handle_timeout(now);
        while let Some(t) = server.poll_transmit(now, &mut buf) {
            let _ = client.handle_datagram(now, s_addr, &buf[..t.len]);
            moved = true;
        }
        if !moved {
            break;
        }
    }
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

/// Plaintext mode: opens a session on `ep` from a client at `from` with connection ID `cid`,
/// as a client would (Initiation, CookieReply, Initiation with mac2, Response, then a Ping
/// that confirms it), draining every reply. Returns the server's connection ID.
pub fn open_plain(ep: &mut Endpoint, now: Timestamp, from: SocketAddr, cid: u64) -> ConnId {
    use ringwire_shard::session::{cookie, crypto, handshake};
    let mut buf = vec![0u8; ep.config().max_datagram()];
    let mut init = [0u8; wire::INITIATION_LEN];
    let n = handshake::write_plain_initiation(cid, 0, None, &mut init);
    assert_eq!(ep.handle_datagram(now, from, &init[..n]), Handled::Consumed);
    let t = ep.poll_transmit(now, &mut buf).unwrap();
    let d = wire::parse(&buf[..t.len]).unwrap();
    let wire::Body::CookieReply { nonce, sealed } = d.body else {
        panic!("expected a CookieReply: {d:?}")
    };
    let mut mac1 = [0u8; 16];
    mac1.copy_from_slice(&init[wire::field::INIT_PLAIN_MAC1]);
    let c =
        crypto::open_cookie(&cookie::cookie_seal_key(&[0; 32]), &nonce, &mac1, &sealed).unwrap();
    let n = handshake::write_plain_initiation(cid, 1, Some(c), &mut init);
    assert_eq!(ep.handle_datagram(now, from, &init[..n]), Handled::Consumed);
    let t = ep.poll_transmit(now, &mut buf).unwrap();
    let d = wire::parse(&buf[..t.len]).unwrap();
    let wire::Body::Response { plain_conn_id, .. } = d.body else {
        panic!("expected a Response: {d:?}")
    };
    assert_eq!(d.dst_conn_id, cid);
    let mut ping = vec![0u8; wire::transport_len(wire::PING_BODY, false)];
    wire::write_header(&mut ping, wire::MsgType::Ping, 0, plain_conn_id, 0);
    assert_eq!(ep.handle_datagram(now, from, &ping), Handled::Consumed);
    let _pong = ep.poll_transmit(now, &mut buf).unwrap();
    assert_eq!(buf[0] & 0x0f, wire::MsgType::Pong as u8);
    ConnId(plain_conn_id)
}

/// A plaintext transport message's body, as received (no decryption in plaintext mode).
pub fn plain_message(bytes: &[u8]) -> (u64, Message<'_>) {
    let d = wire::parse(bytes).unwrap();
    let wire::Body::Transport { ty, body, .. } = d.body else {
        panic!("not a transport message: {d:?}")
    };
    (d.dst_conn_id, wire::parse_plain(ty, body).unwrap())
}

/// Initiation attempts before the handshake gives up: sent at 0, 0.5, 1.5, 3.5, 5.5, 7.5 and
/// 9.5 s, timeout at 10 s (`handshake_retransmits_with_backoff_then_times_out_once` pins them).
pub const INITIATION_ATTEMPTS: i32 = 7;

/// An upper bound on the probability that a handshake fails when every datagram is lost with
/// probability `loss`, from the protocol rather than from runs: not under load, each attempt
/// is one round trip (Initiation -> Response; 20 ms here, far inside the gaps between
/// attempts) that survives with `q = (1 - loss)^2`, and one surviving attempt completes the
/// handshake. So the rate is at most `P(Binomial(7, q) = 0) = (1 - q)^7`.
pub fn handshake_failure_bound(loss: f64) -> f64 {
    let q = (1.0 - loss).powi(2);
    (1.0 - q).powi(INITIATION_ATTEMPTS)
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

/// A plaintext-mode transport message, as a peer would send it.
pub fn plain_frame(dst: u64, pn: u64, msg: &Message<'_>) -> Vec<u8> {
    let mut b = vec![0u8; wire::transport_len(msg.body_len(), false)];
    wire::write_header(&mut b, msg.msg_type(), 0, dst, pn);
    let _ = msg.write_body(&mut b[wire::HEADER_LEN..]).unwrap();
    b
}
