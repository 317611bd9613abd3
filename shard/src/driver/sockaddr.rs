//! Decoding the kernel's `sockaddr_in` / `sockaddr_in6` bytes (as multishot `recvmsg` writes
//! them into each buffer) without unsafe code.
#![forbid(unsafe_code)]

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Size of `sockaddr_in`.
pub(crate) const SOCKADDR_IN_LEN: u32 = 16;
/// Size of `sockaddr_in6`.
pub(crate) const SOCKADDR_IN6_LEN: u32 = 28;

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
