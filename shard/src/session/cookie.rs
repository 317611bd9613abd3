//! Stateless handshake cookies: a MAC over a rotating secret, the client's address, the
//! client's connection ID and a timestamp.
//!
//! ```text
//! secret(e) = BLAKE3-derive_key("ringwire v1 cookie secret", cookie_key || e as u64 BE)
//!      e    = time_ms / rotation_ms                      (the secret's epoch)
//! mac       = first 16 bytes of BLAKE3-keyed(secret(e),
//!                 ip as 16 bytes (IPv4 mapped) || port BE || client conn ID BE || time_ms BE)
//! ```
//!
//! Why derived rather than drawn at random: a client's second Hello may be steered to another
//! shard than its first (handshake datagrams are hashed by 4-tuple, and the socket set may
//! change). Every shard of a server is given the same `cookie_key` and the same clock origin,
//! so each computes the same secrets alone, with no shared state and no locks. Knowing the
//! secret of epoch `e` says nothing about `e + 1` without the key.
//!
//! A cookie is accepted while (a) its epoch is the current or the previous one, (b) it is at
//! most `cookie_lifetime` old, and (c) it is at most [`MAX_CLOCK_SKEW_MS`] in the future (shards
//! read the clock at slightly different moments). The MAC comparison is constant-time.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::time::Duration;

use super::drop_reason::DropReason;
use super::time::Timestamp;
use super::wire::CookieToken;

/// How far in the future a cookie's timestamp may be (clock skew between shards).
pub const MAX_CLOCK_SKEW_MS: u64 = 1_000;
const CONTEXT: &str = "ringwire v1 cookie secret";

