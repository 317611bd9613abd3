//! A session's score: what the application says it is worth, less the trouble the flight
//! recorder sees.
//!
//! ```text
//!   score(s, now) = Σ weights(s) + Σ decaying values(s, now) − penalty(s)
//!
//!   penalty(s) = w_drops · mag(drops) + w_queue · mag(queue_high_water)
//!              + w_ping · min(unanswered_pings, 64)
//!
//!   mag(x) = ⌊log₂ x⌋ + 1 for x > 0, and 0 for x = 0   (the bit length of x)
//! ```
//!
//! Drops and queue high water count by order of magnitude: 1000 drops weigh 10, a million
//! 20, so the counters of a long-lived session never swamp the application's tags (a tag
//! of 50 outweighs any drop history), yet among equally tagged sessions the troubled ones
//! rank lower. Unanswered pings count linearly: each one is a keepalive interval in which
//! the peer did not answer, the best sign the session is dead weight. Defaults: `w_drops = 1`,
//! `w_queue = 1`, `w_ping = 10` (three missed pings weigh as much as a million drops and a
//! queue high water of a thousand together).
//!
//! Ties are broken by connection ID, lowest first: IDs come from the shard's keyed generator,
//! so the order among equals is unpredictable to peers and cannot be gamed, and the same in
//! every run with the same seed.
#![forbid(unsafe_code)]

/// Trouble the flight recorder has seen on one session; the host copies it from the
/// session's stats (`SessionStats`) when they change, or periodically.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Pressure {
    /// Datagrams naming this session that were dropped (all reasons).
    pub drops: u64,
    /// The most data messages ever queued at once for this session.
    pub queue_high_water: u32,
    /// Pings sent since the last Pong.
    pub unanswered_pings: u32,
}

/// How much each unit of [`Pressure`] lowers a score. See the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct PressureWeights {
    /// Per bit of the drop count. Default 1.
    pub drops: i64,
    /// Per bit of the queue high water. Default 1.
    pub queue_high_water: i64,
    /// Per unanswered ping. Default 10.
    pub unanswered_ping: i64,
}

impl Default for PressureWeights {
    fn default() -> Self {
        PressureWeights {
            drops: 1,
            queue_high_water: 1,
            unanswered_ping: 10,
        }
    }
}

/// The bit length of `x`: `⌊log₂ x⌋ + 1`, or 0 for 0.
#[must_use]
pub fn magnitude(x: u64) -> i64 {
    i64::from(u64::BITS - x.leading_zeros())
}

/// How much `p` lowers a score under `w` (saturating).
#[must_use]
pub fn penalty(p: &Pressure, w: &PressureWeights) -> i64 {
    w.drops
        .saturating_mul(magnitude(p.drops))
        .saturating_add(
            w.queue_high_water
                .saturating_mul(magnitude(u64::from(p.queue_high_water))),
        )
        .saturating_add(
            w.unanswered_ping
                .saturating_mul(i64::from(p.unanswered_pings.min(64))),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magnitudes_and_penalties() {
        assert_eq!(magnitude(0), 0);
        assert_eq!(magnitude(1), 1);
        assert_eq!(magnitude(3), 2);
        assert_eq!(magnitude(1000), 10);
        assert_eq!(magnitude(u64::MAX), 64);
        let w = PressureWeights::default();
        assert_eq!(penalty(&Pressure::default(), &w), 0);
        let p = Pressure {
            drops: 1_000_000,
            queue_high_water: 1000,
            unanswered_pings: 3,
        };
        assert_eq!(penalty(&p, &w), 20 + 10 + 30);
        let p = Pressure {
            unanswered_pings: u32::MAX,
            ..Pressure::default()
        };
        assert_eq!(penalty(&p, &w), 640, "pings are capped at 64");
        let huge = PressureWeights {
            drops: i64::MAX,
            ..w
        };
        let p = Pressure {
            drops: 5,
            unanswered_pings: 1,
            ..Pressure::default()
        };
        assert_eq!(penalty(&p, &huge), i64::MAX);
    }
}
