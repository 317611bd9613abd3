//! The engine over real sockets: many peers over two shards, idle CPU, clean shutdown.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::os::{self, HANG};
use common::{kernel_drops, parked, sends_asked};
use ringwire::Engine;
use ringwire::ShardStats;
use ringwire::apps::{Echo, SockperfServer};
use ringwire::kernel::available_or_explain;

/// Whether a thread with this id still exists in this process.
fn thread_alive(tid: u64) -> bool {
    std::path::Path::new(&format!("/proc/self/task/{tid}")).exists()
}

#[test]
fn two_shards_echo_every_datagram_from_256_ports_and_stop_in_time() {
    if !available_or_explain() {
        return;
    }
    let engine = Engine::start(&common::config(2), |_| Echo).unwrap();
    let addr = engine.local_addr();
    let tids = engine.thread_ids();
    assert_eq!(tids.len(), 2);
    assert!(tids.iter().all(|t| thread_alive(*t)));

    let peers: Vec<UdpSocket> = (0..256)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    let ports: HashSet<u16> = peers
        .iter()
        .map(|p| p.local_addr().unwrap().port())
        .collect();
    assert_eq!(ports.len(), 256);
    let peer_drops = || ports.iter().map(|p| os::udp_drops(*p)).sum::<u64>();
    let msg = |round: u32, i: usize| [round.to_be_bytes(), (i as u32).to_be_bytes()].concat();
    let mut buf = [0u8; 64];
    let (mut sent, mut echoed) = (0u64, 0u64);
    for round in 0..4u32 {
        for (i, p) in peers.iter().enumerate() {
            p.send_to(&msg(round, i), addr).unwrap();
            sent += 1;
        }
        // Loopback may drop a datagram at a full socket buffer; the engine may not. So the
        // round ends when every datagram is accounted for: read by a shard or dropped by the
        // kernel at the shards' sockets, every one read answered, and every answer read by its
        // peer or dropped at the peer's socket.
        os::wait_until("every datagram of the round accounted for", || {
            for (i, p) in peers.iter().enumerate() {
                loop {
                    match p.recv_from(&mut buf) {
                        Ok((n, from)) => {
                            assert_eq!(from, addr);
                            assert_eq!(&buf[..n], &msg(round, i)[..], "peer {i}, round {round}");
                            echoed += 1;
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => panic!("peer {i}: {e}"),
                    }
                }
            }
            let total = ShardStats::sum(&engine.stats());
            sent == total.datagrams_in + kernel_drops(addr)
                && sends_asked(&total) == total.datagrams_in
                && echoed + peer_drops() == total.datagrams_out
        });
    }
    let stats = engine.stats();
    assert!(
        stats.iter().all(|s| s.datagrams_in > 0),
        "both shards received traffic: {stats:?}"
    );
    let (server_drops, client_drops) = (kernel_drops(addr), peer_drops());

    // `shutdown` returns Err(Timeout) naming any shard that is not stopped by the deadline (a
    // liveness guard here), and every shard drains.
    let report = common::shutdown(engine);
    let total = report.total();
    assert_eq!(total.datagrams_in + server_drops, 4 * 256, "{total}");
    // Every datagram read was answered: no send refused (256 per round is far below the
    // default 4,096 send slots) or failed.
    assert_eq!(total.datagrams_out, total.datagrams_in, "{total}");
    assert_eq!(sends_asked(&total), total.datagrams_out, "{total}");
    assert_eq!(echoed + client_drops, total.datagrams_out);
    println!("loopback dropped {server_drops} at the shards, {client_drops} at the peers");
    // `shutdown` joined every shard thread, so each has returned; the kernel reaps a thread a
    // moment after the join's wake-up (the exit clears the join futex before the task leaves
    // /proc), so wait for the tasks to go. A thread left behind never goes: the wait's hang
    // guard fails the test.
    os::wait_until("every shard thread gone from /proc/self/task", || {
        tids.iter().all(|t| !thread_alive(*t))
    });
}

/// One echo through the engine (the read timeout is a liveness guard only).
fn round_trip(client: &UdpSocket, addr: SocketAddr, payload: &[u8]) {
    client.send_to(payload, addr).unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = client.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (payload, addr));
}

