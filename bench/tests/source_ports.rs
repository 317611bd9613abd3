//! Seen from the server: each simulated peer sends from its own source port.

mod common;

use std::collections::HashSet;
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[test]
fn every_peer_has_its_own_source_port() {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
    let addr = sock.local_addr().expect("addr");
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut ports = HashSet::new();
            let mut datagrams = 0usize;
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    ports.insert(from.port());
                    datagrams += 1;
                    let _ = sock.send_to(&buf[..n], from);
                }
            }
            (ports, datagrams)
        })
    };
    let args = common::closed_loop(addr, 300, 4);
    let report = ringwire_bench::load::execute(&args).expect("load runs");
    stop.store(true, Ordering::Relaxed);
    let (ports, datagrams) = server.join().expect("server thread");
    // Window 4: at most 4 datagrams in flight, which loopback cannot drop.
    assert_eq!(report.lost, 0, "{report}");
    // One datagram per peer in rotation (300 peers, window 4): the first 300 the server saw
    // came from 300 ports.
    assert_eq!(
        ports.len(),
        datagrams.min(300),
        "server saw {} source ports in {datagrams} datagrams",
        ports.len()
    );
}
