//! Asking the shards' handlers for reports: one bounded page per shard, tied to its request.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

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
    /// Asks every shard for one page of its handler's report
    /// ([`Handler::report`](ringwire_shard::Handler::report): for sessions, a summary and the
    /// flight recorders of the page's sessions) and waits until `timeout` for the replies, in
    /// shard order. Each request carries a fresh id that its reply echoes: a reply to an
    /// earlier request that timed out is discarded (and counted in
    /// [`EngineHandle::report_counters`]), never returned for this one.
    pub fn reports(
        &mut self,
        request: ReportRequest,
        timeout: Duration,
    ) -> Vec<Result<ShardReport, ReportError>> {
        self.last_report += 1;
        let id = self.last_report;
        let sent: Vec<Result<(), ReportError>> = self
            .shards
            .iter()
            .map(|s| {
                if s.running() {
                    s.control.request_report(id, request)
                } else {
                    Err(ReportError::Stopped)
                }
            })
            .collect();
        let deadline = Instant::now() + timeout;
        self.shards
            .iter_mut()
            .zip(sent)
            .map(|(s, sent)| sent.and_then(|()| s.replies.wait_for(id, deadline)))
            .collect()
    }

    /// What happened to report replies so far, over every shard.
    pub fn report_counters(&self) -> ReportCounters {
        ReportCounters {
            stale_discarded: self.shards.iter().map(|s| s.replies.stale()).sum(),
            replies_dropped: self
                .shards
                .iter()
                .map(|s| s.control.report_replies_dropped())
                .sum(),
        }
    }
}