/// How long, at least, each shard is watched while idle. No assertion depends on it: an idle
/// shard must not run however long it idles. It only sets which faults the test can see: a
/// loop that wakes itself every `P` shows up for any `P` shorter than this.
const IDLE_WINDOW: Duration = Duration::from_secs(1);

/// An idle shard sleeps in `io_uring_enter` and does not run at all until something arrives for
/// it: its loop does not turn, its thread is not even switched in. Each shard is watched while
/// the other one serves round trips (at least 500, for at least [`IDLE_WINDOW`]).
#[test]
fn idle_shards_sleep_in_the_kernel_and_do_not_turn() {
    if !available_or_explain() {
        return;
    }
    let engine = Engine::start(&common::config(2), |_| Echo).unwrap();
    let addr = engine.local_addr();
    let tids = engine.thread_ids();
    assert!(tids.iter().all(|t| *t != 0));
    // Not a session header (version nibble 6), so steering would leave it to the 4-tuple hash:
    // one client socket always reaches the same shard.
    let payload = b"idle test";
    let mut via: [Option<UdpSocket>; 2] = [None, None];
    for attempt in 0.. {
        if via.iter().all(Option::is_some) {
            break;
        }
        assert!(attempt < 64, "64 client ports all hashed to one shard");
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.set_read_timeout(Some(HANG)).unwrap();
        let before: Vec<u64> = engine.stats().iter().map(|s| s.datagrams_in).collect();
        round_trip(&client, addr, payload);
        let mut landed = None;
        os::wait_until("the shard that echoed to publish its counters", || {
            let grew: Vec<usize> = engine
                .stats()
                .iter()
                .zip(&before)
                .filter(|(s, b)| s.datagrams_in > **b)
                .map(|(s, _)| s.shard)
                .collect();
            landed = grew.first().copied();
            grew.len() == 1
        });
        let shard = landed.unwrap();
        if via[shard].is_none() {
            via[shard] = Some(client);
        }
    }

    for quiet in 0..2 {
        let busy = 1 - quiet;
        let mut idle = None;
        os::wait_until("the quiet shard to park in io_uring_enter", || {
            idle = parked(&engine, quiet, tids[quiet]);
            idle.is_some()
        });
        let before = engine.stats();
        let client = via[busy].as_ref().unwrap();
        let start = Instant::now();
        let mut trips = 0;
        while trips < 500 || start.elapsed() < IDLE_WINDOW {
            round_trip(client, addr, payload);
            trips += 1;
        }
        assert_eq!(
            parked(&engine, quiet, tids[quiet]),
            idle,
            "shard {quiet} ran while idle (loop turns, context switches)"
        );
        // Not vacuous: the busy shard's counters are live. Each datagram was handled in a turn
        // of its own (the next one was sent only after its echo), so once the busy shard has
        // published all of them it has published at least as many turns.
        let mut after = engine.stats();
        os::wait_until("the busy shard to publish the round trips", || {
            after = engine.stats();
            after[busy].datagrams_in >= before[busy].datagrams_in + trips
        });
        assert!(
            after[busy].loop_turns >= before[busy].loop_turns + trips,
            "{}",
            after[busy]
        );
        assert_eq!(
            after[quiet], before[quiet],
            "shard {quiet} counted something"
        );
    }
    common::shutdown(engine);
}

#[test]
fn sockperf_app_answers_like_sockperf_server() {
    if !available_or_explain() {
        return;
    }
    let engine = Engine::start(&common::config(1), |_| SockperfServer::default()).unwrap();
    let addr: SocketAddr = engine.local_addr();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    // A liveness guard only: nothing below waits for an answer that may not come.
    client.set_read_timeout(Some(HANG)).unwrap();
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
    // Throughput-mode messages (no reply requested) and warm-ups want no answer; junk and a
    // message longer than its datagram are rejected.
    for m in [
        msg(8, 0x1, 32, 32),
        msg(9, 0x7, 32, 32),
        vec![1, 2, 3],
        msg(10, 0x3, 64, 32),
    ] {
        client.send_to(&m, addr).unwrap();
    }
    // A last request: one socket, one shard, datagrams handled in order, so its answer proves
    // that the four before it were read and judged.
    client.send_to(&msg(11, 0x3, 32, 32), addr).unwrap();
    let (n, _) = client.recv_from(&mut buf).unwrap();
    assert_eq!(
        &buf[..n],
        &msg(11, 0x2, 32, 32)[..],
        "the first answer after 7 is 11's"
    );
    let dropped = kernel_drops(addr);
    let total = common::shutdown(engine).total();
    // read = handled + dropped by reason: all six datagrams were read and handed to the app,
    // which asked for exactly the two answers the client got, rejected the two malformed ones,
    // and by the protocol answers the other two with nothing.
    assert_eq!((total.datagrams_in, dropped), (6, 0), "{total}");
    assert_eq!(sends_asked(&total), 2, "{total}");
    assert_eq!(total.datagrams_out, 2, "{total}");
    assert_eq!(total.rejected, 2, "{total}");
    client.set_nonblocking(true).unwrap();
    let more = client.recv_from(&mut buf);
    assert!(
        matches!(&more, Err(e) if e.kind() == ErrorKind::WouldBlock),
        "{more:?}"
    );
}

