//! Raw cost of the cryptography, per core: responder handshakes per second, full handshakes
//! (both sides) per second, and transport datagrams sealed and opened per second; and the
//! responder endpoint's whole cost per echoed Data message (`endpoint_echo_cost`). A
//! measurement, not a test of speed: it prints figures and asserts only that the work was
//! done. Rates are per second of this thread's CPU time (`/proc/thread-self/schedstat`), so a
//! busy machine slows the run but not the figures. Run it optimised:
//!
//! ```text
//! cargo test --release -p ringwire-shard --test session_cost -- --ignored --nocapture
//! ```
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration as D;

use common::*;
use ringwire_shard::session::crypto::Key;

const N: usize = 2000;

/// This thread's CPU time so far (nanosecond resolution), as `Instant`-like marks.
struct Cpu(u64);

impl Cpu {
    fn now() -> Self {
        let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
        Cpu(s.split_whitespace().next().unwrap().parse().unwrap())
    }
    fn elapsed(&self) -> D {
        D::from_nanos(Cpu::now().0 - self.0)
    }
}

fn endpoint(config: EndpointConfig, seed: u64) -> Endpoint {
    Endpoint::new(
        config,
        0,
        1,
        ConnIdGen::seed_from_u64(seed),
        Timestamp::ZERO,
    )
    .unwrap()
}

#[test]
#[ignore = "a measurement: run with --release -- --ignored --nocapture"]
fn handshake_and_transport_cost() {
    let mut server_cfg = cfg_id(2);
    server_cfg.handshakes_per_second = u32::MAX;
    server_cfg.handshake_queue_capacity = 2 * N; // never more than half full: not under load
    server_cfg.handshakes_per_turn = N;
    server_cfg.max_unconfirmed = N;
    server_cfg.control_queue_capacity = 4 * N;
    let mut server = endpoint(server_cfg, 1);
    let mut client_cfg = cfg_id(3);
    client_cfg.max_sessions = N;
    client_cfg.control_queue_capacity = 4 * N;
    let mut client = endpoint(client_cfg, 2);
    let key = Some(keypair(2).public);
    let (c_addr, s_addr) = (addr(1, 1000), addr(2, 2000));
    let mut buf = vec![0u8; 2048];
    let now = Timestamp::ZERO;

    // Initiator: write N Initiations (3 X25519 operations each).
    let t0 = Cpu::now();
    for _ in 0..N {
        let _ = client.connect(now, s_addr, key).unwrap();
    }
    let write_init = t0.elapsed();
    let mut inits = Vec::with_capacity(N);
    while let Some(t) = client.poll_transmit(now, &mut buf) {
        inits.push(buf[..t.len].to_vec());
    }
    assert_eq!(inits.len(), N);

    // Responder: mac1, queue, read, Response (5 X25519 operations each).
    let t0 = Cpu::now();
    for b in &inits {
        assert_eq!(server.handle_datagram(now, c_addr, b), Handled::Consumed);
    }
    server.handle_timeout(now);
    let respond = t0.elapsed();
    let mut responses = Vec::with_capacity(N);
    while let Some(t) = server.poll_transmit(now, &mut buf) {
        responses.push(buf[..t.len].to_vec());
    }
    assert_eq!(responses.len(), N);
    assert_eq!(server.stats().handshakes_completed, N as u64);

    // Initiator: read N Responses (2 X25519 operations each).
    let t0 = Cpu::now();
    for b in &responses {
        assert_eq!(client.handle_datagram(now, s_addr, b), Handled::Consumed);
    }
    let read_resp = t0.elapsed();

    // Transport: seal and open 1200-byte Data under one key (ChaCha20-Poly1305).
    let k = Key::from_bytes([7; 32]);
    let header = [0u8; 20];
    let mut data = vec![0u8; 1200 + 16];
    const M: u64 = 100_000;
    let t0 = Cpu::now();
    for pn in 0..M {
        let n = k.seal(pn, &header, &mut data, 1200).unwrap();
        assert_eq!(k.open(pn, &header, &mut data[..n]), Some(1200));
    }
    let transport = t0.elapsed();

    let per_sec = |n: usize, d: D| n as f64 / d.as_secs_f64();
    let full = N as f64 / (write_init + respond + read_resp).as_secs_f64();
    println!(
        "write Initiation: {:>8.0} /s per core",
        per_sec(N, write_init)
    );
    println!(
        "responder (mac1 + read + Response): {:>8.0} handshakes/s per core",
        per_sec(N, respond)
    );
    println!("read Response: {:>8.0} /s per core", per_sec(N, read_resp));
    println!("full handshake, both sides on one core: {full:>8.0} /s");
    println!(
        "transport, 1200-byte Data sealed + opened: {:>8.0} /s per core ({:.2} Gbit/s one way)",
        M as f64 / transport.as_secs_f64(),
        M as f64 * 1200.0 * 8.0 / transport.as_secs_f64() / 1e9
    );
}

