//! Token buckets in virtual time, as the generic cell rate algorithm (GCRA).
//!
//! A bucket of `burst` tokens refilled at one token per `interval` is fully described by one
//! number, its *theoretical arrival time* `tat`: the moment the bucket would be full again if
//! nothing more were taken. Taking a token at `now` moves `tat` to `max(tat, now) + interval`;
//! the take conforms while that is at most `burst × interval` ahead of `now`:
//!
//! ```text
//!   tokens(now) = burst − ceil((max(tat, now) − now) / interval)
//!
//!   now ───────────┬──────────────────────────┬──────────► time
//!                  │◄── max(tat,now) − now ──►│
//!                  │   (tokens missing × iv)  tat: full again
//! ```
//!
//! So a bucket costs 8 bytes, needs no refill timer, and a bucket with `tat <= now` is full:
//! it says exactly what a bucket that was never created says, which is what lets the prefix
//! table forget it (see `table.rs`).
#![forbid(unsafe_code)]

use std::time::Duration;

use super::super::time::{Timestamp, nanos};

/// A rate limit: one token every `interval`, at most `burst` tokens held.
///
/// Built with [`RateLimit::per_second`]; [`RateLimit::split`] gives each of `n` shards its
/// part of a node-wide limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RateLimit {
    interval_ns: u64,
    burst: u32,
}

impl RateLimit {
    /// `per_second` tokens a second (at least 1), at most `burst` at once (at least 1).
    #[must_use]
    pub const fn per_second(per_second: u32, burst: u32) -> Self {
        let per_second = if per_second == 0 { 1 } else { per_second };
        RateLimit {
            interval_ns: 1_000_000_000 / per_second as u64,
            burst: if burst == 0 { 1 } else { burst },
        }
    }

    /// One token every `interval` (at least 1 ns), at most `burst` (at least 1) at once.
    #[must_use]
    pub fn every(interval: Duration, burst: u32) -> Self {
        RateLimit {
            interval_ns: nanos(interval).max(1),
            burst: burst.max(1),
        }
    }

    /// One shard's part of this limit when `shards` shards share it: the interval is
    /// `shards` times longer and the burst is divided, rounded up (so the node as a whole
    /// may burst up to `shards - 1` tokens more than `burst`).
    #[must_use]
    pub fn split(self, shards: u16) -> Self {
        let n = u32::from(shards.max(1));
        RateLimit {
            interval_ns: self.interval_ns.saturating_mul(u64::from(n)),
            burst: self.burst.div_ceil(n),
        }
    }

    /// Time between two tokens.
    #[must_use]
    pub fn interval(self) -> Duration {
        Duration::from_nanos(self.interval_ns)
    }

    /// Most tokens held at once.
    #[must_use]
    pub fn burst(self) -> u32 {
        self.burst
    }

    /// How long an empty bucket takes to fill (`burst × interval`).
    #[must_use]
    pub fn fill_time(self) -> Duration {
        Duration::from_nanos(self.window())
    }

    fn window(self) -> u64 {
        self.interval_ns.saturating_mul(u64::from(self.burst))
    }
}

/// One bucket's state: its theoretical arrival time. [`TokenBucket::default`] is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenBucket {
    tat: Timestamp,
}

impl TokenBucket {
    /// Whether a token could be taken at `now`.
    #[must_use]
    pub fn can_take(&self, now: Timestamp, rate: RateLimit) -> bool {
        self.next_tat(now, rate) - now.as_nanos() <= rate.window()
    }

    /// Takes a token if one is available at `now`; says whether it did.
    pub fn take(&mut self, now: Timestamp, rate: RateLimit) -> bool {
        let next = self.next_tat(now, rate);
        if next - now.as_nanos() <= rate.window() {
            self.tat = Timestamp(next);
            true
        } else {
            false
        }
    }

    /// Whether the bucket holds `burst` tokens at `now` (no trace of past takes is left).
    #[must_use]
    pub fn is_full(&self, now: Timestamp) -> bool {
        self.tat <= now
    }

