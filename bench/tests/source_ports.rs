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
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    ports.insert(from.port());
                    let _ = sock.send_to(&buf[..n], from);
                }
            }
            ports
        })
    };
    let args = common::closed_loop(addr, 300, 4);
    let report = ringwire_bench::load::execute(&args).expect("load runs");
    stop.store(true, Ordering::Relaxed);
    let ports = server.join().expect("server thread");
    assert_eq!(report.lost, 0, "{report}");
    assert_eq!(ports.len(), 300, "server saw {} source ports", ports.len());
}
