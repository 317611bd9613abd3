//! The test vectors of `docs/PROTOCOL.md` §13, computed from fixed keys through the same
//! functions the endpoint uses, and compared byte for byte with the document: a client
//! implementer checks their reading of the spec against them, and this test keeps the spec
//! honest. (`session_interop.rs` has an independent Noise implementation reproduce them.)
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use common::*;
use ringwire_shard::session::crypto::{self, Key};
use ringwire_shard::session::endpoint::LABEL_RESET;
use ringwire_shard::session::handshake::{self, InitiationParams};
use ringwire_shard::session::wire::{INITIATION_LEN, MsgType, RESPONSE_LEN};

/// The vectors' inputs (PROTOCOL.md §13 lists them).
const INITIATOR_STATIC: [u8; 32] = [0x01; 32];
const RESPONDER_STATIC: [u8; 32] = [0x02; 32];
const INITIATOR_EPHEMERAL: [u8; 32] = [0x03; 32];
const RESPONDER_EPHEMERAL: [u8; 32] = [0x04; 32];
const INITIATOR_CID: u64 = 0x0102_0304_0506_0708;
const RESPONDER_CID: u64 = 0x03aa_bbcc_ddee_ff11;
const UNIX_SECS: u64 = 1_700_000_000;

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every vector, as (label, bytes), in document order.
fn compute() -> Vec<(&'static str, Vec<u8>)> {
    let i = Keypair::from_seed_bytes(INITIATOR_STATIC);
    let r = Keypair::from_seed_bytes(RESPONDER_STATIC);
    let psk = [0u8; 32];
    let p = InitiationParams {
        local: &i,
        remote: &r.public,
        psk: &psk,
        initiator_conn_id: INITIATOR_CID,
        attempt: 0,
        timestamp: handshake::tai64n(Duration::from_secs(UNIX_SECS)),
        cookie: None,
        rng_seed: [0; 32],
        fixed_ephemeral: Some(&INITIATOR_EPHEMERAL),
    };
    let mut init = [0u8; INITIATION_LEN];
    let mut ihs = handshake::write_initiation(&p, &mut init).unwrap();
    let read =
        handshake::read_initiation(&r, &psk, &init, [0; 32], Some(&RESPONDER_EPHEMERAL)).unwrap();
    assert_eq!(read.initiator, i.public);
    let reset_key = crypto::hash(&[LABEL_RESET, &RESPONDER_STATIC]);
    let token = crypto::mac(&reset_key, &[&RESPONDER_CID.to_be_bytes()]);
    let mut resp = [0u8; RESPONSE_LEN];
    let rk = handshake::write_response(read, INITIATOR_CID, 0, RESPONDER_CID, &token, &mut resp)
        .unwrap();
    let got = handshake::read_response(&mut ihs, &resp).unwrap();
    assert_eq!(
        (got.responder_conn_id, got.reset_token),
        (RESPONDER_CID, token)
    );
    assert_eq!(got.keys.send, rk.recv);
    // Data "hello", the initiator's first transport message (packet number 0).
    let data = seal(&got.keys.send, MsgType::Data, RESPONDER_CID, 0, b"hello");
    // The responder's Pong to it would be under k2: show one Data the other way too.
    let back = seal(&rk.send, MsgType::Data, INITIATOR_CID, 0, b"hi");
    let k1 = key_bytes(&got.keys.send);
    let k2 = key_bytes(&got.keys.recv);
    let mut reset = vec![0x28, 0, 0, 0];
    reset.extend_from_slice(&RESPONDER_CID.to_be_bytes());
    reset.extend_from_slice(&token);
    let k1_next = key_bytes(&got.keys.send.rekey());
    vec![
        ("initiator static public", i.public.as_bytes().to_vec()),
        ("responder static public", r.public.as_bytes().to_vec()),
        ("initiation", init.to_vec()),
        ("response", resp.to_vec()),
        ("k1 (initiator to responder)", k1),
        ("k2 (responder to initiator)", k2),
        ("data from initiator", data),
        ("data from responder", back),
        ("REKEY(k1)", k1_next),
        ("reset", reset),
    ]
}

fn key_bytes(k: &Key) -> Vec<u8> {
    k.to_bytes_for_test_vectors().to_vec()
}

fn seal(k: &Key, ty: MsgType, dst: u64, pn: u64, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; wire::transport_len(payload.len(), true)];
    wire::write_header(&mut b, ty, 0, dst, pn);
    b[wire::HEADER_LEN..wire::HEADER_LEN + payload.len()].copy_from_slice(payload);
    let (h, body) = b.split_at_mut(wire::HEADER_LEN);
    k.seal(pn, h, body, payload.len()).unwrap();
    b
}

/// The vectors as PROTOCOL.md shows them: `label (n bytes):` then hex, 32 bytes a line.
fn render(vectors: &[(&str, Vec<u8>)]) -> String {
    let mut out = String::new();
    for (label, bytes) in vectors {
        out.push_str(&format!("{label} ({} bytes):\n", bytes.len()));
        for line in bytes.chunks(32) {
            out.push_str(&hex(line));
            out.push('\n');
        }
    }
    out
}

#[test]
fn protocol_md_vectors_match_byte_for_byte() {
    let doc = include_str!("../../docs/PROTOCOL.md");
    let start = doc
        .find("<!-- vectors begin -->")
        .expect("PROTOCOL.md has the vectors block");
    let end = doc.find("<!-- vectors end -->").unwrap();
    let block: String = doc[start..end]
        .lines()
        .filter(|l| !l.starts_with("<!--") && !l.starts_with("```"))
        .map(|l| format!("{l}\n"))
        .collect();
    let want = render(&compute());
    if block.trim() != want.trim() {
        println!("{want}");
        panic!("PROTOCOL.md §13 differs from the implementation; the computed vectors are above");
    }
}

/// The endpoint itself agrees: a responder endpoint with the vectors' static key accepts the
/// vector Initiation (its clock at the vector's timestamp), and answers with a Response.
#[test]
fn a_responder_endpoint_accepts_the_vector_initiation() {
    let vectors = compute();
    let init = &vectors[2].1;
    let mut config = EndpointConfig::new([9; 32], Keypair::from_seed_bytes(RESPONDER_STATIC));
    config.unix_time_at_origin = Duration::from_secs(UNIX_SECS);
    let mut ep = Endpoint::new(config, 0, 1, ConnIdGen::seed_from_u64(1), Timestamp::ZERO).unwrap();
    let from = addr(1, 1000);
    assert_eq!(
        ep.handle_datagram(Timestamp::ZERO, from, init),
        Handled::Consumed
    );
    ep.handle_timeout(Timestamp::ZERO);
    let mut buf = vec![0u8; 2048];
    let t = ep.poll_transmit(Timestamp::ZERO, &mut buf).unwrap();
    assert_eq!(t.len, RESPONSE_LEN);
    assert_eq!(
        &buf[..12],
        &vectors[3].1[..12],
        "header echoes the initiator CID and attempt"
    );
    assert_eq!(ep.stats().handshakes_completed, 1);
}
