//! The trim round: choose the `k` lowest-scored sessions that may be trimmed and name them,
//! a bounded amount of work per call, so that trimming 100,000 sessions never stalls a loop
//! turn.
//!
//! ```text
//!   trim(now) ─┬─ no round: begin one if forced, or if the node view shows the node over
//!              │            H, out of silence, not acted on yet (`watermarks.rs`)
//!              │            (target = share(L), k = count − target)
//!              ├─ scanning: score ≤ trim_batch sessions from `cursor`, skipping protected
//!              │            and in-grace ones; keep the k lowest in a bounded max-heap
//!              │            (O(log k) per session); at the end, heapify them lowest-first
//!              └─ closing:  the returned iterator names ≤ close_batch of them, lowest first,
//!                           each re-checked (still managed, not protected since the scan)
//! ```
//!
//! Invariants: a round scores each session at most once (the cursor only moves forward over
//! the dense entry vector; a session moved behind the cursor by another's removal is not
//! scored in that round, and new sessions are in their grace period anyway); the heap never
//! holds more than `k` candidates; one call scores at most `trim_batch` sessions and pops at
//! most `close_batch` candidates (one `O(k)` heapify at the end of the scan is the only step
//! that is not per-session). Scores are taken when scanned; a tag changed after that does
//! not re-rank its session in the same round, but a protection added after it is honoured.
//!
//! The silence period runs from the *beginning* of a round (as in go-libp2p; with a complete
//! node view, from the start of the exchange round the view is from, the same instant on
//! every shard): at most one round begins per silence period unless forced. A round that cannot reach its target
//! (too many protected or young sessions) ends early and is counted in `rounds_short`.
#![forbid(unsafe_code)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::ops::Index;

use super::super::conn_id::ConnId;
use super::super::time::Timestamp;
use super::ConnManager;

/// Why a session was trimmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
#[repr(u8)]
pub enum TrimReason {
    /// The shard held more than its share of the high watermark.
    Watermark = 0,
    /// The application asked for a trim ([`ConnManager::force_trim`]).
    Forced,
}

impl TrimReason {
    /// Number of reasons.
    pub const COUNT: usize = 2;
    /// Every reason, in counter order.
    pub const ALL: [TrimReason; Self::COUNT] = [TrimReason::Watermark, TrimReason::Forced];

    /// This reason's index in a counter array.
    #[must_use]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A short stable name, for metrics labels.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            TrimReason::Watermark => "watermark",
            TrimReason::Forced => "forced",
        }
    }
}

impl fmt::Display for TrimReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Trims counted by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrimCounters([u64; TrimReason::COUNT]);

impl TrimCounters {
    /// Trims of every reason.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

impl Index<TrimReason> for TrimCounters {
    type Output = u64;
    fn index(&self, reason: TrimReason) -> &u64 {
        &self.0[reason.index()]
    }
}

impl fmt::Display for TrimCounters {
    /// `watermark:N,forced:M`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in TrimReason::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}:{}", self.0[r.index()])?;
        }
        Ok(())
    }
}

/// A candidate: ordered by score, then connection ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Candidate {
    score: i64,
    conn: ConnId,
}

/// A trim round in progress.
#[derive(Debug)]
pub(super) struct Round {
    reason: TrimReason,
    /// Stop once the shard holds this many.
    target: usize,
    /// How many to choose.
    want: usize,
    /// Next entry to score, while scanning.
    cursor: usize,
    scanning: bool,
    /// While scanning: the `want` lowest so far, greatest on top.
    best: BinaryHeap<Candidate>,
    /// Once scanned: the chosen, lowest on top.
    chosen: BinaryHeap<Reverse<Candidate>>,
}

impl Round {
    fn offer(&mut self, c: Candidate) {
        if self.best.len() < self.want {
            self.best.push(c);
        } else if let Some(mut top) = self.best.peek_mut()
            && c < *top
        {
            *top = c;
            drop(top);
        }
    }

    fn finish_scan(&mut self) {
        self.scanning = false;
        let best = std::mem::take(&mut self.best).into_vec();
        self.chosen = best.into_iter().map(Reverse).collect::<Vec<_>>().into();
    }
}

/// The sessions one [`ConnManager::trim`] call names, lowest score first: close each with
/// `Close(Trimmed)`. At most `close_batch` per call; the rest come from later calls. Each
/// named session is already forgotten by the manager.
#[must_use = "each item is a session to close"]
#[derive(Debug)]
pub struct Trims<'a> {
    mgr: &'a mut ConnManager,
    left: usize,
}

impl Iterator for Trims<'_> {
    type Item = (ConnId, TrimReason);

    fn next(&mut self) -> Option<(ConnId, TrimReason)> {
        loop {
            let round = self.mgr.round.as_mut()?;
            if round.scanning || self.left == 0 {
                return None;
            }
            if self.mgr.entries.len() <= round.target {
                self.mgr.end_round();
                return None;
            }
            let Some(Reverse(c)) = round.chosen.pop() else {
                self.mgr.end_round();
                return None;
            };
            let reason = round.reason;
            self.left -= 1;
            match self.mgr.entry(c.conn) {
                None => continue, // closed since the scan
                Some(e) if e.protected => {
                    self.mgr.stats.spared_protected += 1;
                    continue;
                }
                Some(_) => {}
            }
            self.mgr.remove(c.conn);
            self.mgr.stats.trimmed.0[reason.index()] += 1;
            return Some((c.conn, reason));
        }
    }
}

