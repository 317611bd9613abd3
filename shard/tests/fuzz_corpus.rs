//! Replays every committed fuzz corpus file (`shard/fuzz/corpus/<target>/`) through its
//! target's body, the same source the libFuzzer binaries run (`shard/fuzz/src/`), so the
//! targets build on stable in CI and every input that once found a bug stays fixed.
//! `scripts/fuzz.sh` runs the fuzzers themselves; the `config` target's corpus is replayed by
//! the engine's `tests/fuzz_corpus.rs`.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

#[allow(dead_code)]
#[path = "../fuzz/src/input.rs"]
mod input;

#[path = "../fuzz/src/gro.rs"]
mod gro;
#[path = "../fuzz/src/handshake.rs"]
mod handshake;
#[path = "../fuzz/src/session.rs"]
mod session;
#[path = "../fuzz/src/wire.rs"]
mod wire;

/// Runs `run` on every file of the target's corpus; returns how many there were.
fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in &files {
        let data = std::fs::read(f).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if let Err(panic) = std::panic::catch_unwind(|| run(&data)) {
            eprintln!("corpus file {target}/{name} failed");
            std::panic::resume_unwind(panic);
        }
    }
    assert!(!files.is_empty(), "{}: an empty corpus", dir.display());
    files.len()
}

#[test]
fn wire_corpus() {
    replay("wire", wire::run);
}

#[test]
fn handshake_corpus() {
    replay("handshake", handshake::run);
}

#[test]
fn session_corpus() {
    replay("session", session::run);
}

#[test]
fn gro_corpus() {
    replay("gro", gro::run);
}

/// Writes the seed corpora of the shard's targets (real datagrams of every type from the
/// simulator, and small programs for the structured targets). Run by hand when the wire format
/// changes; the files are committed:
/// `cargo test -p ringwire-shard --test fuzz_corpus -- --ignored write_seeds`.
#[test]
#[ignore = "writes files; run by hand"]
fn write_seeds() {
    use ringwire_shard::session::sim::{FaultConfig, Sim};
    use ringwire_shard::session::{EndpointConfig, Keypair};
    use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
    use std::time::Duration;

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    };
    let addr = |last: u8| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, last), 1000));
    // Every datagram of a session's life, Noise and plaintext: handshake, data both ways,
    // keepalives, a rekey, a cookie exchange under load, a close.
    let mut initiation = Vec::new();
    for plaintext in [false, true] {
        let cfg = |key: u8, load: bool| {
            let mut c = if plaintext {
                EndpointConfig::plaintext([0x5a; 32])
            } else {
                EndpointConfig::new([0x5a; 32], Keypair::from_seed_bytes([key; 32]))
            };
            c.unix_time_at_origin = Duration::from_secs(1_700_000_000);
            c.keepalive_interval = Some(Duration::from_secs(5));
            c.rekey_after_messages = 4;
            if load {
                c.handshakes_per_second = 0;
            }
            c
        };
        let mut sim = Sim::new(1, FaultConfig::default());
        sim.set_capture(true);
        let c = sim.add_node(addr(1), 1, cfg(3, false));
        let _server = sim.add_node(addr(2), 1, cfg(2, !plaintext));
        let conn = sim.connect(c, addr(2)).unwrap();
        sim.run_for(Duration::from_millis(200));
        for i in 0..6u8 {
            let _ = sim.send(c, conn, &[i; 24]);
            sim.run_for(Duration::from_millis(20));
        }
        sim.run_for(Duration::from_secs(12));
        let _ = sim.close(c, conn, ringwire_shard::session::CloseReason::Normal);
        sim.run_for(Duration::from_millis(200));
        let mode = if plaintext { "plain" } else { "noise" };
        for (i, d) in sim.captured().iter().enumerate() {
            write("wire", &format!("{mode}-{i:02}"), &d.bytes);
            if i == 0 && !plaintext {
                initiation = d.bytes.clone();
            }
        }
        assert!(sim.captured().len() > 8, "a whole session captured");
    }
    write("wire", "reset", &{
        let mut b = vec![0x28, 0, 0, 0];
        b.resize(28, 7);
        b
    });
    write("wire", "empty", b"");
    // handshake: flags (mode in bits 0-2, plaintext 0x10, load 0x20, mac2 0x40, fix 0x80),
    // two bytes of time, the mode's bytes.
    for flags in [0x00u8, 0x20, 0x80] {
        let mut b = vec![flags, 0, 10];
        b.extend_from_slice(&initiation);
        write("handshake", &format!("raw-{flags:02x}"), &b);
    }
    for flags in [
        0x01u8, 0x11, 0x21, 0x61, 0x02, 0x12, 0x22, 0x62, 0x82, 0xe2, 0xa2, 0x03, 0x83, 0x04, 0x84,
        0x24, 0xa4, 0xe4, 0x14, 0x07, 0x27, 0x67,
    ] {
        let mut b = vec![flags, 0, 10, 2, 30, 0x01, 151, 0x80];
        b.extend_from_slice(&initiation[..64]);
        write("handshake", &format!("mode-{flags:02x}"), &b);
    }
    // session: a flag byte (0x80 plaintext, fault seed), then operations (see session.rs).
    let programs: [(&str, &[u8]); 6] = [
        ("send-both", &[0x01, 0, 10, 1, 0, 20, 2, 0, 20, 0, 30]),
        ("idle", &[0x02, 0, 10, 0, 120, 0, 200, 1, 0, 5]),
        (
            "close-reconnect",
            &[0x03, 0, 10, 6, 0, 0, 20, 7, 0, 20, 1, 1, 10, 0, 20],
        ),
        (
            "faults",
            &[0x04, 8, 0x55, 0, 10, 1, 0, 30, 1, 0, 30, 2, 0, 30, 0, 100],
        ),
        (
            "replay",
            &[
                0x05, 0, 10, 1, 0, 8, 0, 10, 5, 0, 3, 0, 5, 0, 4, 1, 12, 0xff, 0, 10,
            ],
        ),
        (
            "plain-garbage",
            &[
                0x86, 0, 10, 3, 4, 0x24, 0, 0, 0, 4, 3, 0x21, 1, 2, 9, 2, 0, 0, 0, 20,
            ],
        ),
    ];
    for (name, p) in programs {
        write("session", name, p);
    }
    // gro: shape (control kind in bits 0-1, name kind in bits 2-3), the shape's fields, payload.
    let payload: Vec<u8> = (0..200u8).collect();
    for (name, head) in [
        ("raw", vec![0x00, 0]),
        ("gro-v4", vec![0x05, 0, 64, 10, 0, 0, 1, 0x11, 0x5c]),
        (
            "drops-gro-v6",
            vec![
                0x0a, 0, 0, 0, 7, 0, 0, 0, 50, 0, 0, 0, 1, 0x11, 0x5c, 0, 0, 0, 0, 0, 0, 0, 2,
            ],
        ),
        (
            "gro-drops-cut-v4",
            vec![0x07, 0, 0, 0, 100, 0, 0, 0, 3, 4, 10, 0, 0, 1, 0x11, 0x5c],
        ),
    ] {
        let mut b = head;
        b.extend_from_slice(&payload);
        write("gro", name, &b);
    }
}
