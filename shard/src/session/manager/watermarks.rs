//! A shard's share of the node-wide watermarks.
//!
//! The watermarks are node-wide; each shard sees its own count `c` exactly and the others'
//! through their last [`LoadReport`](super::super::admission::LoadReport)s (`P`, the sum,
//! at most one exchange interval old). Its view of the node is `V = c + P`, and its share of
//! a watermark `W` is its part of the node's load applied to `W`:
//!
//! ```text
//!   share(W) = ⌊W · c / V⌋          (W itself when V = 0)
//! ```
//!
//! So `c > share(H)` exactly when `V > H` (for `c > 0`): a shard trims when it sees the node
//! above the high watermark, whatever its own size, and trimming to `share(L)` removes the
//! same fraction `1 − L/V` on every shard. With agreeing views the shares of `L` add up to
//! `L` less the rounding (`< N`): the node lands on its low watermark in one round, and no
//! shard is singled out for holding more than `H/N` (a fixed split would make a busy shard
//! trim while the node is far below `H`, and let `N` busy shards together reach `N × H/N`
//! only by luck).
//!
//! **Convergence.** Reports travel once per exchange interval `τ`, so a view misses at most
//! the sessions other shards admitted during the last `τ` (plus delivery, a loop turn on the
//! control lane). Hence, once the node total `T` exceeds `H`, every shard sees `V > H` within
//! one exchange round, and each whose silence period has passed begins a trim round; a trim
//! round finishes in `⌈c / trim_batch⌉ + ⌈k / trim_batch⌉` calls for `k` sessions trimmed. If
//! views are stale the errors go both ways and are corrected in one more round:
//!
//! - a peer grew since its report (view too low): this shard trims too little, or not at
//!   all; the next report shows it, and this shard trims again once its silence period ends;
//! - a peer trimmed since its report (view too high): this shard trims to `L·c/V` of an
//!   overstated `V`, but the peer trimmed with a view that could only understate this shard,
//!   and the two errors cancel: with shares `L·cᵢ/Vᵢ` and `Vᵢ ≥ cᵢ + (true others)`, the
//!   trimmed counts add up to at least `L − N` (each shard trims at most once per silence
//!   period; keep `silence_period` above two exchange intervals, as the defaults do).
//!
//! So the node total exceeds `H` only from the moment it crosses it until one exchange round
//! plus one trim round later (plus what remains of a silence period), by at most what was
//! admitted meanwhile, and never beyond `max_sessions_node`, which admission enforces exactly.
//! It then settles between `L − N` and `H`. Protected sessions and sessions in their grace
//! period are never trimmed: if they alone exceed a shard's share, that shard stays above it,
//! and says so (`rounds_short`). `shard/tests/conn_manager.rs` simulates two shards exchanging
//! counts and checks these bounds.
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
