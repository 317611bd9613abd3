//! Watching a running engine from any thread: counters (published atomics) and report pages
//! (asked of each shard's own thread), without the [`EngineHandle`] itself. The binary's
//! metrics thread holds one while its main thread waits on the handle's events.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringwire_shard::driver::{ReportError, ReportReplies};
use ringwire_shard::{Rank, ReportItem, ReportRequest, ShardControl, ShardReport, ShardStats};

use super::handle::EngineHandle;

/// A `Send` view of a running engine: its shards' published counters and report pages. Each
/// observer has its own reply channels, so several can ask at once (a clone gets new ones).
#[derive(Debug)]
pub struct EngineObserver {
    controls: Vec<Arc<ShardControl>>,
    replies: Vec<ReportReplies>,
    last_id: u64,
}

impl Clone for EngineObserver {
    fn clone(&self) -> Self {
        Self::new(self.controls.clone())
    }
}

/// The worst items of every shard by one rank ([`EngineObserver::worst`]).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Worst {
    /// `(shard, item)`, worst first, at most the number asked for.
    pub items: Vec<(usize, ReportItem)>,
    /// Shards that did not answer every page (stopped, busy or late): their items may be
    /// missing.
    pub incomplete: Vec<usize>,
    /// Pages answered, over every shard.
    pub scanned_pages: usize,
}

impl EngineObserver {
    pub(super) fn new(controls: Vec<Arc<ShardControl>>) -> Self {
        let replies = controls.iter().map(|_| ReportReplies::new()).collect();
        Self {
            controls,
            replies,
            last_id: 0,
        }
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.controls.len()
    }

    /// Each shard's most recently published counters (atomics; the shard is not disturbed).
    pub fn stats(&self) -> Vec<ShardStats> {
        self.controls.iter().map(|c| c.stats()).collect()
    }

    /// Report replies shards dropped because a requester's reply channel was full, summed.
    pub fn replies_dropped(&self) -> u64 {
        self.controls
            .iter()
            .map(|c| c.report_replies_dropped())
            .sum()
    }

    /// Replies that arrived after their request timed out, discarded by this observer.
    pub fn stale_discarded(&self) -> u64 {
        self.replies.iter().map(ReportReplies::stale).sum()
    }

    /// Asks every shard for one page of its handler's report, its handler's counters and its
    /// turn histogram, and waits until `timeout` for the replies, in shard order (see
    /// [`EngineHandle::reports`]).
    pub fn reports(
        &mut self,
        request: ReportRequest,
        timeout: Duration,
    ) -> Vec<Result<ShardReport, ReportError>> {
        let requests = vec![Some(request); self.controls.len()];
        self.ask(&requests, timeout)
            .into_iter()
            .map(|r| r.unwrap_or(Err(ReportError::Stopped)))
            .collect()
    }

    /// Each shard's handler counters, live (a report request with no items): what the shard's
    /// exit report will carry, as of now. Shards that do not answer by `timeout` are `Err`.
    pub fn app_counters(
        &mut self,
        timeout: Duration,
    ) -> Vec<Result<Vec<(&'static str, u64)>, ReportError>> {
        self.reports(ReportRequest::first(0), timeout)
            .into_iter()
            .map(|r| r.map(|r| r.counters))
            .collect()
    }

    /// The `n` worst items (for sessions: flight recorders) over every shard by `rank`. Each
    /// shard is scanned a page of [`ReportRequest::RANK_SCAN`] items per request, at most
    /// `max_pages` pages (the shard serves datagrams between them); every request waits at
    /// most `timeout`.
    pub fn worst(&mut self, rank: Rank, n: usize, max_pages: usize, timeout: Duration) -> Worst {
        let mut worst = Worst::default();
        let mut merged: BTreeMap<(std::cmp::Reverse<u64>, u64, usize), ReportItem> =
            BTreeMap::new();
        let mut cursors: Vec<Option<ReportRequest>> =
            vec![Some(ReportRequest::worst(rank, n)); self.controls.len()];
        for _ in 0..max_pages {
            if cursors.iter().all(Option::is_none) {
                break;
            }
            let answers = self.ask(&cursors, timeout);
            for (shard, answer) in answers.into_iter().enumerate() {
                let Some(answer) = answer else { continue };
                let request = cursors[shard].take();
                match answer {
                    Ok(report) => {
                        worst.scanned_pages += 1;
                        for item in report.items {
                            merged.insert((std::cmp::Reverse(item.score), item.key, shard), item);
                            if merged.len() > n {
                                merged.pop_last();
                            }
                        }
                        cursors[shard] = report.next.and_then(|c| request.map(|r| r.after(c)));
                    }
                    Err(_) => worst.incomplete.push(shard),
                }
            }
        }
        for (shard, cursor) in cursors.iter().enumerate() {
            if cursor.is_some() && !worst.incomplete.contains(&shard) {
                worst.incomplete.push(shard);
            }
        }
        worst.items = merged
            .into_iter()
            .map(|((_, _, shard), item)| (shard, item))
            .collect();
        worst
    }

    /// Sends `requests[i]` to shard `i` (where `Some`) and waits for every reply under one
    /// deadline. `None` where nothing was asked.
    pub(super) fn ask(
        &mut self,
        requests: &[Option<ReportRequest>],
        timeout: Duration,
    ) -> Vec<Option<Result<ShardReport, ReportError>>> {
        self.last_id += 1;
        let id = self.last_id;
        let sent: Vec<Option<Result<(), ReportError>>> = self
            .controls
            .iter()
            .zip(requests)
            .zip(&self.replies)
            .map(|((c, r), replies)| r.map(|r| c.request_report(id, r, replies)))
            .collect();
        let deadline = Instant::now() + timeout;
        self.replies
            .iter_mut()
            .zip(sent)
            .map(|(replies, sent)| {
                sent.map(|sent| sent.and_then(|()| replies.wait_for(id, deadline)))
            })
            .collect()
    }
}

impl EngineHandle {
    /// A view of this engine for another thread: counters, report pages, the worst sessions.
    pub fn observer(&self) -> EngineObserver {
        EngineObserver::new(self.shards.iter().map(|s| Arc::clone(&s.control)).collect())
    }
}
