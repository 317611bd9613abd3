//! A shard's share of the node-wide watermarks, and when it trims.
//!
//! The watermarks are node-wide. A shard knows the node through the count exchange
//! ([`NodeView`](super::super::admission::NodeView)): for the latest exchange round `r` for
//! which it holds every shard's [`LoadReport`](super::super::admission::LoadReport), its own
//! count `c` and the others' sum `P` as reported at the start of `r`. Its view of the node is
//! `V = c + P`, and its share of a watermark `W` is its part of the node's load applied to
//! `W`:
//!
//! ```text
//!   share(W) = ⌊W · c / V⌋          (W itself when V = 0)
//! ```
//!
//! So `c > share(H)` exactly when `V > H` (for `c > 0`): a shard trims when it sees the node
//! above the high watermark, whatever its own size, and trimming to `share(L)` removes the
//! same fraction `1 − L/V` on every shard. A fixed split (`H/N` each) would make a busy shard
//! trim while the node is far below `H`.
//!
//! **Every shard decides from the same numbers.** A complete view for round `r` is the same
//! on every shard (the same reports), so every shard sees `V > H` in the same round, judges
//! its silence period at the same instant (the round's start, on the shared session clock),
//! and its shares of `L` for that view add up to `L` less the rounding (`< N`): the node lands
//! on its low watermark in one trim round. A view is acted on once: until the next round's
//! reports it still shows the counts from before the trim.
//!
//! Deciding from live counts instead does not converge in one round. A shard that trims
//! after another has (their silence periods drift apart by a loop turn or a report) sees the
//! other's smaller count, a smaller `V`, and keeps `L·c/V'` > `L·c/V`: with `L` close to
//! `H` the node stays above `H` for several silence periods (the property test in
//! `shard/tests/conn_manager.rs` finds such schedules in a few hundred cases when views are
//! ignored). Without any exchange a shard sees only itself and the node can hold up to
//! `N × H`.
//!
//! **Bound and convergence.** Admission keeps the node at or below `max_sessions_node` at all
//! times, exactly (`admission/node.rs`). Above the high watermark, the node is brought back
//! as follows: the reports of the round in which it crosses `H` reach every shard within that
//! round (a loop turn on the control lane), so the next complete view shows it; every shard
//! whose silence period has passed begins a trim round, which finishes in
//! `⌈c / trim_batch⌉ + ⌈k / close_batch⌉` calls for `k` sessions trimmed; the node then holds
//! at most `L` plus what arrived since that view (new sessions are in their grace period and
//! are not trimmed). Once arrivals stop, the node is within `[L − N, H]` after at most
//! `grace_period + silence_period + 3 × exchange_interval`, and stays there: a round begun
//! while sessions were still in their grace period trims only those out of it and silences
//! the shards; the next round, a silence period later, trims the rest. The property test
//! checks exactly this bound on 2 to 4 shards, with reports delayed up to a round.
//!
//! With a report missing (a lagging shard, a lost message) a shard has no complete view and
//! falls back to its live count and each peer's latest report; it then decides alone, as
//! above, and converges more slowly, never past `max_sessions_node`. Protected sessions and
//! sessions in their grace period are never trimmed: if they alone exceed a shard's share,
//! the node stays above `H` and the shard says so (`rounds_short`).
#![forbid(unsafe_code)]

/// `⌊watermark · own / (own + peers)⌋`, or `watermark` when both counts are 0.
#[must_use]
pub fn share(watermark: usize, own: usize, peers: usize) -> usize {
    let total = own as u128 + peers as u128;
    if total == 0 {
        return watermark;
    }
    // `own <= total`, so the quotient is at most `watermark` and fits.
    (watermark as u128 * own as u128 / total) as usize
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn shares_follow_the_load() {
        assert_eq!(share(192, 0, 0), 192);
        assert_eq!(share(192, 100, 0), 192);
        assert_eq!(share(192, 0, 100), 0);
        assert_eq!(share(192, 150, 150), 96);
        assert_eq!(share(160, 250, 10), 153);
        assert_eq!(share(usize::MAX, usize::MAX, 0), usize::MAX);
    }

    proptest! {
        /// Over the high watermark exactly when the node view is; shares of one view add up
        /// to the watermark less under one per shard.
        #[test]
        fn trigger_and_sum(h in 1usize..10_000, counts in proptest::collection::vec(0usize..5000, 1..8)) {
            let total: usize = counts.iter().sum();
            let mut sum = 0;
            for &c in &counts {
                let s = share(h, c, total - c);
                if c > 0 {
                    prop_assert_eq!(c > s, total > h);
                }
                sum += s;
            }
            if total > 0 {
                prop_assert!(sum <= h && sum + counts.len() > h, "{} of {}", sum, h);
            }
        }
    }
}
