//! What the engine asks a handler to report about itself, and what comes back: bounded pages.
//!
//! A report is written inside the shard's loop, so its cost is the loop's stall. A request
//! names at most [`ReportRequest::MAX_LIMIT`] items (for sessions: one flight-recorder line per
//! session) after a cursor; the handler writes a summary and that page, and returns the cursor
//! of the next page. Reading every item of a large table takes several requests, each of
//! bounded cost, and the shard serves datagrams between them.
//!
//! A *ranked* request ([`ReportRequest::worst`]) asks for the worst items by a [`Rank`] (the
//! live view's `--by drops|queue|rtt|age`): each page reads the next
//! [`ReportRequest::RANK_SCAN`] items after the cursor and reports the `limit` worst of them,
//! so a page still costs one pass over the keys plus a bounded number of items; the requester
//! merges the pages.
//!
//! Items are typed ([`ReportItem`]: a key, a score and named fields) so that a JSON view and the
//! text report render the same data; the summary is text.
#![forbid(unsafe_code)]

use std::fmt;
use std::str::FromStr;

/// What a ranked report orders items by (worst first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rank {
    /// Datagrams dropped, over every reason.
    Drops,
    /// Messages queued now.
    Queue,
    /// Smoothed round-trip time.
    Rtt,
    /// Time since the peer was last heard from (never heard from ranks worst).
    Age,
}

impl Rank {
    /// Every rank, in the order the CLI lists them.
    pub const ALL: [Rank; 4] = [Rank::Drops, Rank::Queue, Rank::Rtt, Rank::Age];

    /// The rank's name (`drops`, `queue`, `rtt`, `age`).
    pub fn name(self) -> &'static str {
        match self {
            Rank::Drops => "drops",
            Rank::Queue => "queue",
            Rank::Rtt => "rtt",
            Rank::Age => "age",
        }
    }
}

impl fmt::Display for Rank {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Rank {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Rank::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| format!("unknown rank {s:?}: allowed drops, queue, rtt or age"))
    }
}

/// A request for one page of a handler's report: a summary, then at most [`limit`] items whose
/// keys come after [`cursor`], in key order.
///
/// [`limit`]: ReportRequest::limit
/// [`cursor`]: ReportRequest::cursor
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReportRequest {
    limit: usize,
    after: Option<u64>,
    rank: Option<Rank>,
}

impl ReportRequest {
    /// The most items one request may ask for (larger limits are lowered to this).
    pub const MAX_LIMIT: usize = 4096;

    /// Items one page of a ranked request reads (by key order after its cursor) to pick its
    /// worst from.
    pub const RANK_SCAN: usize = 4096;

    /// The summary and the first `limit` items (0: the summary alone).
    pub fn first(limit: usize) -> Self {
        Self {
            limit: limit.min(Self::MAX_LIMIT),
            after: None,
            rank: None,
        }
    }

    /// The summary and the `limit` worst items by `rank` among the first
    /// [`RANK_SCAN`](Self::RANK_SCAN) keys; follow [`ShardReport::next`] with
    /// [`after`](Self::after) to scan the rest, and merge.
    pub fn worst(rank: Rank, limit: usize) -> Self {
        Self {
            rank: Some(rank),
            ..Self::first(limit)
        }
    }

    /// The rank of a ranked request (`None`: items in key order).
    pub fn rank(&self) -> Option<Rank> {
        self.rank
    }

    /// The same request for the page after `cursor` (a [`ShardReport::next`] from the previous
    /// page).
    #[must_use]
    pub fn after(self, cursor: u64) -> Self {
        Self {
            after: Some(cursor),
            ..self
        }
    }

    /// The most items to write.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Write only items whose key is greater than this (`None`: from the first).
    pub fn cursor(&self) -> Option<u64> {
        self.after
    }

    /// The keys this request reads, from `keys` (unique, any order): for a plain request its
    /// [`page`](Self::page); for a ranked one the next [`RANK_SCAN`](Self::RANK_SCAN) keys
    /// after the cursor (of which the handler reports the `limit` worst). Nothing is read for
    /// keys outside it.
    pub fn scan(&self, keys: impl IntoIterator<Item = u64>) -> Page {
        match self.rank {
            Some(_) if self.limit > 0 => page_of(Self::RANK_SCAN, self.after, keys),
            _ => self.page(keys),
        }
    }

