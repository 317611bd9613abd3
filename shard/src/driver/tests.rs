//! Driver tests that need the driver's own constants or build SQEs themselves (unsafe code,
//! which only the driver may hold).
#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::{IoUring, opcode, types};

use super::bind_reuseport_group;
use super::{SEND, Shard, ShardControl, ShardExit, SocketOptions, available_or_explain};
use crate::mesh::MeshEnd;
use crate::ring::Wake;
use crate::{Ctx, Handler, ShardConfig};

struct Echo;

impl Handler for Echo {
    type Message = ();
    fn on_datagram(&mut self, peer: SocketAddr, payload: &[u8], ctx: &mut Ctx<'_, ()>) {
        let _counted = ctx.send_to(peer, payload);
    }
}

fn start() -> (
    SocketAddr,
    Arc<ShardControl>,
    std::thread::JoinHandle<ShardExit>,
) {
    let opts = SocketOptions {
        recv_buffer: 0,
        send_buffer: 0,
    };
    let socket = bind_reuseport_group("127.0.0.1:0".parse().unwrap(), 1, opts)
        .unwrap()
        .remove(0);
    let addr = socket.local_addr().unwrap();
    let control = Arc::new(ShardControl::new(0, 1).unwrap());
    let c = Arc::clone(&control);
    let thread = std::thread::spawn(move || {
        Shard::new(c, socket, &ShardConfig::default())
            .unwrap()
            .run(&mut Echo, MeshEnd::solo(0))
            .unwrap()
    });
    (addr, control, thread)
}

/// A completion that claims to be a send but names no in-flight slot (here posted into the
/// shard's ring by another ring with `MSG_RING`) is counted and frees nothing.
#[test]
fn a_foreign_send_completion_is_counted_and_frees_nothing() {
    if !available_or_explain() {
        return;
    }
    let (addr, control, thread) = start();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 16];
    client.send_to(b"a", addr).unwrap();
    client.recv_from(&mut buf).unwrap();
    let target = control.ring_fd().unwrap();
    let mut ring = IoUring::new(8).unwrap();
    // Slot 0 of generation 0 (free again after the echo above, and its generation moved on)
    // and a slot that does not exist.
    for token in [0u64, 1 << 31] {
        let sqe = opcode::MsgRingData::new(types::Fd(target), 0, SEND | token, None)
            .build()
            .user_data(1);
        // SAFETY: a MSG_RING SQE points at no memory of ours.
        unsafe { ring.submission().push(&sqe).unwrap() };
    }
    ring.submit_and_wait(2).unwrap();
    let results: Vec<i32> = ring.completion().map(|c| c.result()).collect();
    if results.iter().any(|r| *r < 0) {
        println!("skipping: MSG_RING into the shard's ring failed: {results:?}");
        control.request_stop().unwrap();
        thread.join().unwrap();
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while control.stats().send_unknown_completions < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    // The shard still sends, slot accounting intact.
    client.send_to(b"b", addr).unwrap();
    let (n, _) = client.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"b");
    control.request_stop().unwrap();
    let exit = thread.join().unwrap();
    let s = &exit.stats;
    assert_eq!(s.send_unknown_completions, 2, "{s}");
    assert_eq!(s.datagrams_out, 2, "{s}");
    assert!(exit.drained, "{s}");
}