/// The transport AEAD's cost per message against the RustCrypto `chacha20poly1305` crate it
/// replaced (`docs/DECISIONS.md` D35): ChaCha20-Poly1305 seal of 64 and 1200 bytes with a
/// 20-byte header as associated data, the cipher built per message as the session layer does,
/// in nanoseconds of this thread's CPU time. Both produce the same bytes (checked).
#[test]
#[ignore = "a measurement: run with --release -- --ignored --nocapture"]
fn transport_aead_backends() {
    use chacha20poly1305::aead::AeadInPlace as _;
    use chacha20poly1305::{ChaCha20Poly1305, KeyInit as _};
    const M: u64 = 200_000;
    let key = Key::from_bytes([7; 32]);
    let header = [1u8; 20];
    for len in [64usize, 1200] {
        let mut ours = vec![3u8; len + 16];
        let mut theirs = vec![3u8; len];
        let t = Cpu::now();
        for n in 0..M {
            let _ = key.seal(n, &header, &mut ours, len).unwrap();
        }
        let ring_ns = t.elapsed().as_nanos() as f64 / M as f64;
        let t = Cpu::now();
        let mut tag = Default::default();
        for n in 0..M {
            let mut nonce = [0u8; 12];
            nonce[4..].copy_from_slice(&n.to_le_bytes());
            let cipher = ChaCha20Poly1305::new((&[7u8; 32]).into());
            tag = cipher
                .encrypt_in_place_detached((&nonce).into(), &header, &mut theirs)
                .unwrap();
        }
        let rc_ns = t.elapsed().as_nanos() as f64 / M as f64;
        // Same key, nonce and input (each buffer encrypted M times in place): same bytes.
        assert_eq!(&ours[..len], &theirs[..]);
        assert_eq!(&ours[len..], tag.as_slice());
        println!(
            "ChaCha20-Poly1305 seal, {len} B: ring {ring_ns:.0} ns, RustCrypto {rc_ns:.0} ns ({:.1}x)",
            rc_ns / ring_ns
        );
    }
}

/// What one echoed Data message costs the responder's endpoint, cryptography included, with
/// admission on (its memory budget charged and released per message): receive the datagram,
/// take its event, queue the echo and write it out. 64-byte messages on one established
/// session, in nanoseconds of this thread's CPU time per message.
#[test]
#[ignore = "a measurement: run with --release -- --ignored --nocapture"]
fn endpoint_echo_cost() {
    use ringwire_shard::session::admission::AdmissionConfig;
    const M: usize = 200_000;
    let mut server_cfg = cfg_id(2);
    server_cfg.admission = Some(AdmissionConfig::default());
    server_cfg.keepalive_interval = None;
    let mut server = endpoint(server_cfg, 1);
    let mut client_cfg = cfg_id(3);
    client_cfg.keepalive_interval = None;
    client_cfg.data_queue_capacity = M;
    let mut client = endpoint(client_cfg, 2);
    let (c_addr, s_addr) = (addr(1, 1000), addr(2, 2000));
    let mut buf = vec![0u8; 2048];
    let now = Timestamp::ZERO;
    let conn = client
        .connect(now, s_addr, Some(keypair(2).public))
        .unwrap();
    // Handshake and the client's confirming Ping, until both sides are quiet.
    exchange_until_quiet(&mut client, &mut server, c_addr, s_addr, now);
    while server.poll_event().is_some() {}
    let mut datagrams = Vec::with_capacity(M);
    for _ in 0..M {
        assert_eq!(client.send(now, conn, &[7u8; 64]), SendOutcome::Queued);
        let t = client.poll_transmit(now, &mut buf).unwrap();
        datagrams.push(buf[..t.len].to_vec());
    }
    let t0 = Cpu::now();
    for d in &datagrams {
        assert_eq!(server.handle_datagram(now, c_addr, d), Handled::Consumed);
        let Some(Event::Message { conn, bytes }) = server.poll_event() else {
            panic!("no message");
        };
        assert_eq!(server.send(now, conn, &bytes), SendOutcome::Queued);
        assert!(server.poll_transmit(now, &mut buf).is_some());
    }
    let spent = t0.elapsed();
    println!(
        "responder echo of a 64-byte Data message (admission on): {:.0} ns per message",
        spent.as_nanos() as f64 / M as f64
    );
}