/// Issues and checks cookies. One per endpoint; cheap to keep (two cached secrets).
#[derive(Clone)]
pub struct CookieJar {
    key: [u8; 32],
    rotation_ms: u64,
    lifetime_ms: u64,
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

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl CookieJar {
    /// A jar for `key`, rotating the secret every `rotation` (at least 1 ms) and accepting
    /// cookies up to `lifetime` old.
    #[must_use]
    pub fn new(key: [u8; 32], rotation: Duration, lifetime: Duration, now: Timestamp) -> Self {
        let rotation_ms = millis(rotation).max(1);
        let epoch = now.as_millis() / rotation_ms;
        CookieJar {
            key,
            rotation_ms,
            lifetime_ms: millis(lifetime),
            epoch,
            current: derive(&key, epoch),
            previous: derive(&key, epoch.wrapping_sub(1)),
        }
    }

    /// Moves to the epoch of `now` if it changed (the rotation).
    fn rotate(&mut self, now_ms: u64) {
        let epoch = now_ms / self.rotation_ms;
        if epoch == self.epoch {
            return;
        }
        self.previous = if epoch == self.epoch + 1 {
            self.current
        } else {
            derive(&self.key, epoch.wrapping_sub(1))
        };
        self.current = derive(&self.key, epoch);
        self.epoch = epoch;
    }

    /// A fresh cookie for a client at `addr` with connection ID `client_conn_id`.
    pub fn issue(&mut self, now: Timestamp, addr: SocketAddr, client_conn_id: u64) -> CookieToken {
        let time_ms = now.as_millis();
        self.rotate(time_ms);
        CookieToken {
            time_ms,
            mac: mac(&self.current, addr, client_conn_id, time_ms),
        }
    }

    /// Checks a cookie presented by `addr` for `client_conn_id`.
    pub fn verify(
        &mut self,
        now: Timestamp,
        addr: SocketAddr,
        client_conn_id: u64,
        token: &CookieToken,
    ) -> Result<(), DropReason> {
        let now_ms = now.as_millis();
        self.rotate(now_ms);
        let t = token.time_ms;
        if t > now_ms.saturating_add(MAX_CLOCK_SKEW_MS)
            || now_ms.saturating_sub(t) > self.lifetime_ms
        {
            return Err(DropReason::StaleCookie);
        }
        let epoch = t / self.rotation_ms;
        let future;
        let secret = if epoch == self.epoch {
            &self.current
        } else if epoch.wrapping_add(1) == self.epoch {
            &self.previous
        } else if epoch == self.epoch.wrapping_add(1) {
            // Issued by a shard whose clock already crossed into the next epoch.
            future = derive(&self.key, epoch);
            &future
        } else {
            return Err(DropReason::StaleCookie);
        };
        let expected = mac(secret, addr, client_conn_id, t);
        if constant_time_eq(&expected, &token.mac) {
            Ok(())
        } else {
            Err(DropReason::BadMac)
        }
    }
}

fn derive(key: &[u8; 32], epoch: u64) -> [u8; 32] {
    let mut material = [0u8; 40];
    material[..32].copy_from_slice(key);
    material[32..].copy_from_slice(&epoch.to_be_bytes());
    blake3::derive_key(CONTEXT, &material)
}

fn mac(secret: &[u8; 32], addr: SocketAddr, client_conn_id: u64, time_ms: u64) -> [u8; 16] {
    let ip = match addr {
        SocketAddr::V4(a) => a.ip().to_ipv6_mapped().octets(),
        SocketAddr::V6(a) => a.ip().octets(),
    };
    let mut input = [0u8; 34];
    input[..16].copy_from_slice(&ip);
    input[16..18].copy_from_slice(&addr.port().to_be_bytes());
    input[18..26].copy_from_slice(&client_conn_id.to_be_bytes());
    input[26..34].copy_from_slice(&time_ms.to_be_bytes());
    let full = blake3::keyed_hash(secret, &input);
    let mut out = [0u8; 16];
    out.copy_from_slice(&full.as_bytes()[..16]);
    out
}

fn constant_time_eq(a: &[u8; 16], b: &[u8; 16]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    const ROT: Duration = Duration::from_secs(120);
    const LIFE: Duration = Duration::from_secs(30);

    fn jar(now: Timestamp) -> CookieJar {
        CookieJar::new([7; 32], ROT, LIFE, now)
    }

    /// The test vector in `docs/PROTOCOL.md`: a client implementer checks their reading of
    /// the spec against it, and this test keeps the spec honest.
    #[test]
    fn known_answer() {
        let a: SocketAddr = "192.0.2.7:4433".parse().unwrap();
        let mut j = CookieJar::new([0x5a; 32], ROT, LIFE, Timestamp::from_secs(1000));
        let c = j.issue(Timestamp::from_millis(1_000_123), a, 0x0102_0304_0506_0708);
        assert_eq!(c.time_ms, 1_000_123);
        let expected = [
            0xd4, 0xb1, 0xe7, 0x03, 0xa6, 0xd3, 0x3e, 0xb3, 0x70, 0x76, 0x7c, 0x50, 0xf3, 0xef,
            0x69, 0x1a,
        ];
        assert_eq!(c.mac, expected);
    }

    #[test]
    fn verifies_own_cookie_and_binds_address_and_id() {
        let a: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let b: SocketAddr = "10.0.0.1:5001".parse().unwrap();
        let now = Timestamp::from_secs(1000);
        let mut j = jar(now);
        let c = j.issue(now, a, 42);
        assert_eq!(j.verify(now, a, 42, &c), Ok(()));
        assert_eq!(j.verify(now, b, 42, &c), Err(DropReason::BadMac));
        assert_eq!(j.verify(now, a, 43, &c), Err(DropReason::BadMac));
        let mut forged = c;
        forged.mac[0] ^= 1;
        assert_eq!(j.verify(now, a, 42, &forged), Err(DropReason::BadMac));
        let mut other_key = CookieJar::new([8; 32], ROT, LIFE, now);
        assert_eq!(other_key.verify(now, a, 42, &c), Err(DropReason::BadMac));
    }

    #[test]
    fn previous_secret_accepted_then_stale() {
        let a: SocketAddr = "[2001:db8::1]:9".parse().unwrap();
        // Issued 1 s before a rotation, checked 1 s after it: previous secret, still fresh.
        let issued = Timestamp::from_secs(119);
        let mut j = jar(issued);
        let c = j.issue(issued, a, 1);
        assert_eq!(j.verify(Timestamp::from_secs(121), a, 1, &c), Ok(()));
        // Older than the lifetime.
        assert_eq!(
            j.verify(Timestamp::from_secs(150), a, 1, &c),
            Err(DropReason::StaleCookie)
        );
        // A shard checking it with a jar that never saw epoch 0.
        let mut late = jar(Timestamp::from_secs(125));
        assert_eq!(late.verify(Timestamp::from_secs(125), a, 1, &c), Ok(()));
        // Two epochs later: retired secret, stale even with a huge lifetime.
        let mut long = CookieJar::new([7; 32], ROT, Duration::from_secs(10_000), issued);
        assert_eq!(
            long.verify(Timestamp::from_secs(241), a, 1, &c),
            Err(DropReason::StaleCookie)
        );
        // From the future.
        let mut f = jar(issued);
        let fut = CookieToken {
            time_ms: 119_000 + MAX_CLOCK_SKEW_MS + 1,
            mac: c.mac,
        };
        assert_eq!(f.verify(issued, a, 1, &fut), Err(DropReason::StaleCookie));
    }
}
