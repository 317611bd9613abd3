//! How a shard ends with operations in the kernel: a handler that panics under load, a clean
//! stop, and the ring fd peers wake it through. (A completion naming no send of the shard is
//! tested in `src/driver/tests.rs`, which may build its own SQEs.)
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use common::os::HANG;
use ringwire_shard::driver::{SocketOptions, available_or_explain, bind_reuseport_group};
use ringwire_shard::mesh::MeshEnd;
use ringwire_shard::ring::Wake;
use ringwire_shard::{Ctx, Handler, Shard, ShardConfig, ShardControl, ShardExit, ShardStats};

/// Echoes every datagram, each send tagged with its number; panics on `boom`, or when send
/// number `panic_at_send` completes (a panic in the middle of a batch of send completions).
struct EchoThenPanic {
    sent: u64,
    panic_at_send: u64,
}

impl Handler for EchoThenPanic {
    type Message = ();
    fn on_datagram(&mut self, peer: SocketAddr, payload: &[u8], ctx: &mut Ctx<'_, ()>) {
        assert_ne!(payload, b"boom", "the handler panics on purpose");
        self.sent += 1;
        let _counted = ctx.send_to_tagged(peer, payload, self.sent);
    }

    fn on_send_complete(&mut self, tag: u64, _result: std::io::Result<usize>) {
        assert_ne!(tag, self.panic_at_send, "the handler panics on purpose");
    }
}

fn start(
    config: ShardConfig,
    panic_at_send: u64,
) -> (
    SocketAddr,
    Arc<ShardControl>,
    std::thread::JoinHandle<ShardExit>,
) {
    let opts = SocketOptions {
        recv_buffer: 4 << 20,
        send_buffer: 4 << 20,
        mtu_probe: false,
    };
    let socket = bind_reuseport_group("127.0.0.1:0".parse().unwrap(), 1, opts)
        .unwrap()
        .remove(0);
    let addr = socket.local_addr().unwrap();
    let control = Arc::new(ShardControl::new(0, 1).unwrap());
    let c = Arc::clone(&control);
    let thread = std::thread::Builder::new()
        .name("shard-under-test".into())
        .spawn(move || {
            Shard::new(c, socket, &config)
                .unwrap()
                .run(
                    &mut EchoThenPanic {
                        sent: 0,
                        panic_at_send,
                    },
                    MeshEnd::solo(0),
                )
                .unwrap()
        })
        .unwrap();
    (addr, control, thread)
}

/// Loads the shard with echoes (never read back, so sends and receives keep coming), sends
/// `boom` in the middle of the load (unless the handler panics at send `panic_at_send` first),
/// and returns the counters the shard published as it went down.
fn panic_under_load(config: ShardConfig, panic_at_send: u64) -> ShardStats {
    let (addr, control, thread) = start(config, panic_at_send);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    // Wait until the shard is up and echoing (the timeout is a liveness guard only).
    client.set_read_timeout(Some(HANG)).unwrap();
    client.send_to(b"up?", addr).unwrap();
    let mut buf = [0u8; 16];
    client.recv_from(&mut buf).unwrap();
    for i in 0..20_000u32 {
        client.send_to(&i.to_be_bytes(), addr).unwrap();
        if i == 10_000 {
            client.send_to(b"boom", addr).unwrap();
        }
    }
    let panic = thread.join().unwrap_err();
    let msg = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .unwrap_or_default();
    assert!(msg.contains("on purpose"), "the shard died of {msg:?}");
    // Published by the shard's `Drop` before the thread ended.
    let stats = control.stats();
    assert_eq!(
        control.ring_fd(),
        None,
        "peers no longer wake it through its ring"
    );
    stats
}

#[test]
fn a_handler_panic_under_load_drains_the_kernel_before_freeing() {
    if !available_or_explain() {
        return;
    }
    let stats = panic_under_load(
        // Far more than the drain takes; the drain ends as soon as the kernel is done.
        drain_config(HANG),
        0,
    );
    assert_eq!(
        (stats.pools_drained, stats.pools_leaked),
        (1, 0),
        "every receive and send completed before the pools were freed: {stats}"
    );
    assert_eq!(stats.send_unknown_completions, 0, "{stats}");
}

#[test]
fn a_handler_panic_with_no_time_to_drain_leaks_rather_than_frees() {
    if !available_or_explain() {
        return;
    }
    // With no time to wait, the receive the kernel still holds (it was armed when the handler
    // panicked) must keep the pools alive.
    let stats = panic_under_load(drain_config(Duration::ZERO), 0);
    assert_eq!(
        (stats.pools_drained, stats.pools_leaked),
        (0, 1),
        "operations were in the kernel: the pools are leaked: {stats}"
    );
}

/// The panic interrupts a pass over a batch of completions: the completions after the one
/// that panicked were already taken from the kernel, so the drain must finish that batch or
/// their send slots would look in flight for ever (and the pools would be leaked).
#[test]
fn a_panic_amid_send_completions_still_drains() {
    if !available_or_explain() {
        return;
    }
    let stats = panic_under_load(drain_config(HANG), 2000);
    assert_eq!(
        (stats.pools_drained, stats.pools_leaked),
        (1, 0),
        "the interrupted batch was finished and every send accounted for: {stats}"
    );
    assert_eq!(stats.send_unknown_completions, 0, "{stats}");
}

#[test]
fn a_clean_stop_drains_and_frees() {
    if !available_or_explain() {
        return;
    }
    let (addr, control, thread) = start(ShardConfig::default(), 0);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(HANG)).unwrap();
    client.send_to(b"x", addr).unwrap();
    let mut buf = [0u8; 16];
    client.recv_from(&mut buf).unwrap();
    control.request_stop().unwrap();
    let exit = thread.join().unwrap();
    assert!(exit.drained);
    assert_eq!((exit.stats.pools_drained, exit.stats.pools_leaked), (1, 0));
}

/// `/proc/self/fd/N` names an io_uring.
fn is_io_uring(fd: i32) -> bool {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .is_ok_and(|target| target.to_string_lossy().contains("io_uring"))
}

#[test]
fn the_ring_fd_peers_wake_through_is_reset_and_never_reused_while_held() {
    if !available_or_explain() {
        return;
    }
    let (addr, control, thread) = start(ShardConfig::default(), 0);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(HANG)).unwrap();
    client.send_to(b"x", addr).unwrap();
    let mut buf = [0u8; 16];
    client.recv_from(&mut buf).unwrap();
    // What a peer loads just before the shard stops.
    let loaded = control
        .ring_fd()
        .expect("a running shard publishes its ring fd");
    control.request_stop().unwrap();
    thread.join().unwrap();
    assert_eq!(control.ring_fd(), None, "reset when the shard stopped");
    // The shard's own ring is closed, but the number a peer may still submit names the same
    // ring (the duplicate the control block owns), not whatever file took the number next.
    let _fillers: Vec<UdpSocket> = (0..8)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    assert!(is_io_uring(loaded), "fd {loaded} was reused");
}

/// Default settings with this drain timeout.
fn drain_config(drain_timeout: Duration) -> ShardConfig {
    let mut config = ShardConfig::default();
    config.drain_timeout = drain_timeout;
    config
}