    /// This request's page of `keys` (unique, any order): the `limit` smallest keys after the
    /// cursor, sorted, and the cursor of the next page if more keys follow. One pass over
    /// `keys`, holding at most `limit` of them; nothing is read for keys outside the page.
    pub fn page(&self, keys: impl IntoIterator<Item = u64>) -> Page {
        page_of(self.limit, self.after, keys)
    }
}

/// The `limit` smallest keys after `after`, sorted, and whether more follow.
fn page_of(limit: usize, after: Option<u64>, keys: impl IntoIterator<Item = u64>) -> Page {
    let mut page = Page::default();
    if limit == 0 {
        return page;
    }
    // A max-heap of the smallest keys seen so far: each key costs one compare with its top
    // once it is full.
    let mut heap = std::collections::BinaryHeap::with_capacity(limit);
    let mut more = false;
    for key in keys {
        if after.is_some_and(|after| key <= after) {
            continue;
        }
        if heap.len() < limit {
            heap.push(key);
        } else if heap.peek().is_some_and(|top| key < *top) {
            heap.pop();
            heap.push(key);
            more = true;
        } else {
            more = true;
        }
    }
    page.keys = heap.into_sorted_vec();
    page.next = if more {
        page.keys.last().copied()
    } else {
        None
    };
    page
}

/// One page of keys chosen by [`ReportRequest::page`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Page {
    /// The keys to write, in ascending order.
    pub keys: Vec<u64>,
    /// The cursor of the next page (the last key here) if more keys follow.
    pub next: Option<u64>,
}

/// Keeps the `n` items with the highest scores (ties: the smaller key), worst first. One pass;
/// holds at most `n` items. For [`Handler::report`](crate::Handler::report) on ranked requests.
pub fn worst_of(n: usize, items: impl IntoIterator<Item = ReportItem>) -> Vec<ReportItem> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    if n == 0 {
        return Vec::new();
    }
    // A min-heap (by badness) of the worst seen so far; each item costs one compare once full.
    let mut heap: BinaryHeap<Reverse<Ranked>> = BinaryHeap::with_capacity(n);
    for item in items {
        let candidate = Ranked(item);
        if heap.len() < n {
            heap.push(Reverse(candidate));
        } else if heap.peek().is_some_and(|Reverse(least)| candidate > *least) {
            heap.pop();
            heap.push(Reverse(candidate));
        }
    }
    // Ascending by `Reverse`: worst first.
    heap.into_sorted_vec()
        .into_iter()
        .map(|Reverse(r)| r.0)
        .collect()
}

/// A [`ReportItem`] ordered by badness: higher score, then smaller key.
struct Ranked(ReportItem);

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0
            .score
            .cmp(&other.0.score)
            .then(other.0.key.cmp(&self.0.key))
    }
}

/// One item of a report page: for sessions, one session's flight recorder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportItem {
    /// What it is (`session`).
    pub kind: &'static str,
    /// Its key (a session's connection ID); plain pages are in key order.
    pub key: u64,
    /// Its measure under the request's [`Rank`] (higher is worse); 0 on plain pages.
    pub score: u64,
    /// Its fields, in order, as `name=value` in the text report.
    pub fields: Vec<(&'static str, String)>,
}

impl fmt::Display for ReportItem {
    /// `session 0x0123456789abcdef peer=... state=...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:#018x}", self.kind, self.key)?;
        for (name, value) in &self.fields {
            write!(f, " {name}={value}")?;
        }
        Ok(())
    }
}

/// What a handler writes for one report request ([`Handler::report`](crate::Handler::report)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReportPage {
    /// Summary lines (for sessions: `sessions=... accepted=... drops=...`).
    pub summary: String,
    /// The page's items: in key order on plain pages, worst first on ranked ones.
    pub items: Vec<ReportItem>,
}

