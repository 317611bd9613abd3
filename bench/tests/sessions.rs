//! `load --mode session` and `--mode relay` against an in-process engine
//! (session-echo on one shard, relay on two): every session opens, every
//! request comes back, the JSON parses. Skips where io_uring is unavailable.
#![allow(clippy::unwrap_used)]

mod common;

use ringwire::apps::{Relay, SessionEcho};
use ringwire::{Engine, EngineConfig, EngineHandle, Handler};
use ringwire_bench::load::report::LoadReport;
use ringwire_bench::load::{LoadArgs, Mode};
use ringwire_shard::driver::available_or_explain;
use ringwire_shard::session::EndpointConfig;
use ringwire_shard::session::{Placement, SessionApp, SessionClock, SessionHost};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The engine's static identity; the load generator is given its public key.
fn server_identity() -> ringwire_shard::session::Keypair {
    ringwire_shard::session::Keypair::from_seed_bytes([0x42; 32])
}

fn engine<A>(shards: usize, app: fn() -> A) -> EngineHandle
where
    A: SessionApp + Send + 'static,
    SessionHost<A>: Handler,
{
    engine_with(shards, app, false)
}

/// [`engine`], in plaintext mode (`security = none`) when `plaintext`.
fn engine_with<A>(shards: usize, app: fn() -> A, plaintext: bool) -> EngineHandle
where
    A: SessionApp + Send + 'static,
    SessionHost<A>: Handler,
{
    engine_on("127.0.0.1:0".parse().unwrap(), shards, app, plaintext)
}

/// [`engine_with`] bound to `addr`.
fn engine_on<A>(addr: SocketAddr, shards: usize, app: fn() -> A, plaintext: bool) -> EngineHandle
where
    A: SessionApp + Send + 'static,
    SessionHost<A>: Handler,
{
    engine_slots(addr, shards, app, plaintext, None)
}

/// [`engine_on`] with `send_slots` send slots per shard (`None`: the default).
fn engine_slots<A>(
    addr: SocketAddr,
    shards: usize,
    app: fn() -> A,
    plaintext: bool,
    send_slots: Option<usize>,
) -> EngineHandle
where
    A: SessionApp + Send + 'static,
    SessionHost<A>: Handler,
{
    let key = [42u8; 32];
    let mut config = EngineConfig::unpinned(addr, shards);
    if let Some(slots) = send_slots {
        config.shard.send_slots = slots;
    }
    config.shard.socket_recv_buffer = 8 << 20;
    // Every deadline the engine has is a liveness guard here: a slow machine must not fail it.
    config.start_timeout = common::os::HANG;
    config.stop_timeout = common::os::HANG;
    config.shard.drain_timeout = common::os::HANG;
    let clock = SessionClock::start();
    let max_datagram = config.shard.max_datagram;
    Engine::try_start(&config, move |info| {
        let place = Placement::new(clock, info.index, info.shards, max_datagram);
        let config = if plaintext {
            EndpointConfig::plaintext(key)
        } else {
            EndpointConfig::new(key, server_identity())
        };
        SessionHost::new(config, place, [info.index as u8 + 1; 32], app())
    })
    .unwrap()
}

/// Runs `args` with a JSON report; returns the report parsed back from it.
fn run_with_json(mut args: LoadArgs, name: &str) -> LoadReport {
    let json = common::temp_json(name);
    args.json = Some(json.clone());
    ringwire_bench::load::run(args).unwrap();
    let text = std::fs::read_to_string(&json).unwrap();
    let _ = std::fs::remove_file(&json);
    let value: serde_json::Value = serde_json::from_str(&text).expect("well-formed JSON");
    for key in ["sessions_established", "handshake_ms", "handshake_failures"] {
        assert!(value.get(key).is_some(), "JSON lacks {key}: {text}");
    }
    serde_json::from_value(value).expect("JSON matches the schema")
}

fn assert_all_delivered(report: &LoadReport, peers: usize) {
    assert_all_delivered_over(report, peers, peers);
}

fn assert_all_delivered_over(report: &LoadReport, sessions: usize, peers: usize) {
    assert_eq!(report.sessions_established, Some(sessions), "{report}");
    assert_eq!(report.handshake_failures, Some(0), "{report}");
    assert!(report.handshake_ms.is_some_and(|ms| ms >= 0.0), "{report}");
    assert!(report.sent > 0, "{report}");
    assert_eq!(report.received, report.sent, "{report}");
    assert_eq!(report.lost, 0, "{report}");
    assert_eq!(
        report.timeouts + report.late + report.misrouted + report.errors,
        0,
        "{report}"
    );
    assert_eq!(report.distinct_source_ports, peers);
    assert!(report.latency_us.p50 > 0.0 && report.latency_us.p50 <= report.latency_us.max);
}

