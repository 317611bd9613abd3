//! One cumulative picture of the engine, gathered without disturbing the data path.
#![forbid(unsafe_code)]

use std::time::{Duration, SystemTime};

use ringwire_shard::hdrhistogram::Histogram;
use ringwire_shard::{ReportRequest, ShardStats};

use crate::EngineObserver;

/// One shard's part of a [`Snapshot`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ShardSnapshot {
    /// Its published counters.
    pub stats: ShardStats,
    /// Its handler's counters, if it answered in time.
    pub app: Option<Vec<(&'static str, u64)>>,
    /// Its loop-turn durations in nanoseconds, if it records them and answered.
    pub turn_nanos: Option<Histogram<u64>>,
}

/// Every shard's counters at one moment (cumulative since start).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Snapshot {
    /// When it was taken.
    pub at: SystemTime,
    /// Each shard's part, in shard order.
    pub shards: Vec<ShardSnapshot>,
    /// Report replies shards dropped because a requester's channel was full.
    pub replies_dropped: u64,
}

impl Snapshot {
    /// Gathers one: the published counters, and a report with no items from each shard
    /// (waiting at most `timeout` for them; a shard that does not answer has no `app` part).
    pub fn gather(observer: &mut EngineObserver, timeout: Duration) -> Self {
        let reports = observer.reports(ReportRequest::first(0), timeout);
        let stats = observer.stats();
        let shards = stats
            .into_iter()
            .zip(reports)
            .map(|(stats, report)| match report {
                Ok(r) => ShardSnapshot {
                    stats,
                    app: Some(r.counters),
                    turn_nanos: r.turn_nanos,
                },
                Err(_) => ShardSnapshot {
                    stats,
                    app: None,
                    turn_nanos: None,
                },
            })
            .collect();
        Self {
            at: SystemTime::now(),
            shards,
            replies_dropped: observer.replies_dropped(),
        }
    }

    /// Shards that did not answer the report request in time.
    pub fn unanswered(&self) -> usize {
        self.shards.iter().filter(|s| s.app.is_none()).count()
    }
}

/// The drop reasons of a shard's own counters: `(reason, count)`. `kernel_drops` is not one of
/// them (it is exported beside them) and send errors are summed over every errno.
pub fn drops_by_reason(s: &ShardStats) -> [(&'static str, u64); 7] {
    [
        ("send_queue_full", s.send_queue_full),
        ("send_too_large", s.send_too_large),
        ("send_error", s.send_errors_total()),
        ("recv_truncated", s.recv_truncated),
        ("recv_bad_address", s.recv_bad_address),
        ("recv_errors", s.recv_errors),
        ("rejected", s.rejected),
    ]
}

/// Whether `name` is one of the counters [`drops_by_reason`] or `kernel_drops` covers.
pub(super) fn is_drop_counter(name: &str) -> bool {
    name == "kernel_drops"
        || drops_by_reason(&ShardStats::default())
            .iter()
            .any(|(r, _)| *r == name)
}
