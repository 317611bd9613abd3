//! Source address prefixes: the unit that per-source limits count.
//!
//! One IPv4 address is one host (or one NAT); one IPv6 host usually owns a whole /64, and can
//! pick a fresh address in it for every session. So the limits count per prefix, /32 for IPv4
//! and /64 for IPv6 by default. An IPv4 peer seen through a dual-stack socket arrives as an
//! IPv4-mapped IPv6 address (`::ffff:a.b.c.d`); it is counted as the IPv4 address it is, or
//! every IPv4 client would share one /64.
#![forbid(unsafe_code)]

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// How many leading bits of a source address name its prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PrefixLengths {
    /// IPv4 prefix length, 1..=32. Default 32 (one address).
    pub v4: u8,
    /// IPv6 prefix length, 1..=128. Default 64 (one subnet, what one host is usually given).
    pub v6: u8,
}

impl Default for PrefixLengths {
    fn default() -> Self {
        PrefixLengths { v4: 32, v6: 64 }
    }
}

impl PrefixLengths {
    /// Whether both lengths are in range.
    #[must_use]
    pub fn is_valid(&self) -> bool {
        (1..=32).contains(&self.v4) && (1..=128).contains(&self.v6)
    }
}

/// A source address with all bits past its prefix length cleared. 24 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    /// IPv4: 0. IPv6: the top 64 bits.
    hi: u64,
    /// IPv4: the address in the low 32 bits. IPv6: the low 64 bits.
    lo: u64,
    /// The prefix length in bits.
    len: u8,
    v6: bool,
}

impl Prefix {
    /// The prefix of `ip` under `lengths` (lengths out of range are clamped).
    #[must_use]
    pub fn of(ip: IpAddr, lengths: PrefixLengths) -> Prefix {
        let ip = match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            },
            v4 => v4,
        };
        match ip {
            IpAddr::V4(a) => {
                let len = lengths.v4.clamp(1, 32);
                let mask = u32::MAX << (32 - u32::from(len));
                Prefix {
                    hi: 0,
                    lo: u64::from(u32::from(a) & mask),
                    len,
                    v6: false,
                }
            }
            IpAddr::V6(a) => {
                let len = lengths.v6.clamp(1, 128);
                let mask = u128::MAX << (128 - u32::from(len));
                let bits = u128::from(a) & mask;
                Prefix {
                    hi: (bits >> 64) as u64,
                    lo: bits as u64,
                    len,
                    v6: true,
                }
            }
        }
    }

    /// The prefix length in bits.
    #[must_use]
    pub fn length(&self) -> u8 {
        self.len
    }

    /// Whether this is an IPv6 prefix.
    #[must_use]
    pub fn is_ipv6(&self) -> bool {
        self.v6
    }

    /// The network address (the source address with the host bits cleared).
    #[must_use]
    pub fn network(&self) -> IpAddr {
        if self.is_ipv6() {
            IpAddr::V6(Ipv6Addr::from(
                (u128::from(self.hi) << 64) | u128::from(self.lo),
            ))
        } else {
            IpAddr::V4(Ipv4Addr::from(self.lo as u32))
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.length())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    fn p(ip: &str, lengths: PrefixLengths) -> Prefix {
        Prefix::of(ip.parse().unwrap(), lengths)
    }

    #[test]
    fn defaults_are_one_ipv4_address_and_one_ipv6_subnet() {
        let d = PrefixLengths::default();
        assert!(d.is_valid());
        assert_ne!(p("192.0.2.1", d), p("192.0.2.2", d));
        assert_eq!(p("192.0.2.1", d).to_string(), "192.0.2.1/32");
        // Two addresses of one /64: one prefix.
        assert_eq!(p("2001:db8::1", d), p("2001:db8::ffff:1234:5678:9abc", d));
        assert_ne!(p("2001:db8::1", d), p("2001:db8:0:1::1", d));
        assert_eq!(p("2001:db8::1", d).to_string(), "2001:db8::/64");
    }

    #[test]
    fn mapped_ipv4_is_ipv4() {
        let d = PrefixLengths::default();
        assert_eq!(p("::ffff:192.0.2.1", d), p("192.0.2.1", d));
        assert_ne!(p("::ffff:192.0.2.1", d), p("::ffff:192.0.2.2", d));
        assert!(!p("::ffff:192.0.2.1", d).is_ipv6());
    }

    #[test]
    fn lengths_are_configurable_and_clamped() {
        let l = PrefixLengths { v4: 24, v6: 48 };
        assert_eq!(p("192.0.2.1", l), p("192.0.2.200", l));
        assert_eq!(p("192.0.2.1", l).to_string(), "192.0.2.0/24");
        assert_eq!(p("2001:db8:1:2::1", l), p("2001:db8:1:3::1", l));
        let wild = PrefixLengths { v4: 0, v6: 200 };
        assert!(!wild.is_valid());
        assert_eq!(p("192.0.2.1", wild).length(), 1);
        assert_eq!(p("2001:db8::1", wild).length(), 128);
        // v4 and v6 never collide, even with equal bits.
        assert_ne!(p("0.0.0.0", l), p("::", l));
        assert_eq!(std::mem::size_of::<Prefix>(), 24);
    }
}
