//! mac1, mac2 and cookies: what an Initiation must prove before a responder spends a
//! Diffie-Hellman operation on it (WireGuard's scheme, `docs/PROTOCOL.md` §6).
//!
//! ```text
//! mac1      = MAC(HASH("ringwire v2 mac1" || receiver's static public key), msg[..mac1])
//! mac2      = MAC(cookie, msg[..mac2])                        (zero: no fresh cookie)
//! cookie    = MAC(secret(epoch), ip (16, IPv4 mapped) || port (u16 BE))
//! secret(e) = HASH("ringwire v2 cookie secret" || cookie_key || e as u64 BE),  e = now / rotation
//! CookieReply body = nonce (24) || XChaCha20-Poly1305(
//!                        HASH("ringwire v2 cookie" || responder's static public key),
//!                        nonce, cookie, AD = the Initiation's mac1)
//! ```
//!
//! mac1 proves the sender knows the receiver's public key (a stranger scanning addresses does
//! not); it costs one BLAKE2s and is checked before anything else. mac2 proves the sender can
//! receive at its source address: a responder under load demands it, so a spoofed flood costs
//! it one MAC per datagram and no Diffie-Hellman.
//!
//! Cookie secrets are derived from `cookie_key` (shared by a server's shards, never sent) and
//! the epoch, so any shard can check a cookie any other issued with no shared state. A cookie
//! is accepted under the current and the previous epoch's secret.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::time::Duration;

use super::crypto::{self, MAC_LEN};
use super::time::Timestamp;

/// Label of the mac1 key derivation.
pub const LABEL_MAC1: &[u8] = b"ringwire v2 mac1";
/// Label of the cookie-sealing key derivation.
pub const LABEL_COOKIE: &[u8] = b"ringwire v2 cookie";
const LABEL_SECRET: &[u8] = b"ringwire v2 cookie secret";

/// `HASH("ringwire v2 mac1" || public)`: the key of mac1 for messages to `public`'s owner.
#[must_use]
pub fn mac1_key(public: &[u8; 32]) -> [u8; 32] {
    crypto::hash(&[LABEL_MAC1, public])
}

/// `HASH("ringwire v2 cookie" || public)`: the key that seals cookies from `public`'s owner.
#[must_use]
pub fn cookie_seal_key(public: &[u8; 32]) -> [u8; 32] {
    crypto::hash(&[LABEL_COOKIE, public])
}

/// mac1 over `msg` (the bytes before the mac1 field).
#[must_use]
pub fn mac1(key: &[u8; 32], msg: &[u8]) -> [u8; MAC_LEN] {
    crypto::mac(key, &[msg])
}

/// mac2 over `msg` (the bytes before the mac2 field) with `cookie`.
#[must_use]
pub fn mac2(cookie: &[u8; MAC_LEN], msg: &[u8]) -> [u8; MAC_LEN] {
    crypto::mac(cookie, &[msg])
}

fn addr_bytes(addr: SocketAddr) -> [u8; 18] {
    let ip = match addr {
        SocketAddr::V4(a) => a.ip().to_ipv6_mapped().octets(),
        SocketAddr::V6(a) => a.ip().octets(),
    };
    let mut out = [0u8; 18];
    out[..16].copy_from_slice(&ip);
    out[16..].copy_from_slice(&addr.port().to_be_bytes());
    out
}

/// The responder's side: issues cookies and checks mac2. One per endpoint.
#[derive(Clone)]
pub struct CookieJar {
    key: [u8; 32],
    rotation_ms: u64,
    epoch: u64,
    current: [u8; 32],
    previous: [u8; 32],
}

impl std::fmt::Debug for CookieJar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("CookieJar")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl Drop for CookieJar {
    /// The cookie key and secrets are wiped with the jar.
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        self.key.zeroize();
        self.current.zeroize();
        self.previous.zeroize();
    }
}

