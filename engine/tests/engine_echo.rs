//! The engine over real sockets: many peers over two shards, idle CPU, clean shutdown.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use ringwire::apps::{Echo, SockperfServer};
use ringwire::{Engine, EngineConfig};
use ringwire_shard::driver::{available_or_explain, thread_cpu_time};

/// Whether a thread with this id still exists in this process.
fn thread_alive(tid: u64) -> bool {
    std::path::Path::new(&format!("/proc/self/task/{tid}")).exists()
}

#[test]
fn two_shards_echo_every_datagram_from_256_ports_and_stop_in_time() {
    if !available_or_explain() {
        return;
    }
    let config = EngineConfig::unpinned("127.0.0.1:0".parse().unwrap(), 2);
    let engine = Engine::start(&config, |_| Echo).unwrap();
    let addr = engine.local_addr();
    let tids = engine.thread_ids();
    assert_eq!(tids.len(), 2);
    assert!(tids.iter().all(|t| thread_alive(*t)));

    let peers: Vec<UdpSocket> = (0..256)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s
        })
        .collect();
    let ports: HashSet<u16> = peers
        .iter()
        .map(|p| p.local_addr().unwrap().port())
        .collect();
    assert_eq!(ports.len(), 256);
    let mut buf = [0u8; 64];
    for round in 0..4u32 {
        for (i, p) in peers.iter().enumerate() {
            p.send_to(
                &[&round.to_be_bytes()[..], &(i as u32).to_be_bytes()[..]].concat(),
                addr,
            )
            .unwrap();
        }
        for (i, p) in peers.iter().enumerate() {
            let (n, from) = p.recv_from(&mut buf).unwrap();
            assert_eq!(from, addr);
            assert_eq!(
                &buf[..n],
                &[&round.to_be_bytes()[..], &(i as u32).to_be_bytes()[..]].concat()
            );
        }
    }
    let stats = engine.stats();
    assert!(
        stats.iter().all(|s| s.datagrams_in > 0),
        "both shards received traffic: {stats:?}"
    );

    // `shutdown` returns Err(Timeout) naming any shard that is not stopped by the deadline.
    let report = engine.shutdown(Duration::from_secs(2)).unwrap();
    assert!(report.shards.iter().all(|s| s.drained));
    let total = report.total();
    assert_eq!(total.datagrams_in, 4 * 256);
    assert_eq!(total.datagrams_out, 4 * 256);
    assert_eq!(total.send_errors_total(), 0);
    assert!(
        tids.iter().all(|t| !thread_alive(*t)),
        "no shard thread is left behind"
    );
}

#[test]
fn idle_shards_use_no_cpu() {
    if !available_or_explain() {
        return;
    }
    let config = EngineConfig::unpinned("127.0.0.1:0".parse().unwrap(), 2);
    let engine = Engine::start(&config, |_| Echo).unwrap();
    // Let start-up settle, then measure a quiet second.
    std::thread::sleep(Duration::from_millis(100));
    let tids = engine.thread_ids();
    assert!(tids.iter().all(|t| *t != 0));
    let before: Vec<Duration> = tids.iter().map(|t| thread_cpu_time(*t).unwrap()).collect();
    let turns_before: u64 = engine.stats().iter().map(|s| s.loop_turns).sum();
    std::thread::sleep(Duration::from_secs(1));
    let after: Vec<Duration> = tids.iter().map(|t| thread_cpu_time(*t).unwrap()).collect();
    let turns_after: u64 = engine.stats().iter().map(|s| s.loop_turns).sum();
    for (b, a) in before.iter().zip(&after) {
        // /proc reports whole clock ticks (10 ms); a spinning thread would show ~1 s here.
        assert!(
            *a - *b <= Duration::from_millis(20),
            "idle shard used {:?}",
            *a - *b
        );
    }
    assert_eq!(
        turns_before, turns_after,
        "an idle shard does not turn its loop"
    );
    engine.shutdown(Duration::from_secs(2)).unwrap();
}

#[test]
fn sockperf_app_answers_like_sockperf_server() {
    if !available_or_explain() {
        return;
    }
    let config = EngineConfig::unpinned("127.0.0.1:0".parse().unwrap(), 1);
    let engine = Engine::start(&config, |_| SockperfServer::default()).unwrap();
    let addr: SocketAddr = engine.local_addr();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let msg = |seq: u64, flags: u16, len: u32, total: usize| {
        let mut m = Vec::new();
        m.extend_from_slice(&seq.to_be_bytes());
        m.extend_from_slice(&flags.to_be_bytes());
        m.extend_from_slice(&len.to_be_bytes());
        m.resize(total, 0x5a);
        m
    };
    let mut buf = [0u8; 2048];
    // A ping-pong request is answered with the client bit cleared, byte for byte otherwise.
    client.send_to(&msg(7, 0x3, 32, 32), addr).unwrap();
    let (n, _) = client.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], &msg(7, 0x2, 32, 32)[..]);
    // Throughput-mode messages (no reply requested), warm-ups and junk get nothing.
    for m in [
        msg(8, 0x1, 32, 32),
        msg(9, 0x7, 32, 32),
        vec![1, 2, 3],
        msg(10, 0x3, 64, 32),
    ] {
        client.send_to(&m, addr).unwrap();
        assert!(client.recv_from(&mut buf).is_err(), "no reply to {m:?}");
    }
    let report = engine.shutdown(Duration::from_secs(2)).unwrap();
    let total = report.total();
    assert_eq!(total.datagrams_out, 1);
    assert_eq!(total.rejected, 2);
}
