//! The kernel's `sockaddr_in` / `sockaddr_in6` bytes without unsafe code: decoding them (as
//! multishot `recvmsg` writes them into each buffer) and encoding them (for a send slot's
//! destination).
#![forbid(unsafe_code)]

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Size of `sockaddr_in`.
pub(crate) const SOCKADDR_IN_LEN: u32 = 16;
/// Size of `sockaddr_in6`.
pub(crate) const SOCKADDR_IN6_LEN: u32 = 28;

/// Room for either address family: the size of the larger, `sockaddr_in6`.
pub(crate) const SOCKADDR_MAX_LEN: usize = SOCKADDR_IN6_LEN as usize;

/// Writes `addr` as the kernel lays it out into `out` and returns its length (16 or 28). The
/// IPv6 flow label is written big-endian, as [`parse`] reads it, so an address parsed from a
/// datagram is sent back byte for byte.
#[inline]
pub(crate) fn encode(addr: SocketAddr, out: &mut [u8; SOCKADDR_MAX_LEN]) -> u32 {
    match addr {
        SocketAddr::V4(a) => {
            out[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            out[2..4].copy_from_slice(&a.port().to_be_bytes());
            out[4..8].copy_from_slice(&a.ip().octets());
            out[8..16].fill(0);
            SOCKADDR_IN_LEN
        }
        SocketAddr::V6(a) => {
            out[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            out[2..4].copy_from_slice(&a.port().to_be_bytes());
            out[4..8].copy_from_slice(&a.flowinfo().to_be_bytes());
            out[8..24].copy_from_slice(&a.ip().octets());
            out[24..28].copy_from_slice(&a.scope_id().to_ne_bytes());
            SOCKADDR_IN6_LEN
        }
    }
}

/// Parses a socket address as the kernel lays it out; `None` for other families or short input.
pub(crate) fn parse(raw: &[u8]) -> Option<SocketAddr> {
    let family = u16::from_ne_bytes([*raw.first()?, *raw.get(1)?]);
    let port = u16::from_be_bytes([*raw.get(2)?, *raw.get(3)?]);
    match i32::from(family) {
        libc::AF_INET => {
            let ip: [u8; 4] = raw.get(4..8)?.try_into().ok()?;
            Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
        }
        libc::AF_INET6 => {
            let flow = u32::from_be_bytes(raw.get(4..8)?.try_into().ok()?);
            let ip: [u8; 16] = raw.get(8..24)?.try_into().ok()?;
            let scope = u32::from_ne_bytes(raw.get(24..28)?.try_into().ok()?);
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(ip),
                port,
                flow,
                scope,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(addr: SocketAddr) -> Vec<u8> {
        // Built by hand, as the kernel writes it.
        match addr {
            SocketAddr::V4(a) => {
                let mut v = vec![0u8; SOCKADDR_IN_LEN as usize];
                v[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
                v[2..4].copy_from_slice(&a.port().to_be_bytes());
                v[4..8].copy_from_slice(&a.ip().octets());
                v
            }
            SocketAddr::V6(a) => {
                let mut v = vec![0u8; SOCKADDR_IN6_LEN as usize];
                v[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
                v[2..4].copy_from_slice(&a.port().to_be_bytes());
                v[8..24].copy_from_slice(&a.ip().octets());
                v
            }
        }
    }

    #[test]
    fn encode_matches_the_kernel_layout_and_round_trips() {
        for s in ["127.0.0.1:4000", "[::1]:5000", "10.1.2.3:1"] {
            let a: SocketAddr = s.parse().unwrap();
            let mut out = [0xffu8; SOCKADDR_MAX_LEN];
            let len = encode(a, &mut out) as usize;
            assert_eq!(&out[..len], &raw(a)[..], "{s}");
            assert_eq!(parse(&out[..len]), Some(a));
        }
        let v6 = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 9, 0x12345, 7));
        let mut out = [0u8; SOCKADDR_MAX_LEN];
        let len = encode(v6, &mut out) as usize;
        assert_eq!(parse(&out[..len]), Some(v6));
    }

    #[test]
    fn round_trips_v4_and_v6_and_rejects_garbage() {
        for s in ["127.0.0.1:4000", "[::1]:5000", "10.1.2.3:1"] {
            let a: SocketAddr = s.parse().unwrap();
            assert_eq!(parse(&raw(a)), Some(a));
        }
        assert_eq!(parse(&[]), None);
        assert_eq!(parse(&[2, 0, 1]), None);
        assert_eq!(parse(&[0xff; 28]), None);
        let v4 = raw("127.0.0.1:4000".parse().unwrap());
        assert_eq!(parse(&v4[..7]), None);
    }
}