impl ConnManager {
    /// Runs a bounded step of trimming at `now` and returns the sessions to close now (see
    /// `trim.rs`): begins a round when the node view shows the node over the high watermark
    /// and the silence period has passed (or when forced), scores up to `trim_batch`
    /// sessions, and names up to `close_batch` chosen ones. Call it whenever
    /// [`ConnManager::poll_timeout`] is due (check it after each
    /// [`ConnManager::set_node_view`]), and drain the iterator.
    pub fn trim(&mut self, now: Timestamp) -> Trims<'_> {
        self.advance(now);
        if self.round.is_none() {
            self.begin_round(now);
        }
        let batch = self.cfg.trim_batch;
        let ConnManager {
            entries,
            registry,
            cfg,
            stats,
            round,
            ..
        } = self;
        if let Some(r) = round.as_mut()
            && r.scanning
        {
            let end = r.cursor.saturating_add(batch).min(entries.len());
            for e in entries.get(r.cursor..end).unwrap_or_default() {
                stats.scanned += 1;
                if e.protected {
                    stats.spared_protected += 1;
                } else if now.saturating_since(e.opened) < cfg.grace_period {
                    stats.spared_grace += 1;
                } else {
                    r.offer(Candidate {
                        score: super::score_entry(e, registry, &cfg.pressure, now),
                        conn: e.conn,
                    });
                }
            }
            r.cursor = end;
            if r.cursor >= entries.len() {
                r.finish_scan();
            }
        }
        let left = self.cfg.close_batch;
        Trims { mgr: self, left }
    }

    /// When a watermark round may begin: `Some(t)` if the node view shows the node over the
    /// high watermark, the view has not been acted on, and the silence period ends at `t`.
    pub(super) fn watermark_due(&self, now: Timestamp) -> Option<Timestamp> {
        let (own, peers) = self.load();
        if own.saturating_add(peers) <= self.cfg.high_watermark || own == 0 {
            return None;
        }
        let silence_end = self.last_round.map_or(Timestamp::ZERO, |t| {
            t.saturating_add(self.cfg.silence_period)
        });
        match self.view {
            Some(v) if v.complete => {
                if self.last_view_round.is_some_and(|r| r >= v.round) {
                    return None;
                }
                // Silence is judged at the view's round start, the same instant on every
                // shard, so shards that saw the same view decide alike.
                (v.at >= silence_end).then_some(v.at.max(now))
            }
            _ => Some(silence_end.max(now)),
        }
    }

    fn begin_round(&mut self, now: Timestamp) {
        let (_, low) = self.shares();
        let reason = if self.forced {
            self.forced = false;
            TrimReason::Forced
        } else if self.watermark_due(now).is_some_and(|t| t <= now) {
            TrimReason::Watermark
        } else {
            return;
        };
        let started = match self.view {
            Some(v) if v.complete && reason == TrimReason::Watermark => {
                self.last_view_round = Some(v.round);
                v.at
            }
            _ => now,
        };
        let want = self.entries.len().saturating_sub(low);
        if want == 0 {
            return;
        }
        self.last_round = Some(started);
        self.stats.rounds += 1;
        self.round = Some(Round {
            reason,
            target: low,
            want,
            cursor: 0,
            scanning: true,
            best: BinaryHeap::with_capacity(want),
            chosen: BinaryHeap::new(),
        });
    }

    fn end_round(&mut self) {
        if let Some(r) = self.round.take()
            && self.entries.len() > r.target
        {
            self.stats.rounds_short += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_and_counters() {
        assert_eq!(TrimReason::ALL.map(|r| r.index()), [0, 1]);
        let mut c = TrimCounters::default();
        c.0[TrimReason::Forced.index()] += 2;
        assert_eq!(c.to_string(), "watermark:0,forced:2");
        assert_eq!(c.total(), 2);
        assert_eq!(c[TrimReason::Forced], 2);
    }

    #[test]
    fn the_round_keeps_the_k_lowest() {
        let mut r = Round {
            reason: TrimReason::Watermark,
            target: 0,
            want: 3,
            cursor: 0,
            scanning: true,
            best: BinaryHeap::new(),
            chosen: BinaryHeap::new(),
        };
        for (score, id) in [(5, 1), (-1, 2), (9, 3), (5, 0), (7, 4), (-1, 5)] {
            r.offer(Candidate {
                score,
                conn: ConnId(id),
            });
        }
        r.finish_scan();
        let order: Vec<_> =
            std::iter::from_fn(|| r.chosen.pop().map(|c| (c.0.score, c.0.conn.0))).collect();
        assert_eq!(order, [(-1, 2), (-1, 5), (5, 0)]);
    }
}