impl CookieJar {
    /// A jar for `key`, rotating the secret every `rotation` (at least 1 ms).
    #[must_use]
    pub fn new(key: [u8; 32], rotation: Duration, now: Timestamp) -> Self {
        let rotation_ms = u64::try_from(rotation.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let epoch = now.as_millis() / rotation_ms;
        CookieJar {
            key,
            rotation_ms,
            epoch,
            current: secret(&key, epoch),
            previous: secret(&key, epoch.wrapping_sub(1)),
        }
    }

    fn rotate(&mut self, now: Timestamp) {
        let epoch = now.as_millis() / self.rotation_ms;
        if epoch == self.epoch {
            return;
        }
        self.previous = if epoch == self.epoch.wrapping_add(1) {
            self.current
        } else {
            secret(&self.key, epoch.wrapping_sub(1))
        };
        self.current = secret(&self.key, epoch);
        self.epoch = epoch;
    }

    /// The cookie for `addr` now.
    pub fn cookie(&mut self, now: Timestamp, addr: SocketAddr) -> [u8; MAC_LEN] {
        self.rotate(now);
        crypto::mac(&self.current, &[&addr_bytes(addr)])
    }

    /// Whether `mac2` over `msg` is valid for a cookie issued to `addr` under the current or
    /// the previous secret (two MACs at most; constant-time comparisons).
    pub fn mac2_valid(
        &mut self,
        now: Timestamp,
        addr: SocketAddr,
        msg: &[u8],
        mac2: &[u8; MAC_LEN],
    ) -> bool {
        if *mac2 == [0; MAC_LEN] {
            return false;
        }
        self.rotate(now);
        let a = addr_bytes(addr);
        [&self.current, &self.previous].into_iter().any(|secret| {
            let cookie = crypto::mac(secret, &[&a]);
            crypto::ct_eq(&self::mac2(&cookie, msg), mac2)
        })
    }
}

fn secret(key: &[u8; 32], epoch: u64) -> [u8; 32] {
    crypto::hash(&[LABEL_SECRET, key, &epoch.to_be_bytes()])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    #[test]
    fn mac2_binds_address_secret_and_message() {
        let a: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let b: SocketAddr = "10.0.0.1:5001".parse().unwrap();
        let rot = Duration::from_secs(120);
        let t0 = Timestamp::from_secs(119);
        let mut jar = CookieJar::new([7; 32], rot, t0);
        let c = jar.cookie(t0, a);
        let m = mac2(&c, b"message");
        assert!(jar.mac2_valid(t0, a, b"message", &m));
        assert!(!jar.mac2_valid(t0, b, b"message", &m));
        assert!(!jar.mac2_valid(t0, a, b"messagE", &m));
        assert!(!jar.mac2_valid(t0, a, b"message", &[0; 16]));
        // Another shard with the same key checks it; one with another key does not.
        let mut other = CookieJar::new([7; 32], rot, t0);
        assert!(other.mac2_valid(t0, a, b"message", &m));
        let mut wrong = CookieJar::new([8; 32], rot, t0);
        assert!(!wrong.mac2_valid(t0, a, b"message", &m));
        // Previous epoch accepted; two rotations later, retired.
        assert!(jar.mac2_valid(Timestamp::from_secs(121), a, b"message", &m));
        assert!(!jar.mac2_valid(Timestamp::from_secs(241), a, b"message", &m));
    }

    #[test]
    fn sealed_cookie_needs_the_right_key_and_mac1() {
        let key = cookie_seal_key(&[3; 32]);
        let sealed = crypto::seal_cookie(&key, &[1; 24], &[9; 16], &[5; 16]);
        assert_eq!(
            crypto::open_cookie(&key, &[1; 24], &[9; 16], &sealed),
            Some([5; 16])
        );
        assert_eq!(crypto::open_cookie(&key, &[1; 24], &[8; 16], &sealed), None);
        let other = cookie_seal_key(&[4; 32]);
        assert_eq!(
            crypto::open_cookie(&other, &[1; 24], &[9; 16], &sealed),
            None
        );
    }
}
