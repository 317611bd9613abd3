//! What the engine asks a handler to report about itself, and what comes back: bounded pages.
//!
//! A report is written inside the shard's loop, so its cost is the loop's stall. A request
//! names at most [`ReportRequest::MAX_LIMIT`] items (for sessions: one flight-recorder line per
//! session) after a cursor; the handler writes a summary and that page, and returns the cursor
//! of the next page. Reading every item of a large table takes several requests, each of
//! bounded cost, and the shard serves datagrams between them.
#![forbid(unsafe_code)]

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
}

impl ReportRequest {
    /// The most items one request may ask for (larger limits are lowered to this).
    pub const MAX_LIMIT: usize = 4096;

    /// The summary and the first `limit` items (0: the summary alone).
    pub fn first(limit: usize) -> Self {
        Self {
            limit: limit.min(Self::MAX_LIMIT),
            after: None,
        }
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

    /// This request's page of `keys` (unique, any order): the `limit` smallest keys after the
    /// cursor, sorted, and the cursor of the next page if more keys follow. One pass over
    /// `keys`, holding at most `limit` of them; nothing is read for keys outside the page.
    pub fn page(&self, keys: impl IntoIterator<Item = u64>) -> Page {
        let mut page = Page::default();
        if self.limit == 0 {
            return page;
        }
        // A max-heap of the smallest keys seen so far: each key costs one compare with its top
        // once it is full.
        let mut heap = std::collections::BinaryHeap::with_capacity(self.limit);
        let mut more = false;
        for key in keys {
            if self.after.is_some_and(|after| key <= after) {
                continue;
            }
            if heap.len() < self.limit {
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

/// One shard's answer to a report request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShardReport {
    /// The shard that wrote it.
    pub shard: usize,
    /// What its handler wrote ([`Handler::report`](crate::Handler::report)), one item a line.
    pub text: String,
    /// Where the next page starts (pass it to [`ReportRequest::after`]); `None` after the last.
    pub next: Option<u64>,
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
    fn limits_are_capped() {
        assert_eq!(
            ReportRequest::first(usize::MAX).limit(),
            ReportRequest::MAX_LIMIT
        );
    }
}