/// Runs `mode` with `peers` peers, closed loop, against a fresh engine of
/// `shards` shards running `app`; asserts everything was delivered.
fn run_mode<A>(mode: Mode, shards: usize, app: fn() -> A, peers: u32) -> Option<LoadReport>
where
    A: SessionApp + Send + 'static,
    SessionHost<A>: Handler,
{
    if !available_or_explain() {
        return None;
    }
    let engine = engine(shards, app);
    let mut args = common::closed_loop(engine.local_addr(), peers, 16);
    args.mode = mode;
    args.server_key = Some(server_identity().public);
    args.cores = None;
    let report = run_with_json(args, &format!("{mode:?}"));
    // The deadline is a liveness guard only.
    engine.shutdown(std::time::Duration::from_secs(60)).unwrap();
    assert_all_delivered(&report, peers as usize);
    Some(report)
}

#[test]
fn session_mode_200_peers_closed_loop() {
    if let Some(report) = run_mode(Mode::Session, 1, SessionEcho::default, 200) {
        assert_eq!(report.mode, "session");
        assert_eq!(
            report.peers_responded,
            common::peers_in_rotation(&report, 200),
            "{report}"
        );
    }
}

/// `--mode session-echo` (the alias) with the key from `--server-key-file`, then `--plaintext`
/// against a plaintext engine: both deliver everything.
#[test]
fn session_echo_with_a_key_file_and_plaintext() {
    if !available_or_explain() {
        return;
    }
    let key_file = common::temp_json("server-key").with_extension("pub");
    std::fs::write(&key_file, format!("{}\n", server_identity().public)).unwrap();
    let engine = engine(1, SessionEcho::default);
    let mut args = common::closed_loop(engine.local_addr(), 20, 8);
    args.mode = <Mode as clap::ValueEnum>::from_str("session-echo", false).unwrap();
    args.server_key_file = Some(key_file.clone());
    args.cores = None;
    let report = run_with_json(args, "key-file");
    engine.shutdown(std::time::Duration::from_secs(60)).unwrap();
    let _ = std::fs::remove_file(&key_file);
    assert_all_delivered(&report, 20);

    let engine = engine_with(1, SessionEcho::default, true);
    let mut args = common::closed_loop(engine.local_addr(), 20, 8);
    args.mode = Mode::Session;
    args.plaintext = true;
    args.cores = None;
    let report = run_with_json(args, "plaintext");
    engine.shutdown(std::time::Duration::from_secs(60)).unwrap();
    assert_all_delivered(&report, 20);
}

#[test]
fn relay_mode_50_pairs_over_two_shards() {
    if let Some(report) = run_mode(Mode::Relay, 2, Relay::default, 100) {
        assert_eq!(report.mode, "relay");
        // Each Forward is answered to the sender's partner: still one peer per datagram.
        assert_eq!(
            report.peers_responded,
            common::peers_in_rotation(&report, 100),
            "{report}"
        );
    }
}

/// Relay bulk mode: two pairs of peers send 1191-byte probes (1200-byte relay messages) with
/// GSO and read with GRO, through a relay shard with GSO and GRO on: every session opens,
/// every request is delivered.
#[test]
fn relay_bulk_mode_two_pairs() {
    if !available_or_explain() || !common::offloads_or_skip() {
        return;
    }
    let engine = engine(1, Relay::default);
    let mut args = common::bulk(engine.local_addr(), 4, 1191, 64);
    args.mode = Mode::Relay;
    args.server_key = Some(server_identity().public);
    args.cores = None;
    let report = run_with_json(args, "relay-bulk");
    engine.shutdown(std::time::Duration::from_secs(60)).unwrap();
    assert!(report.bulk, "{report}");
    assert_all_delivered(&report, 4);
}

/// 60 sessions over 7 peer sockets on 4 source addresses (2 sockets each): the server tells
/// the sessions of one socket apart by connection ID, and every request comes back on its own
/// session.
#[test]
fn many_sessions_share_a_socket() {
    if let Some(report) = sixty_sessions_over_seven_sockets(None, "shared-sockets") {
        assert_eq!(report.sessions, Some(60), "{report}");
    }
}

