//! The shard loop over a real socket: echo, ENOBUFS and re-arm, stop and drain.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;

use common::os::{self, HANG};

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

/// The default shard config with a drain deadline that is a liveness guard only.
fn config() -> ShardConfig {
    let mut config = ShardConfig::default();
    config.drain_timeout = HANG;
    config
}

/// A shard socket on an ephemeral loopback port (4 MiB buffers asked for; the kernel may give
/// less).
fn bind() -> UdpSocket {
    let opts = SocketOptions {
        recv_buffer: 4 << 20,
        send_buffer: 4 << 20,
        mtu_probe: false,
    };
    let mut group = bind_reuseport_group("127.0.0.1:0".parse().unwrap(), 1, opts).unwrap();
    group.remove(0)
}

fn start(
    config: ShardConfig,
) -> (
    SocketAddr,
    Arc<ShardControl>,
    std::thread::JoinHandle<ShardExit>,
) {
    serve(bind(), config)
}

/// Runs an echo shard on `socket`.
fn serve(
    socket: UdpSocket,
    config: ShardConfig,
) -> (
    SocketAddr,
    Arc<ShardControl>,
    std::thread::JoinHandle<ShardExit>,
) {
    let addr = socket.local_addr().unwrap();
    let control = Arc::new(ShardControl::new(0, 1).unwrap());
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
    let (addr, control, thread) = start(config());
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    // One datagram in flight at a time: loopback cannot drop it; the timeout is a liveness
    // guard only.
    client.set_read_timeout(Some(HANG)).unwrap();
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
    let mut config = config();
    // Four buffers whichever pool the shard uses (with GRO on, the 64 KiB buffers).
    config.recv_buffers = 4;
    config.gro_buffers = 4;
    // The burst, far larger than the ring, waits in the socket before the shard exists: the
    // first receive finds more datagrams than the ring has buffers, so the ring must run dry.
    let socket = bind();
    let addr = socket.local_addr().unwrap();
    let client = big_buffer_client();
    let client_port = client.local_addr().unwrap().port();
    let burst = 2000u64;
    for i in 0..burst {
        client.send_to(&i.to_be_bytes(), addr).unwrap();
    }
    let (_, control, thread) = serve(socket, config);
    client.set_nonblocking(true).unwrap();
    // Loopback drops what does not fit a socket buffer, and the kernel counts it; the shard
    // must lose nothing the socket held. The burst is over when every datagram is accounted
    // for: read by the shard or dropped at its socket, each one read echoed, each echo read
    // here or dropped at this socket.
    let mut buf = [0u8; 64];
    let mut got = 0u64;
    os::wait_until("every datagram of the burst accounted for", || {
        loop {
            match client.recv_from(&mut buf) {
                Ok(_) => got += 1,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("client: {e}"),
            }
        }
        let s = control.stats();
        burst == s.datagrams_in + os::udp_drops(addr.port())
            && s.datagrams_out == s.datagrams_in
            && got + os::udp_drops(client_port) == s.datagrams_out
    });
    let stats = control.stats();
    let (server_drops, client_drops) = (os::udp_drops(addr.port()), os::udp_drops(client_port));
    println!(
        "loopback dropped {server_drops} at the shard's socket, {client_drops} at the client's"
    );
    assert!(
        stats.datagrams_in > 4,
        "more datagrams than the ring has buffers: {stats}"
    );
    assert!(
        stats.enobufs > 0,
        "the burst exhausted the buffer ring: {stats}"
    );
    assert!(
        stats.recv_rearms > 0,
        "the multishot receive was re-armed: {stats}"
    );
    assert_eq!(stats.recv_errors + stats.recv_truncated, 0, "{stats}");
    // Traffic continues after the burst.
    client.set_nonblocking(false).unwrap();
    client.set_read_timeout(Some(HANG)).unwrap();
    client.send_to(b"after", addr).unwrap();
    let (n, _) = client.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"after");
    control.request_stop().unwrap();
    let exit = thread.join().unwrap();
    assert!(exit.drained);
    assert_eq!(exit.stats.datagrams_in, stats.datagrams_in + 1);
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
        mtu_probe: false,
    };
    let socket = bind_reuseport_group("127.0.0.1:0".parse().unwrap(), 1, opts)
        .unwrap()
        .remove(0);
    let addr = socket.local_addr().unwrap();
    let control = Arc::new(ShardControl::new(0, 1).unwrap());
    let c = Arc::clone(&control);
    let thread = std::thread::spawn(move || {
        Shard::new(c, socket, &config())
            .unwrap()
            .run(&mut Misdirect, MeshEnd::solo(0))
            .unwrap()
    });
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..3 {
        client.send_to(b"x", addr).unwrap();
    }
    // Three datagrams cannot fill a socket buffer: all three are read, and each send fails.
    os::wait_until("three failed sends", || {
        control.stats().send_errors_total() >= 3
    });
    control.request_stop().unwrap();
    let exit = thread.join().unwrap();
    assert_eq!(exit.stats.datagrams_in, 3, "{}", exit.stats);
    assert_eq!(exit.stats.send_errors_total(), 3, "{}", exit.stats);
    assert_eq!(exit.stats.datagrams_out, 0);
}

/// Datagrams the kernel drops at a shard's full socket are counted by the shard itself, from
/// the `SO_RXQ_OVFL` count the receive path's control messages carry: exactly what
/// `/proc/net/udp` says the socket dropped.
#[test]
fn kernel_drops_at_the_socket_are_counted_from_the_receive_path() {
    if !available_or_explain() {
        return;
    }
    // A tiny socket buffer, filled before the shard exists: most of the burst is dropped there.
    let opts = SocketOptions {
        recv_buffer: 4096,
        send_buffer: 0,
        mtu_probe: false,
    };
    let socket = bind_reuseport_group("127.0.0.1:0".parse().unwrap(), 1, opts)
        .unwrap()
        .remove(0);
    let addr = socket.local_addr().unwrap();
    let client = big_buffer_client();
    let burst = 2000u64;
    for i in 0..burst {
        client.send_to(&i.to_be_bytes(), addr).unwrap();
    }
    let (_, control, thread) = serve(socket, config());
    // Read what the socket held before sending more, or the barrier would find it full too.
    // Loopback delivery is the kernel's receive work, which under load can run after the send
    // returned (deferred to ksoftirqd): the last datagrams of the burst may still be on their
    // way, so wait until every one is either read or dropped, not until the count read now.
    let mut dropped = 0;
    os::wait_until("every datagram of the burst read or dropped", || {
        dropped = os::udp_drops(addr.port());
        control.stats().datagrams_in + dropped == burst
    });
    assert!(
        dropped > 0,
        "a 4 KiB socket buffer cannot hold {burst} datagrams"
    );
    // A barrier sent now carries the socket's drop count; its echo proves it was read.
    client.set_read_timeout(Some(HANG)).unwrap();
    client.send_to(b"barrier", addr).unwrap();
    let mut buf = [0u8; 64];
    loop {
        let (n, _) = client.recv_from(&mut buf).unwrap();
        if &buf[..n] == b"barrier" {
            break;
        }
    }
    os::wait_until("the shard to publish the barrier's turn", || {
        control.stats().datagrams_in == burst - dropped + 1
    });
    assert_eq!(control.stats().kernel_drops, dropped, "{}", control.stats());
    assert_eq!(
        os::udp_drops(addr.port()),
        dropped,
        "nothing dropped after the burst"
    );
    control.request_stop().unwrap();
    let exit = thread.join().unwrap();
    assert_eq!(exit.stats.kernel_drops, dropped);
}
