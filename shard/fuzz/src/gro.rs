//! Target `gro`: the receive path's reading of one buffer (`driver::fuzzing::receive`): the
//! control messages (`SO_RXQ_OVFL` drop count, `UDP_GRO` segment size), the source address,
//! and the GRO splitter that cuts a coalesced payload into datagrams; and the kernel drop
//! counter fed the counts that buffers carry.
//!
//! Properties: no panic on any control bytes or name; the datagrams handed over are the
//! payload in order, byte for byte, as many as the driver counts; with a segment size every
//! one but the last is exactly that long and the last no longer; without one the payload is a
//! single datagram (empty included); the drop total never decreases.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use ringwire_shard::driver::fuzzing;

use crate::input::Input;

/// One input: how to build the control messages and the name, then the payload.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let shape = input.u8();
    // Control: raw bytes (any sequence, malformed included), or well-formed messages with
    // values from the input, in either order, possibly cut short.
    let mut control = Vec::new();
    match shape & 0x3 {
        0 => control.extend_from_slice(input.short_bytes()),
        1 => control.extend(fuzzing::gro_message(i32::from(input.u16()))),
        2 => {
            control.extend(fuzzing::drops_message(input.u32()));
            control.extend(fuzzing::gro_message(input.u32() as i32));
        }
        _ => {
            control.extend(fuzzing::gro_message(input.u32() as i32));
            control.extend(fuzzing::drops_message(input.u32()));
            let cut = usize::from(input.u8());
            control.truncate(control.len().saturating_sub(cut));
        }
    }
    let name = match (shape >> 2) & 0x3 {
        0 => input.short_bytes().to_vec(),
        1 => fuzzing::name(SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::from(input.u32()),
            input.u16(),
        ))),
        _ => fuzzing::name(SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::from(u128::from(input.u32()) << 96 | 1),
            input.u16(),
            input.u32() & 0x000f_ffff,
            input.u32(),
        ))),
    };
    let payload = input.rest();
    let r = fuzzing::receive(&control, &name, payload);
    if payload.is_empty() {
        // The driver hands an empty buffer over as one empty datagram itself (its
        // not-coalesced branch); the splitter cuts nothing out of it. Counted as one.
        assert_eq!((r.count, r.datagrams.len()), (1, 0));
        return;
    }
    assert_eq!(r.count, r.datagrams.len(), "counted as handed over");
    assert_eq!(r.datagrams.concat(), payload, "the payload, in order");
    if (shape >> 2) & 0x3 != 0 {
        assert!(r.peer.is_some(), "a name the kernel writes is read");
    }
    match r.segment {
        Some(s) if usize::from(s) < payload.len() => {
            let s = usize::from(s);
            let (last, full) = r.datagrams.split_last().expect("at least two datagrams");
            assert!(full.iter().all(|d| d.len() == s));
            assert!(!last.is_empty() && last.len() <= s);
        }
        _ => assert_eq!(r.datagrams, [payload], "one datagram, empty included"),
    }
    // The drop counts successive buffers carry: the total never decreases.
    let counts: Vec<Option<u32>> = payload
        .chunks(4)
        .map(|c| {
            let mut b = [0u8; 4];
            b[..c.len()].copy_from_slice(c);
            let v = u32::from_le_bytes(b);
            (v & 1 == 1).then_some(v)
        })
        .collect();
    let totals = fuzzing::kernel_drops(&counts);
    assert!(totals.windows(2).all(|w| w[0] <= w[1]));
}