/// Session echo, closed loop: 60 sessions over 7 peer sockets on 4 source addresses (2 sockets
/// each), traffic on the first `active` sessions (`None`: all); asserts every session opened
/// and everything sent was delivered.
fn sixty_sessions_over_seven_sockets(active: Option<u32>, name: &str) -> Option<LoadReport> {
    if !available_or_explain() {
        return None;
    }
    let engine = engine(1, SessionEcho::default);
    let mut args = common::closed_loop(engine.local_addr(), 7, 16);
    args.mode = Mode::Session;
    args.sessions = Some(60);
    args.active = active;
    args.peers_per_ip = 2;
    args.server_key = Some(server_identity().public);
    args.cores = None;
    let report = run_with_json(args, name);
    engine.shutdown(std::time::Duration::from_secs(60)).unwrap();
    assert_all_delivered_over(&report, 60, 7);
    Some(report)
}

/// `--active 5` among 60 sessions: every session opens, traffic goes to the first 5 only (each
/// of them answered), the other 55 stay idle.
#[test]
fn active_subset_carries_all_traffic() {
    let Some(report) = sixty_sessions_over_seven_sockets(Some(5), "active-subset") else {
        return;
    };
    assert_eq!(report.active, Some(5), "{report}");
    assert_eq!(
        report.peers_responded,
        common::peers_in_rotation(&report, 5),
        "{report}"
    );
}

/// Fan-out through the relay: one publisher and 20 subscribers over 5 sockets, open loop;
/// every published probe reaches every subscriber (sent counts deliveries).
#[test]
fn fanout_mode_reaches_every_subscriber() {
    if !available_or_explain() {
        return;
    }
    let engine = engine(1, Relay::default);
    let mut args = common::closed_loop(engine.local_addr(), 5, 1);
    args.mode = Mode::Fanout;
    args.sessions = Some(21);
    args.window = None;
    args.rate = Some(200.0);
    args.duration = 0.5;
    args.server_key = Some(server_identity().public);
    args.cores = None;
    let report = run_with_json(args, "fanout");
    engine.shutdown(std::time::Duration::from_secs(60)).unwrap();
    assert_eq!(report.mode, "fanout");
    assert!(
        report.sent > 0 && report.sent.is_multiple_of(20),
        "{report}"
    );
    assert_all_delivered_over(&report, 21, 5);
}

/// The cliff (a relay whose send pool was fixed at 64 fell over at a few hundred
/// subscribers): a relay shard with 16 send slots fans out to 150 subscribers, more than 9
/// times its slots per publish. The copies wait in their sessions' queues for slots
/// (`session_backlogged` counts the turns that found every slot in flight), none is refused or
/// lost, and the load generator times every copy's departure from the server.
#[test]
fn fanout_through_a_few_send_slots_loses_nothing() {
    if !available_or_explain() {
        return;
    }
    let engine = engine_slots(
        "127.0.0.1:0".parse().unwrap(),
        1,
        Relay::default,
        false,
        Some(16),
    );
    let mut args = common::closed_loop(engine.local_addr(), 30, 1);
    args.mode = Mode::Fanout;
    args.sessions = Some(151);
    args.window = None;
    args.rate = Some(50.0);
    args.duration = 0.5;
    args.payload = 1191;
    args.server_key = Some(server_identity().public);
    args.cores = None;
    let report = run_with_json(args, "fanout-slots");
    let exit = engine.shutdown(std::time::Duration::from_secs(60)).unwrap();
    assert_all_delivered_over(&report, 151, 30);
    let fan = report.fanout.expect("fan-out timing");
    assert!(fan.publishes > 0, "{report}");
    assert_eq!(fan.untimed, 0, "{report}");
    let stats = exit.total();
    let app = |name: &str| -> u64 {
        exit.shards
            .iter()
            .flat_map(|s| s.app.iter())
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v)
            .sum()
    };
    assert_eq!(stats.send_queue_full, 0, "{stats}");
    assert_eq!(stats.send_errors_total(), 0, "{stats}");
    assert_eq!(app("relay_fanout_dropped"), 0);
    assert!(app("session_backlogged") > 0, "the slots never ran out");
}

#[test]
fn fanout_mode_needs_an_open_loop() {
    let mut args = common::closed_loop("127.0.0.1:9".parse().unwrap(), 3, 1);
    args.mode = Mode::Fanout;
    let err = ringwire_bench::load::execute(&args).unwrap_err();
    assert!(err.to_string().contains("--rate"), "{err}");
}

