//! Asking the shards' handlers for reports: one bounded page per shard, tied to its request.
#![forbid(unsafe_code)]

use std::time::Duration;

use ringwire_shard::driver::ReportError;
use ringwire_shard::{ReportRequest, ShardReport};

use super::handle::EngineHandle;

/// Report replies that never reached their caller.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReportCounters {
    /// Replies to requests that had timed out, discarded when they arrived late.
    pub stale_discarded: u64,
    /// Replies a shard dropped because its reply channel was full.
    pub replies_dropped: u64,
}

impl EngineHandle {
    /// Asks every running shard for one page of its handler's report
    /// ([`Handler::report`](ringwire_shard::Handler::report): for sessions, a summary and the
    /// flight recorders of the page's sessions), with its handler's counters, and waits until
    /// `timeout` for the replies, in shard order. Each request carries a fresh id that its
    /// reply echoes: a reply to an earlier request that timed out is discarded (and counted
    /// in [`EngineHandle::report_counters`]), never returned for this one. Another thread
    /// asks through an [`EngineObserver`](super::EngineObserver).
    pub fn reports(
        &mut self,
        request: ReportRequest,
        timeout: Duration,
    ) -> Vec<Result<ShardReport, ReportError>> {
        let requests: Vec<Option<ReportRequest>> = self
            .shards
            .iter()
            .map(|s| s.running().then_some(request))
            .collect();
        self.reporter
            .ask(&requests, timeout)
            .into_iter()
            .map(|r| r.unwrap_or(Err(ReportError::Stopped)))
            .collect()
    }

    /// Each running shard's handler counters, live (see
    /// [`EngineObserver::app_counters`](super::EngineObserver::app_counters)).
    pub fn app_counters(
        &mut self,
        timeout: Duration,
    ) -> Vec<Result<Vec<(&'static str, u64)>, ReportError>> {
        self.reports(ReportRequest::first(0), timeout)
            .into_iter()
            .map(|r| r.map(|r| r.counters))
            .collect()
    }

    /// What happened to report replies so far, over every shard.
    pub fn report_counters(&self) -> ReportCounters {
        ReportCounters {
            stale_discarded: self.reporter.stale_discarded(),
            replies_dropped: self.reporter.replies_dropped(),
        }
    }
}
