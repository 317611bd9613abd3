//! Connection IDs: who owns a session, and where an outbound connect is placed.
//!
//! A connection ID is a `u64` chosen by the shard that owns the session:
//!
//! ```text
//!  63        56 55                                                0
//! +------------+---------------------------------------------------+
//! | shard (8b) |  56 bits from the shard's keyed generator (≠ 0)   |
//! +------------+---------------------------------------------------+
//! ```
//!
//! On the wire it is big-endian, so the shard index is the *first* byte of the ID field
//! (offset 4 of every datagram, see [`super::wire`]). The kernel's classic-BPF reuseport program
//! loads that one byte (`BPF_LD|BPF_B|BPF_ABS, 4`) to pick the socket. Because the ID, not the
//! 4-tuple, names the owner, steering survives a NAT rebinding of the peer's port.
//!
//! IDs are not secrets (there is no encryption, see `docs/PROTOCOL.md`), but they are
//! unpredictable to anyone who does not know the shard's seed, which keeps blind off-path
//! injection into a session hard.
#![forbid(unsafe_code)]

use std::fmt;
use std::net::SocketAddr;

/// Number of bits of a [`ConnId`] that carry the owning shard's index.
pub const SHARD_BITS: u32 = 8;
/// The largest number of shards an endpoint can be part of (`2^SHARD_BITS`).
pub const MAX_SHARDS: u16 = 1 << SHARD_BITS;
const LOCAL_BITS: u32 = 64 - SHARD_BITS;
const LOCAL_MASK: u64 = (1 << LOCAL_BITS) - 1;

/// A connection ID: names a session at the endpoint that chose it.
///
/// Zero is never a valid ID; on the wire it means "no ID yet" (the `dst` of a Hello).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

impl ConnId {
    /// The owning shard's index (the top [`SHARD_BITS`] bits).
    #[must_use]
    pub const fn shard(self) -> u16 {
        (self.0 >> LOCAL_BITS) as u16
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The shard index encoded in a connection ID.
#[must_use]
pub const fn shard_of(conn_id: u64) -> u16 {
    ConnId(conn_id).shard()
}

/// Which shard should own an outbound connection to `addr`, among `shards` shards.
///
/// The hash is FNV-1a (64-bit) over the IP address in its 16-byte IPv6 form (IPv4 is mapped,
/// `::ffff:a.b.c.d`) followed by the port in big-endian, then MurmurHash3's `fmix64` finalizer
/// (FNV alone leaves the high bits poorly mixed), reduced with a multiply-shift
/// (`(h * shards) >> 64`). It is stable across processes, builds and versions (no per-process
/// random state), so every caller places a given address on the same shard. It is a placement
/// hint only: the peer cannot choose its placement in a way that harms anyone but itself.
/// `shards == 0` is treated as 1.
#[must_use]
pub fn connect_shard(addr: SocketAddr, shards: u16) -> u16 {
    let shards = u64::from(shards.max(1));
    let ip = match addr {
        SocketAddr::V4(a) => a.ip().to_ipv6_mapped().octets(),
        SocketAddr::V6(a) => a.ip().octets(),
    };
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in ip.iter().chain(addr.port().to_be_bytes().iter()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    // Cannot truncate: the product's high half is < shards <= u16::MAX + 1.
    ((u128::from(h) * u128::from(shards)) >> 64) as u16
}

/// A keyed generator of connection IDs (and other per-shard randomness).
///
/// Output block `i` is `BLAKE3-keyed(seed, "ringwire rng" || i)`: a PRF in counter mode, so
/// outputs are unpredictable without the seed and reproducible with it (the simulator relies
/// on that). Production seeds come from the OS RNG; tests use [`ConnIdGen::seed_from_u64`].
#[derive(Clone)]
pub struct ConnIdGen {
    key: [u8; 32],
    counter: u64,
    shard: u16,
}

impl fmt::Debug for ConnIdGen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key.
        f.debug_struct("ConnIdGen")
            .field("shard", &self.shard)
            .finish_non_exhaustive()
    }
}

impl Drop for ConnIdGen {
    /// The seed keys handshake randomness too: wiped with the generator.
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        self.key.zeroize();
    }
}

