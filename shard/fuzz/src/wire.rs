//! Target `wire`: the datagram decoder (`session::wire`) and the steering rules on any bytes.
//!
//! Properties: parsing is total (no panic, a reason for every rejection); what parses agrees
//! with the steering peek; a transport body that parses as a message writes back to the same
//! bytes; the steering rules always name an existing shard.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use ringwire_shard::session::sim;
use ringwire_shard::session::wire::{self, Body, MsgType};

/// One input: the whole of `data` is a datagram.
pub fn run(data: &[u8]) {
    let peeked = wire::peek_steering(data);
    if let Ok(d) = wire::parse(data) {
        let (nibble, dst) = peeked.expect("a parsed datagram has a header");
        assert_eq!(dst, d.dst_conn_id, "the steering peek reads the parsed CID");
        let ty = MsgType::from_nibble(nibble).expect("a parsed datagram has a known type");
        match d.body {
            Body::Transport { ty: t, body, .. } => {
                assert_eq!(t, ty);
                assert!(t.is_transport());
                plain_round_trip(t, body);
            }
            Body::Initiation { .. } => assert_eq!(ty, MsgType::Initiation),
            Body::Response { .. } => assert_eq!(ty, MsgType::Response),
            Body::CookieReply { .. } => assert_eq!(ty, MsgType::CookieReply),
            Body::Reset { .. } => assert_eq!(ty, MsgType::Reset),
            Body::Refused { .. } => assert_eq!(ty, MsgType::Refused),
        }
    }
    // Every transport type's plaintext reading of the bytes after a would-be header.
    let body = data.get(wire::HEADER_LEN..).unwrap_or(&[]);
    for ty in [MsgType::Data, MsgType::Ping, MsgType::Pong, MsgType::Close] {
        plain_round_trip(ty, body);
    }
    let from = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 4433));
    for n in [1u16, 2, 3, 7, 64, 256] {
        assert!(sim::steer(data, from, n) < n);
        assert!(sim::steer_uniform(data, from, n) < n);
    }
}

/// A body that parses as a message of `ty` writes back to the same bytes.
fn plain_round_trip(ty: MsgType, body: &[u8]) {
    let Ok(m) = wire::parse_plain(ty, body) else {
        return;
    };
    assert_eq!(m.msg_type(), ty);
    assert_eq!(m.body_len(), body.len());
    let mut out = vec![0u8; body.len()];
    assert_eq!(m.write_body(&mut out), Some(body.len()));
    // Strict decoding (a Ping is zeros, a Close's codes are known): byte for byte.
    assert_eq!(out, body);
}
