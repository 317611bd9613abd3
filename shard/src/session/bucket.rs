//! A token bucket on virtual time: the handshake rate that defines "under load", and the
//! rate limits of cookie replies and stateless resets.
#![forbid(unsafe_code)]

use super::time::Timestamp;

const NANOS: u128 = 1_000_000_000;

/// `rate` tokens per second, at most `burst` stored. Integer arithmetic: a credit in
/// token-nanoseconds, so no rate is lost to rounding.
#[derive(Clone, Debug)]
pub(crate) struct TokenBucket {
    rate: u32,
    cap: u128,
    credit: u128,
    last: Timestamp,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: u32, burst: u32, now: Timestamp) -> Self {
        let cap = u128::from(burst.max(1)) * NANOS;
        TokenBucket {
            rate,
            cap,
            credit: cap,
            last: now,
        }
    }

    fn refill(&mut self, now: Timestamp) {
        let elapsed = u128::from(now.0.saturating_sub(self.last.0));
        self.last = self.last.max(now);
        self.credit = (self.credit + elapsed * u128::from(self.rate)).min(self.cap);
    }

    /// Whether a token is available now (without taking it).
    pub fn has_token(&mut self, now: Timestamp) -> bool {
        self.refill(now);
        self.credit >= NANOS
    }

    /// Takes a token if one is available.
    pub fn try_take(&mut self, now: Timestamp) -> bool {
        if self.has_token(now) {
            self.credit -= NANOS;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_and_burst() {
        let mut b = TokenBucket::new(10, 3, Timestamp::ZERO);
        assert!((0..3).all(|_| b.try_take(Timestamp::ZERO)));
        assert!(!b.try_take(Timestamp::ZERO));
        assert!(!b.try_take(Timestamp::from_millis(99)));
        assert!(b.try_take(Timestamp::from_millis(100)));
        // A long pause refills to the burst, not beyond.
        let t = Timestamp::from_secs(100);
        assert_eq!((0..10).filter(|_| b.try_take(t)).count(), 3);
    }
}