impl ConnIdGen {
    /// A generator for `shard` (must be `< MAX_SHARDS`; larger values are masked).
    #[must_use]
    pub fn new(seed: [u8; 32], shard: u16) -> Self {
        ConnIdGen {
            key: seed,
            counter: 0,
            shard: shard & (MAX_SHARDS - 1),
        }
    }

    /// Expands a `u64` into a 32-byte seed. For tests and the simulator only: 64 bits are not
    /// enough to keep connection IDs unpredictable in production.
    #[must_use]
    pub fn seed_from_u64(seed: u64) -> [u8; 32] {
        *blake3::hash(&seed.to_be_bytes()).as_bytes()
    }

    /// The next pseudo-random `u64`.
    pub fn next_u64(&mut self) -> u64 {
        let mut input = [0u8; 20];
        input[..12].copy_from_slice(b"ringwire rng");
        input[12..].copy_from_slice(&self.counter.to_be_bytes());
        self.counter = self.counter.wrapping_add(1);
        let out = blake3::keyed_hash(&self.key, &input);
        let mut word = [0u8; 8];
        word.copy_from_slice(&out.as_bytes()[..8]);
        u64::from_be_bytes(word)
    }

    /// A fresh connection ID owned by this generator's shard. The caller checks it is unused.
    pub fn next_conn_id(&mut self) -> ConnId {
        loop {
            let local = self.next_u64() & LOCAL_MASK;
            let id = (u64::from(self.shard) << LOCAL_BITS) | local;
            // Zero is reserved ("no ID"); only shard 0 with local part 0 can produce it.
            if id != 0 {
                return ConnId(id);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    #[test]
    fn ids_encode_their_shard() {
        for shard in [0u16, 1, 7, 255] {
            let mut g = ConnIdGen::new(ConnIdGen::seed_from_u64(9), shard);
            for _ in 0..100 {
                let id = g.next_conn_id();
                assert_eq!(shard_of(id.0), shard);
                assert_eq!(id.0.to_be_bytes()[0] as u16, shard);
                assert_ne!(id.0, 0);
            }
        }
    }

    #[test]
    fn same_seed_same_ids() {
        let mut a = ConnIdGen::new(ConnIdGen::seed_from_u64(1), 3);
        let mut b = ConnIdGen::new(ConnIdGen::seed_from_u64(1), 3);
        let mut c = ConnIdGen::new(ConnIdGen::seed_from_u64(2), 3);
        let (x, y, z) = (a.next_conn_id(), b.next_conn_id(), c.next_conn_id());
        assert_eq!(x, y);
        assert_ne!(x, z);
    }

    #[test]
    fn connect_shard_known_answers() {
        // The vectors in docs/PROTOCOL.md.
        let cases = [
            ("192.0.2.7:4433", 8, 6),
            ("[2001:db8::1]:443", 8, 1),
            ("10.0.0.1:1", 4, 0),
        ];
        for (a, n, want) in cases {
            assert_eq!(connect_shard(a.parse().unwrap(), n), want, "{a}");
        }
    }

    #[test]
    fn connect_shard_is_stable_and_in_range() {
        let addr: SocketAddr = "192.0.2.7:4433".parse().unwrap();
        assert_eq!(connect_shard(addr, 1), 0);
        assert_eq!(connect_shard(addr, 0), 0);
        let mut seen = [0u32; 8];
        for port in 0..4096u16 {
            let a = SocketAddr::new(addr.ip(), port);
            let s = connect_shard(a, 8);
            assert!(s < 8);
            assert_eq!(s, connect_shard(a, 8));
            seen[usize::from(s)] += 1;
        }
        // Roughly uniform: every shard gets a fair share.
        assert!(seen.iter().all(|&n| n > 300), "{seen:?}");
    }
}
