//! Interoperability with a second, independent Noise implementation: Python's
//! `noiseprotocol` package, driven through `tests/interop/noise_peer.py` (written from
//! `docs/PROTOCOL.md`, sharing no code with this crate).
//!
//! - It reproduces PROTOCOL.md §13's test vectors byte for byte.
//! - As an initiator, it completes a handshake with a real responder [`Endpoint`] and
//!   exchanges one Data datagram each way.
//!
//! The Python interpreter is `$RINGWIRE_INTEROP_PYTHON` (`scripts/test.sh` points it at a venv
//! under `target/` with the package installed), else `python3`. Without an interpreter or the
//! package the tests skip with `skipping: <reason>` on stderr; with `RINGWIRE_REQUIRE_INTEROP=1`
//! (CI) they fail instead.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use common::*;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/noise_peer.py");

/// The interpreter to use, or why there is none (skip, or fail when required).
fn python() -> Option<String> {
    let python = std::env::var("RINGWIRE_INTEROP_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python)
        .args(["-c", "import noise.connection, cryptography"])
        .stderr(Stdio::null())
        .status();
    let reason = match probe {
        Ok(s) if s.success() => return Some(python),
        Ok(_) => format!("{python} lacks the `noiseprotocol` package (pip install noiseprotocol)"),
        Err(e) => format!("no {python}: {e}"),
    };
    let required =
        std::env::var("RINGWIRE_REQUIRE_INTEROP").is_ok_and(|v| !v.is_empty() && v != "0");
    assert!(!required, "RINGWIRE_REQUIRE_INTEROP is set: {reason}");
    eprintln!("skipping: the interop test needs {reason}");
    None
}

fn vectors_block() -> String {
    let doc = include_str!("../../docs/PROTOCOL.md");
    let start = doc.find("<!-- vectors begin -->").unwrap();
    let end = doc.find("<!-- vectors end -->").unwrap();
    doc[start..end]
        .lines()
        .filter(|l| !l.starts_with("<!--") && !l.starts_with("```") && !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn python_noise_reproduces_the_test_vectors() {
    let Some(python) = python() else { return };
    let out = Command::new(python)
        .args([SCRIPT, "vectors"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: String = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(got, vectors_block());
}

#[test]
fn python_initiator_completes_a_handshake_and_exchanges_data() {
    let Some(python) = python() else { return };
    const UNIX: u64 = 1_700_000_000;
    let server = keypair(2);
    let mut config = EndpointConfig::new([9; 32], server.clone());
    config.unix_time_at_origin = Duration::from_secs(UNIX);
    let mut ep = Endpoint::new(config, 0, 1, ConnIdGen::seed_from_u64(1), Timestamp::ZERO).unwrap();
    let now = Timestamp::from_secs(5);
    let from = addr(7, 7000);
    let mut child = Command::new(python)
        .args([SCRIPT, "initiate"])
        .arg(hex(server.public.as_bytes()))
        .arg((UNIX + 5).to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_py = child.stdin.take().unwrap();
    let mut from_py = BufReader::new(child.stdout.take().unwrap());
    let mut expect = |tag: &str| -> Vec<u8> {
        let mut line = String::new();
        from_py.read_line(&mut line).unwrap();
        let (t, rest) = line
            .trim()
            .split_once(' ')
            .unwrap_or_else(|| panic!("{line:?}"));
        assert_eq!(t, tag, "{line}");
        if tag == "got" {
            return rest.as_bytes().to_vec();
        }
        unhex(rest)
    };
    let mut buf = vec![0u8; 2048];

    let init = expect("initiation");
    assert_eq!(ep.handle_datagram(now, from, &init), Handled::Consumed);
    ep.handle_timeout(now);
    let t = ep.poll_transmit(now, &mut buf).unwrap();
    writeln!(to_py, "response {}", hex(&buf[..t.len]).replace(' ', "")).unwrap();

    let data = expect("data");
    assert_eq!(ep.handle_datagram(now, from, &data), Handled::Consumed);
    let events: Vec<Event> = std::iter::from_fn(|| ep.poll_event()).collect();
    let [Event::Connected { conn, .. }, Event::Message { bytes, .. }] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(bytes, b"hello from python");
    assert_eq!(
        ep.session_stats(*conn).unwrap().peer_key,
        Some(Keypair::from_seed_bytes([5; 32]).public)
    );
    assert_eq!(ep.send(now, *conn, b"hello from rust"), SendOutcome::Queued);
    let t = ep.poll_transmit(now, &mut buf).unwrap();
    writeln!(to_py, "data {}", hex(&buf[..t.len]).replace(' ', "")).unwrap();
    assert_eq!(expect("got"), b"hello from rust");
    assert!(child.wait().unwrap().success());
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
