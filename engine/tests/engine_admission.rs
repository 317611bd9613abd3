//! Admission control and the connection manager on a real engine over loopback: one address
//! (one UDP socket, as in the attack of issue 10) tries 10,000 sessions and gets at most its
//! per-prefix cap, while the shard's accounted memory stays within its budget; two shards
//! bring the node back within its high watermark.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::ErrorKind;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::HANG;
use ringwire::Engine;
use ringwire::apps::SessionEcho;
use ringwire::kernel::available_or_explain;
use ringwire::session::admission::{AdmissionConfig, BudgetConfig, RateLimit};
use ringwire::session::manager::ManagerConfig;
use ringwire::session::{
    CloseReason, ConnIdGen, ConnectError, Endpoint, EndpointConfig, Event, Keypair, Placement,
    SessionClock, SessionHost, Timestamp,
};

const ATTEMPTS: usize = 10_000;
/// The per-prefix cap (one shard: its whole part).
const CAP: usize = 256;
/// The shard's memory budget.
const LIMIT: usize = 1 << 20;

fn server_identity() -> Keypair {
    Keypair::from_seed_bytes([0x52; 32])
}

fn counter(counters: &[(&'static str, u64)], name: &str) -> u64 {
    counters
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no {name} in {counters:?}"))
}

#[test]
fn one_address_trying_ten_thousand_sessions_gets_at_most_its_cap() {
    if !available_or_explain() {
        return;
    }
    let mut config = common::config(1);
    config.shard.socket_recv_buffer = 8 << 20;
    let clock = SessionClock::start();
    let max_datagram = config.shard.max_datagram;
    let mut admission = AdmissionConfig::default();
    admission.max_sessions_per_prefix = CAP;
    // The rate would bind first (20 per second); this test is about the cap and the budget.
    admission.new_sessions_per_prefix = RateLimit::per_second(1_000_000, 1_000_000);
    // Every refusal answered (their rate limit has its own test): the attempts end sooner.
    admission.refusal_replies = RateLimit::per_second(1_000_000, 1_000_000);
    admission.memory = {
        let mut b = BudgetConfig::default();
        b.limit = LIMIT;
        b.session_limit = LIMIT / 2;
        b.shed_above = LIMIT * 3 / 4;
        b
    };
    let mut engine = Engine::try_start(&config, move |info| {
        let mut ep = EndpointConfig::new([9; 32], server_identity());
        ep.admission = Some(admission.clone());
        ep.manager = Some(ManagerConfig::default());
        let place = Placement::new(clock, info.index, info.shards, max_datagram);
        SessionHost::new(ep, place, [3; 32], SessionEcho::default())
    })
    .unwrap();
    let server = engine.local_addr();

    // The attacker: one socket, one endpoint, as many handshakes as its control queue holds.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_nonblocking(true).unwrap();
    let mut cfg = EndpointConfig::new([8; 32], Keypair::from_seed_bytes([0x53; 32]));
    cfg.accept_incoming = false;
    cfg.keepalive_interval = None;
    cfg.handshake_timeout = Duration::from_secs(3);
    cfg.unix_time_at_origin = clock.unix_time_at_origin();
    let mut client =
        Endpoint::new(cfg, 0, 1, ConnIdGen::seed_from_u64(11), Timestamp::ZERO).unwrap();
    let now = || clock.stamp(Instant::now());
    let mut buf = vec![0u8; 2048];
    let mut rx = vec![0u8; 2048];
    let (mut started, mut connected, mut refused, mut timed_out) = (0, 0, 0, 0);
    let mut most_on_server = 0;
    let begun = Instant::now();
    // The hang guard is on progress, not on the whole attack: 10,000 handshakes' worth of
    // Diffie-Hellman work take a loaded machine a while, but attempts that never resolve
    // leave the count standing still for HANG.
    let mut progress = (0, begun);
    while connected + refused + timed_out < ATTEMPTS {
        let resolved = connected + refused + timed_out;
        if resolved > progress.0 {
            progress = (resolved, Instant::now());
        }
        assert!(
            progress.1.elapsed() < HANG,
            "no attempt resolved for {HANG:?}: {connected} connected, {refused} refused, \
             {timed_out} timed out of {started} started"
        );
        // A few at a time, reading in between: the client's socket buffer must not overflow
        // with the answers while it does its Diffie-Hellman work.
        for _ in 0..64 {
            if started == ATTEMPTS {
                break;
            }
            match client.connect(now(), server, Some(server_identity().public)) {
                Ok(_) => started += 1,
                Err(ConnectError::ControlQueueFull) => break,
                Err(e) => panic!("{e}"),
            }
        }
        let t = now();
        if client.poll_timeout().is_some_and(|d| d <= t) {
            client.handle_timeout(t);
        }
        while let Some(tx) = client.poll_transmit(now(), &mut buf) {
            // A full socket buffer loses the datagram; handshakes retransmit.
            let _ = socket.send_to(&buf[..tx.len], tx.dst);
        }
        let mut read = 0;
        loop {
            match socket.recv_from(&mut rx) {
                Ok((n, from)) => {
                    read += 1;
                    let _ = client.handle_datagram(now(), from, &rx[..n]);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        while let Some(e) = client.poll_event() {
            match e {
                Event::Connected { .. } => connected += 1,
                Event::Disconnected {
                    reason: CloseReason::Refused,
                    ..
                } => refused += 1,
                Event::Disconnected {
                    reason: CloseReason::HandshakeTimeout,
                    ..
                } => timed_out += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        most_on_server = most_on_server.max(connected);
        if read == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    eprintln!(
        "{ATTEMPTS} attempts: {connected} connected, {refused} refused, {timed_out} timed out, \
         in {:?}",
        begun.elapsed()
    );
    assert!(connected <= CAP, "{connected} sessions for one address");
    assert!(connected > 0, "some sessions open");
    assert!(refused > 0, "refusals reach the initiator");

    let counters = engine.app_counters(HANG).remove(0).unwrap();
    let sessions = counter(&counters, "sessions") as usize;
    assert!(sessions <= CAP, "{sessions} sessions on the server");
    assert!(counter(&counters, "session_refusals_prefix_full") > 0);
    assert!(counter(&counters, "session_refused_sent") > 0);
    let (peak, limit) = (
        counter(&counters, "session_memory_peak"),
        counter(&counters, "session_memory_limit"),
    );
    assert_eq!(limit, LIMIT as u64);
    assert!(
        peak <= limit,
        "accounted memory peaked at {peak} of {limit}"
    );
    // Every attempt the server saw is admitted or refused by reason, once.
    let attempts = counter(&counters, "session_admitted");
    assert!(attempts >= connected as u64);
    common::shutdown(engine);
}

/// Two shards, each trimming only its own sessions, bring the node back within its high
/// watermark by exchanging counts on the mesh's control lane; every trimmed client is told
/// with `Close(Trimmed)`.
#[test]
fn two_shards_bring_the_node_within_its_high_watermark() {
    use ringwire::session::Closer;
    use ringwire::session::client::ClientPool;

    const CLIENTS: usize = 80;
    const HIGH: usize = 40;
    const LOW: usize = 30;
    if !available_or_explain() {
        return;
    }
    let mut config = common::config(2);
    config.steering = true;
    let clock = SessionClock::start();
    let max_datagram = config.shard.max_datagram;
    let mut engine = Engine::try_start(&config, move |info| {
        let mut ep = EndpointConfig::new([9; 32], server_identity());
        ep.keepalive_interval = None;
        let mut admission = AdmissionConfig::default();
        admission.new_sessions_per_prefix = RateLimit::per_second(1_000_000, 1_000_000);
        let mut manager = ManagerConfig::default();
        manager.high_watermark = HIGH;
        manager.low_watermark = LOW;
        manager.grace_period = Duration::ZERO;
        manager.silence_period = Duration::from_millis(300);
        ep.admission = Some(admission);
        ep.manager = Some(manager);
        let place = Placement::new(clock, info.index, info.shards, max_datagram);
        SessionHost::new(
            ep,
            place,
            [info.index as u8 + 5; 32],
            SessionEcho::default(),
        )
    })
    .unwrap();
    let mut client = EndpointConfig::new([8; 32], Keypair::from_seed_bytes([0x54; 32]));
    client.keepalive_interval = None;
    let mut pool = ClientPool::new(client, 13).unwrap();
    for _ in 0..CLIENTS {
        pool.connect(
            "127.0.0.1:0".parse().unwrap(),
            engine.local_addr(),
            Some(server_identity().public),
        )
        .unwrap();
    }
    let node = |engine: &mut ringwire::EngineHandle, name: &str| -> u64 {
        engine
            .app_counters(HANG)
            .into_iter()
            .map(|c| counter(&c.unwrap(), name))
            .sum()
    };
    let (mut connected, mut trimmed) = (0, 0);
    let mut events = Vec::new();
    let deadline = Instant::now() + HANG;
    loop {
        assert!(
            Instant::now() < deadline,
            "{connected} connected, {trimmed} trimmed"
        );
        if pool.poll(&mut events).unwrap() == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        for e in events.drain(..) {
            match e {
                Event::Connected { .. } => connected += 1,
                Event::Disconnected {
                    reason: CloseReason::Trimmed,
                    by: Closer::Peer,
                    ..
                } => trimmed += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        // Settled: every client connected, every trim the shards made reached its client,
        // the shards hold exactly the sessions their clients still hold, and the node is back
        // within its high watermark. The equality is part of being settled, not an assertion
        // after it: the two counters are read one after the other, and a shard still trimming
        // between the reads (seen under CI load: 26 trims read, then 29 sessions left after 25
        // more) makes them disagree until those trims reach their clients.
        if connected == CLIENTS {
            let trims = node(&mut engine, "session_trims_watermark");
            let sessions = node(&mut engine, "sessions") as usize;
            if trims > 0
                && trims == trimmed
                && sessions == CLIENTS - trimmed as usize
                && sessions <= HIGH
            {
                assert!(
                    sessions + 2 >= LOW,
                    "{sessions} sessions: trimmed below low"
                );
                break;
            }
        }
    }
    assert!(node(&mut engine, "session_load_reports_received") > 0);
    common::shutdown(engine);
}
