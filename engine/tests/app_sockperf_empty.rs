//! The sockperf app and an empty datagram: no reply (as `sockperf server` 3.7 does), counted
//! as rejected, and the messages after it are answered.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::UdpSocket;

use common::HANG;
use ringwire::Engine;
use ringwire::apps::SockperfServer;
use ringwire::kernel::available_or_explain;

#[test]
fn an_empty_datagram_gets_no_reply_and_is_counted() {
    if !available_or_explain() {
        return;
    }
    let engine = Engine::start(&common::config(1), |_| SockperfServer::default()).unwrap();
    let addr = engine.local_addr();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    // One request in flight at a time: loopback cannot drop it; the timeout is a liveness guard.
    client.set_read_timeout(Some(HANG)).unwrap();
    // A 14-byte ping-pong request: sequence 7, flags client | reply requested, length 14.
    let mut request = Vec::new();
    request.extend_from_slice(&7u64.to_be_bytes());
    request.extend_from_slice(&0x3u16.to_be_bytes());
    request.extend_from_slice(&14u32.to_be_bytes());
    let mut reply = request.clone();
    reply[9] = 0x2;
    let mut buf = [0u8; 64];
    for _ in 0..3 {
        client.send_to(&[], addr).unwrap();
        client.send_to(&request, addr).unwrap();
        // The first datagram back answers the request: the empty one before it got nothing.
        let (n, _) = client.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], &reply[..]);
    }
    let total = common::shutdown(engine).total();
    assert_eq!(total.recv_empty, 3, "{total}");
    assert_eq!(total.rejected, 3, "{total}");
    assert_eq!(total.datagrams_out, 3, "{total}");
}
