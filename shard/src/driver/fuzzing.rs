//! Entry points for the fuzz targets (`shard/fuzz`, feature `fuzzing`): the receive path's
//! reading of one buffer, without a ring or a socket. Not part of the API.
#![forbid(unsafe_code)]

use std::net::SocketAddr;

use super::{cmsg, kernel_drops::KernelDrops, offload, sockaddr};

/// What the receive path makes of one buffer the kernel filled: the control messages parsed,
/// the source address decoded, the payload cut into the datagrams handed to the handler.
#[derive(Debug)]
pub struct Received<'a> {
    /// The socket's drop count the buffer carried (`SO_RXQ_OVFL`).
    pub drops: Option<u32>,
    /// The GRO segment size the buffer carried (`UDP_GRO`).
    pub segment: Option<u16>,
    /// The source address, `None` when the name is not one the driver reads.
    pub peer: Option<SocketAddr>,
    /// How many datagrams the driver counts for the buffer.
    pub count: usize,
    /// The datagrams, in order.
    pub datagrams: Vec<&'a [u8]>,
}

/// Reads one receive buffer's control messages, name and payload as the driver does.
#[must_use]
pub fn receive<'a>(control: &[u8], name: &[u8], payload: &'a [u8]) -> Received<'a> {
    let parsed = cmsg::parse(control);
    Received {
        drops: parsed.drops,
        segment: parsed.segment,
        peer: sockaddr::parse(name),
        count: offload::count(payload.len(), parsed.segment),
        datagrams: crate::handler::Datagrams::new(payload, parsed.segment.map_or(0, usize::from))
            .into_iter()
            .collect(),
    }
}

/// The socket's total drops after buffers carrying `counts` in turn (the 32-bit kernel
/// counter's wraps carried), one total per buffer.
#[must_use]
pub fn kernel_drops(counts: &[Option<u32>]) -> Vec<u64> {
    let mut drops = KernelDrops::default();
    counts.iter().map(|c| drops.update(*c)).collect()
}

/// The bytes of a `UDP_GRO` control message carrying `size`, as the kernel writes it.
#[must_use]
pub fn gro_message(size: i32) -> Vec<u8> {
    message(libc::SOL_UDP, libc::UDP_GRO, &size.to_ne_bytes())
}

/// The bytes of an `SO_RXQ_OVFL` control message carrying `count`, as the kernel writes it.
#[must_use]
pub fn drops_message(count: u32) -> Vec<u8> {
    message(libc::SOL_SOCKET, libc::SO_RXQ_OVFL, &count.to_ne_bytes())
}

fn message(level: i32, kind: i32, data: &[u8]) -> Vec<u8> {
    let header = cmsg::space(0);
    let mut out = Vec::with_capacity(cmsg::space(data.len()));
    out.extend_from_slice(&(header + data.len()).to_ne_bytes());
    out.extend_from_slice(&level.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.resize(header, 0);
    out.extend_from_slice(data);
    out.resize(cmsg::align(out.len()), 0);
    out
}

/// The bytes of `addr` as the kernel writes a source address.
#[must_use]
pub fn name(addr: SocketAddr) -> Vec<u8> {
    let mut out = [0u8; sockaddr::SOCKADDR_MAX_LEN];
    let n = sockaddr::encode(addr, &mut out) as usize;
    out[..n].to_vec()
}