#[test]
fn relay_mode_rejects_odd_peer_counts() {
    let mut args = common::closed_loop("127.0.0.1:9".parse().unwrap(), 3, 1);
    args.mode = Mode::Relay;
    let err = ringwire_bench::load::execute(&args).unwrap_err();
    assert!(err.to_string().contains("even"), "{err}");
}

/// The relay restarts under an open-loop relay run: the first engine drains (every session
/// hears `Close(ShuttingDown)`), a second one with the same identity takes the port. The load
/// generator counts each session lost once, opens each again, carries on through the second
/// engine, and ends on its own with `sent = received + lost`.
#[test]
fn relay_sessions_reopen_after_a_server_restart() {
    if !available_or_explain() {
        return;
    }
    let first = engine(2, Relay::default);
    let addr = first.local_addr();
    let mut args = common::closed_loop(addr, 4, 1);
    args.mode = Mode::Relay;
    args.server_key = Some(server_identity().public);
    args.cores = None;
    args.window = None;
    args.rate = Some(400.0);
    args.duration = 4.0;
    args.timeout_ms = 500;
    let load = std::thread::spawn(move || ringwire_bench::load::execute(&args).unwrap());
    // Restart once the first engine carries traffic (its counters say so).
    let observer = first.observer();
    let guard = Instant::now() + Duration::from_secs(60);
    while observer.stats().iter().map(|s| s.datagrams_in).sum::<u64>() < 200 {
        assert!(
            Instant::now() < guard,
            "no traffic reached the first engine"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    first.drain(common::os::HANG).unwrap();
    let second = engine_on(addr, 2, Relay::default, false);
    let report = load.join().unwrap();
    let after = second.shutdown(Duration::from_secs(60)).unwrap();
    assert_eq!(report.sessions_established, Some(4), "{report}");
    assert_eq!(report.sessions_lost, 4, "{report}");
    assert_eq!(report.sessions_reopened, 4, "{report}");
    assert_eq!(report.received + report.lost, report.sent, "{report}");
    assert_eq!(report.misrouted, 0, "{report}");
    assert!(report.received > 0, "{report}");
    assert!(
        after.total().datagrams_in > 0,
        "nothing reached the second engine"
    );
}

/// The relay restarts under a fan-out run (one publisher, 20 subscribers over 5 sockets): every
/// session is lost once and opened again, the subscribers subscribe again to the publisher's
/// new relay ID, and the second engine fans the publisher's probes out to them.
#[test]
fn fanout_subscribers_subscribe_again_after_a_server_restart() {
    if !available_or_explain() {
        return;
    }
    let first = engine(1, Relay::default);
    let addr = first.local_addr();
    let mut args = common::closed_loop(addr, 5, 1);
    args.mode = Mode::Fanout;
    args.sessions = Some(21);
    args.server_key = Some(server_identity().public);
    args.cores = None;
    args.window = None;
    args.rate = Some(100.0);
    args.duration = 4.0;
    args.timeout_ms = 500;
    let load = std::thread::spawn(move || ringwire_bench::load::execute(&args).unwrap());
    // Restart once the first engine has fanned probes out (its counters say so).
    let observer = first.observer();
    let guard = Instant::now() + common::os::HANG;
    while observer
        .stats()
        .iter()
        .map(|s| s.datagrams_out)
        .sum::<u64>()
        < 200
    {
        assert!(
            Instant::now() < guard,
            "no traffic came from the first engine"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    first.drain(common::os::HANG).unwrap();
    let second = engine_on(addr, 1, Relay::default, false);
    let report = load.join().unwrap();
    let after = second.shutdown(common::os::HANG).unwrap();
    let app = |name: &str| -> u64 {
        after
            .shards
            .iter()
            .flat_map(|s| s.app.iter())
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v)
            .sum()
    };
    assert_eq!(report.sessions_established, Some(21), "{report}");
    assert_eq!(report.sessions_lost, 21, "{report}");
    assert_eq!(report.sessions_reopened, 21, "{report}");
    assert_eq!(report.received + report.lost, report.sent, "{report}");
    assert_eq!(report.misrouted, 0, "{report}");
    // Each subscriber subscribed again, once, to the publisher's new ID; the second engine
    // fanned probes out to them.
    assert_eq!(app("relay_subscribed"), 20, "{after:?}");
    assert!(app("relay_fanned_out") > 0, "{after:?}");
}