/// One shard's answer to a report request.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ShardReport {
    /// The shard that wrote it.
    pub shard: usize,
    /// Its handler's summary ([`Handler::report`](crate::Handler::report)), one line each.
    pub summary: String,
    /// The page's items ([`ReportItem`]).
    pub items: Vec<ReportItem>,
    /// Where the next page starts (pass it to [`ReportRequest::after`]); `None` after the last.
    pub next: Option<u64>,
    /// The handler's own counters at that turn ([`Handler::counters`](crate::Handler::counters)),
    /// cumulative: the live form of what the shard's exit report carries.
    pub counters: Vec<(&'static str, u64)>,
    /// Loop-turn durations in nanoseconds since the shard started, when the shard records them
    /// (`ShardConfig::turn_histogram`); a cumulative copy.
    pub turn_nanos: Option<hdrhistogram::Histogram<u64>>,
}

impl ShardReport {
    /// The summary, then one line per item (`session 0x... peer=...`).
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mut text = self.summary.clone();
        for item in &self.items {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            let _ = write!(text, "{item}");
        }
        text
    }

    /// The handler counter named `name` (0 if it has none).
    pub fn counter(&self, name: &str) -> u64 {
        self.counters
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn pages_cover_every_key_once_in_order() {
        // Keys in a scrambled order, as a hash table yields them.
        let keys: Vec<u64> = (0..1000u64).map(|i| (i * 7919) % 1000 * 3 + 1).collect();
        let mut request = ReportRequest::first(64);
        let mut seen = Vec::new();
        loop {
            let page = request.page(keys.iter().copied());
            assert!(page.keys.len() <= 64);
            assert!(page.keys.windows(2).all(|w| w[0] < w[1]));
            seen.extend_from_slice(&page.keys);
            match page.next {
                Some(cursor) => request = request.after(cursor),
                None => break,
            }
        }
        let mut want = keys.clone();
        want.sort_unstable();
        assert_eq!(seen, want);
    }

    #[test]
    fn an_exact_fit_has_no_next_page_and_limit_zero_reads_nothing() {
        let page = ReportRequest::first(3).page([9, 3, 6]);
        assert_eq!(page.keys, [3, 6, 9]);
        assert_eq!(page.next, None);
        let page = ReportRequest::first(2).page([9, 3, 6]);
        assert_eq!(page.keys, [3, 6]);
        assert_eq!(page.next, Some(6));
        let page = ReportRequest::first(2).after(6).page([9, 3, 6]);
        assert_eq!(page.keys, [9]);
        assert_eq!(page.next, None);
        assert_eq!(ReportRequest::first(0).page([1, 2]), Page::default());
    }

    #[test]
    fn the_worst_are_kept_worst_first_with_ties_by_key() {
        let item = |key, score| ReportItem {
            kind: "session",
            key,
            score,
            fields: Vec::new(),
        };
        let items = (0..100u64).map(|k| item(k, (k * 37) % 10));
        let worst = worst_of(5, items);
        let got: Vec<(u64, u64)> = worst.iter().map(|i| (i.score, i.key)).collect();
        assert_eq!(got, [(9, 7), (9, 17), (9, 27), (9, 37), (9, 47)]);
        assert!(worst_of(0, [item(1, 1)]).is_empty());
        let shown = item(0xab, 3).to_string();
        assert_eq!(shown, "session 0x00000000000000ab");
    }

    #[test]
    fn a_ranked_request_scans_rank_scan_keys_per_page() {
        let keys: Vec<u64> = (1..=(ReportRequest::RANK_SCAN as u64 + 10)).collect();
        let r = ReportRequest::worst(Rank::Drops, 3);
        let page = r.scan(keys.iter().copied());
        assert_eq!(page.keys.len(), ReportRequest::RANK_SCAN);
        let next = page.next.unwrap();
        let rest = r.after(next).scan(keys.iter().copied());
        assert_eq!(rest.keys.len(), 10);
        assert_eq!(rest.next, None);
        assert_eq!(
            ReportRequest::first(3)
                .scan(keys.iter().copied())
                .keys
                .len(),
            3
        );
        assert_eq!("age".parse::<Rank>(), Ok(Rank::Age));
        assert!("size".parse::<Rank>().is_err());
    }

    #[test]
    fn limits_are_capped() {
        assert_eq!(
            ReportRequest::first(usize::MAX).limit(),
            ReportRequest::MAX_LIMIT
        );
    }
}
