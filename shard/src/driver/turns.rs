//! The loop-turn duration histogram (`ShardConfig::turn_histogram`): how long each turn's
//! work took, from the end of its wait in `io_uring_enter` to the end of the turn, recorded on
//! the shard with no lock and shipped as a cumulative copy with every report reply.
#![forbid(unsafe_code)]

use std::time::Instant;

use hdrhistogram::Histogram;

/// Longest turn recorded exactly: 100 s (longer ones are recorded as 100 s).
const MAX_NANOS: u64 = 100_000_000_000;

/// One shard's turn durations, in nanoseconds.
#[derive(Debug)]
pub(super) struct TurnClock {
    hist: Histogram<u64>,
}

impl TurnClock {
    /// An empty histogram: 1 ns to 100 s at two significant digits (about 30 KiB, allocated
    /// once here; recording never allocates).
    pub(super) fn new() -> Option<Self> {
        Histogram::new_with_bounds(1, MAX_NANOS, 2)
            .ok()
            .map(|hist| Self { hist })
    }

    /// Records a turn whose work began at `start`.
    pub(super) fn record(&mut self, start: Instant) {
        let nanos = u64::try_from(start.elapsed().as_nanos()).unwrap_or(MAX_NANOS);
        self.hist.saturating_record(nanos.clamp(1, MAX_NANOS));
    }

    pub(super) fn histogram(&self) -> &Histogram<u64> {
        &self.hist
    }
}