/// A `UDP_SEGMENT` control message of `segment` bytes, laid out as `cmsghdr` (length, level,
/// type) and the 16-bit size, padded to 8 bytes (64-bit Linux).
fn segment_control(segment: u16) -> Vec<u8> {
    let mut c = Vec::with_capacity(24);
    c.extend_from_slice(&18usize.to_ne_bytes());
    c.extend_from_slice(&libc::SOL_UDP.to_ne_bytes());
    c.extend_from_slice(&libc::UDP_SEGMENT.to_ne_bytes());
    c.extend_from_slice(&segment.to_ne_bytes());
    c.resize(24, 0);
    c
}

/// The echo app handles a GRO-coalesced buffer whole: one GSO send per buffer, every
/// datagram back byte for byte, every counter exact (datagrams and bytes in and out, sends in
/// place, buffers lent and returned, nothing refused).
#[test]
fn echo_answers_a_coalesced_buffer_with_one_send_and_exact_counters() {
    if !available_or_explain() {
        return;
    }
    let engine = Engine::start(&common::config(1), |_| Echo).unwrap();
    let addr = engine.local_addr();
    let started = engine.stats()[0].clone();
    if started.gro_enabled == 0 || started.gso_enabled == 0 {
        println!("skipping: this kernel refused UDP_GRO or UDP_SEGMENT: {started}");
        common::shutdown(engine);
        return;
    }
    let client = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    client
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    let client: UdpSocket = client.into();
    client.set_read_timeout(Some(HANG)).unwrap();
    let to = socket2::SockAddr::from(addr);
    let sock = socket2::SockRef::from(&client);
    let mut sent = Vec::new();
    for round in 0..3u32 {
        // Nine datagrams of 1,200 bytes and a last of 700.
        let bytes: Vec<u8> = (0..9 * 1200 + 700u32)
            .map(|i| (i * 3 + round) as u8)
            .collect();
        let control = segment_control(1200);
        let iov = [std::io::IoSlice::new(&bytes)];
        let msg = socket2::MsgHdr::new()
            .with_addr(&to)
            .with_buffers(&iov)
            .with_control(&control);
        assert_eq!(sock.sendmsg(&msg, 0).unwrap(), bytes.len());
        let mut buf = [0u8; 2048];
        let mut echoed = Vec::new();
        for _ in 0..10 {
            let (n, from) = client.recv_from(&mut buf).unwrap();
            assert_eq!(from, addr);
            echoed.extend_from_slice(&buf[..n]);
        }
        assert_eq!(echoed, bytes, "round {round}");
        sent.push(bytes.len() as u64);
    }
    let report = common::shutdown(engine);
    let s = report.total();
    let bytes: u64 = sent.iter().sum();
    assert_eq!(
        (s.recv_coalesced, s.datagrams_in, s.bytes_in),
        (3, 30, bytes),
        "{s}"
    );
    assert_eq!((s.datagrams_out, s.bytes_out), (30, bytes), "{s}");
    assert_eq!((s.send_coalesced, s.send_in_place), (3, 30), "{s}");
    assert_eq!(sends_asked(&s), s.datagrams_in, "{s}");
    assert_eq!(s.send_in_place_over_cap, 0, "{s}");
    assert_eq!(s.recv_lent, s.recv_lent_returned, "{s}");
}