    /// Tokens available at `now` (for diagnostics and tests).
    #[must_use]
    pub fn tokens(&self, now: Timestamp, rate: RateLimit) -> u32 {
        let missing_ns = self.tat.as_nanos().saturating_sub(now.as_nanos());
        let missing = missing_ns.div_ceil(rate.interval_ns);
        u32::try_from(u64::from(rate.burst).saturating_sub(missing)).unwrap_or(0)
    }

    /// `max(tat, now) + interval`, saturating; always `>= now`.
    fn next_tat(&self, now: Timestamp, rate: RateLimit) -> u64 {
        self.tat
            .as_nanos()
            .max(now.as_nanos())
            .saturating_add(rate.interval_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn burst_then_one_token_per_interval() {
        let rate = RateLimit::per_second(20, 5); // WireGuard's handshake limit: 50 ms, burst 5
        assert_eq!(rate.interval(), Duration::from_millis(50));
        let mut b = TokenBucket::default();
        let t0 = Timestamp::from_secs(100);
        assert!(b.is_full(t0));
        assert_eq!(b.tokens(t0, rate), 5);
        for _ in 0..5 {
            assert!(b.take(t0, rate));
        }
        assert!(!b.take(t0, rate));
        assert!(!b.can_take(Timestamp(t0.0 + 49 * MS), rate));
        assert!(b.take(Timestamp(t0.0 + 50 * MS), rate));
        assert!(!b.take(Timestamp(t0.0 + 50 * MS), rate));
        assert_eq!(b.tokens(Timestamp(t0.0 + 100 * MS), rate), 1);
        // Full again once a whole window has passed since the last take was due.
        assert!(!b.is_full(Timestamp(t0.0 + 299 * MS)));
        assert!(b.is_full(Timestamp(t0.0 + 300 * MS)));
        assert_eq!(b.tokens(Timestamp(t0.0 + 300 * MS), rate), 5);
    }

    #[test]
    fn a_refused_take_changes_nothing() {
        let rate = RateLimit::per_second(1, 1);
        let mut b = TokenBucket::default();
        let t0 = Timestamp::from_secs(5);
        assert!(b.take(t0, rate));
        let before = b;
        for i in 0..1000 {
            assert!(!b.take(Timestamp(t0.0 + i * MS), rate));
        }
        assert_eq!(b, before);
        assert!(b.take(Timestamp::from_secs(6), rate));
    }

    #[test]
    fn long_run_rate_is_exact() {
        // Offered 10x the rate for 100 s: exactly burst + rate x time conform.
        let rate = RateLimit::per_second(20, 5);
        let mut b = TokenBucket::default();
        let mut ok = 0u64;
        for i in 0..20_000u64 {
            if b.take(Timestamp(i * 5 * MS), rate) {
                ok += 1;
            }
        }
        // 100 s minus one step at 20/s, plus the burst.
        assert_eq!(ok, 5 + 1999);
    }

    #[test]
    fn split_divides_the_rate_and_rounds_the_burst_up() {
        let node = RateLimit::per_second(20, 5);
        let shard = node.split(4);
        assert_eq!(shard.interval(), Duration::from_millis(200));
        assert_eq!(shard.burst(), 2);
        assert_eq!(node.split(0), node);
        assert_eq!(node.split(64).burst(), 1);
        assert_eq!(RateLimit::per_second(0, 0), RateLimit::per_second(1, 1));
        assert_eq!(
            RateLimit::every(Duration::ZERO, 3).interval(),
            Duration::from_nanos(1)
        );
    }

    #[test]
    fn saturates_near_the_end_of_time() {
        let rate = RateLimit::per_second(1, 2);
        let mut b = TokenBucket::default();
        let end = Timestamp(u64::MAX - 10);
        // No overflow; at the end of time the bucket is simply never refilled past full.
        let _ = b.take(end, rate);
        let _ = b.take(Timestamp::NEVER, rate);
        assert!(b.tokens(end, rate) <= 2);
    }
}
