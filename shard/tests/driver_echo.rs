//! The shard loop over a real socket: echo, ENOBUFS and re-arm, stop and drain.
#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use ringwire_shard::driver::{SocketOptions, available_or_explain, bind_reuseport_group};
use ringwire_shard::mesh::MeshEnd;
use ringwire_shard::{Ctx, Handler, SendOutcome, Shard, ShardConfig, ShardControl, ShardExit};

struct Echo;

impl Handler for Echo {
    type Message = ();
    fn on_datagram(&mut self, peer: SocketAddr, payload: &[u8], ctx: &mut Ctx<'_, ()>) {
        let outcome = ctx.send_to(peer, payload);
        assert_ne!(outcome, SendOutcome::TooLarge { len: 0, max: 0 });
    }
}

fn start(
    config: ShardConfig,
) -> (
    SocketAddr,
    Arc<ShardControl>,
    std::thread::JoinHandle<ShardExit>,
) {
    let opts = SocketOptions {
        recv_buffer: 4 << 20,
        send_buffer: 4 << 20,
    };
    let mut group = bind_reuseport_group("127.0.0.1:0".parse().unwrap(), 1, opts).unwrap();
    let socket = group.remove(0);
    let addr = socket.local_addr().unwrap();
    let control = Arc::new(ShardControl::new(0, 1).unwrap().0);
    let c = Arc::clone(&control);
    let thread = std::thread::spawn(move || {
        Shard::new(c, socket, &config)
            .unwrap()
            .run(&mut Echo, MeshEnd::solo(0))
            .unwrap()
    });
    (addr, control, thread)
}

fn big_buffer_client() -> UdpSocket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    s.set_recv_buffer_size(4 << 20).unwrap();
    s.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    s.into()
}

#[test]
fn echoes_and_stops_cleanly() {
    if !available_or_explain() {
        return;
    }
    let (addr, control, thread) = start(ShardConfig::default());
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 2048];
    for i in 0..100u32 {
        let msg = i.to_be_bytes();
        client.send_to(&msg, addr).unwrap();
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], &msg);
        assert_eq!(from, addr);
    }
    control.request_stop().unwrap();
    let exit = thread.join().unwrap();
    assert!(exit.drained);
    assert_eq!(exit.stats.datagrams_in, 100);
    assert_eq!(exit.stats.datagrams_out, 100);
    assert_eq!(exit.stats.bytes_out, 400);
    assert!(exit.stats.enter_calls > 0);
}

#[test]
fn tiny_buffer_ring_survives_a_burst_via_enobufs_and_rearm() {
    if !available_or_explain() {
        return;
    }
    let mut config = ShardConfig::default();
    config.recv_buffers = 4;
    let (addr, control, thread) = start(config);
    let client = big_buffer_client();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // A burst far larger than the ring, sent before reading anything back.
    let burst = 2000u32;
    for i in 0..burst {
        client.send_to(&i.to_be_bytes(), addr).unwrap();
    }
    let mut buf = [0u8; 64];
    let mut got = 0u32;
    let mut last_error = None;
    while got < burst {
        match client.recv_from(&mut buf) {
            Ok(_) => got += 1,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                last_error = Some(e);
                break;
            }
        }
    }
    // Loopback with 4 MiB socket buffers holds the burst: the ring running dry must not lose it.
    let stats = control.stats();
    assert_eq!(
        got, burst,
        "every datagram of the burst is echoed (stopped by {last_error:?}); server: {stats}"
    );
    assert!(
        stats.enobufs > 0,
        "the burst exhausted the buffer ring: {stats}"
    );
    assert!(
        stats.recv_rearms > 0,
        "the multishot receive was re-armed: {stats}"
    );
    // Traffic continues after the burst.
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client.send_to(b"after", addr).unwrap();
    let (n, _) = client.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"after");
    control.request_stop().unwrap();
    let exit = thread.join().unwrap();
    assert_eq!(exit.stats.datagrams_in, u64::from(burst) + 1);
}

#[test]
fn send_errors_are_counted_by_errno() {
    if !available_or_explain() {
        return;
    }
    struct Misdirect;
    impl Handler for Misdirect {
        type Message = ();
        fn on_datagram(&mut self, _peer: SocketAddr, payload: &[u8], ctx: &mut Ctx<'_, ()>) {
            // An IPv6 destination from an IPv4 socket fails in the kernel, not here.
            let v6: SocketAddr = "[::1]:9".parse().unwrap();
            assert_eq!(ctx.send_to(v6, payload), SendOutcome::Queued);
        }
    }
    let opts = SocketOptions {
        recv_buffer: 0,
        send_buffer: 0,
    };
    let socket = bind_reuseport_group("127.0.0.1:0".parse().unwrap(), 1, opts)
        .unwrap()
        .remove(0);
    let addr = socket.local_addr().unwrap();
    let control = Arc::new(ShardControl::new(0, 1).unwrap().0);
    let c = Arc::clone(&control);
    let thread = std::thread::spawn(move || {
        Shard::new(c, socket, &ShardConfig::default())
            .unwrap()
            .run(&mut Misdirect, MeshEnd::solo(0))
            .unwrap()
    });
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..3 {
        client.send_to(b"x", addr).unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while control.stats().send_errors_total() < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    control.request_stop().unwrap();
    let exit = thread.join().unwrap();
    assert_eq!(exit.stats.send_errors_total(), 3, "{}", exit.stats);
    assert_eq!(exit.stats.datagrams_out, 0);
}
