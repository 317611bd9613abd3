//! The node-wide session cap, kept by exchanging counts between shards: no lock, no shared
//! counter, and the cap is never exceeded however late the exchange runs.
//!
//! Time is cut into rounds of `exchange_interval` on the server's one session clock (round
//! `r` is `⌊now / interval⌋`, the same on every shard). When a shard begins round `r` it
//! publishes a [`LoadReport`]: its session count `c` and its *ceiling* `e = c + g`, the most
//! sessions it may hold during round `r` (a session that closes makes room for another within
//! the round; `g` is the grant). The host carries the report to every other shard over the
//! mesh control lane.
//!
//! The grant is a share of the headroom that is left when every other shard is counted at the
//! highest count it can reach:
//!
//! ```text
//!   U = c + Σ_{j≠i} ê_j         ê_j = j's ceiling for round r−1 if its report for r−1 is
//!                                     here, else max_sessions_shard (j is assumed full)
//!   g = min( ⌊(max_sessions_node − U)⁺ / N⌋ , max_sessions_shard − c )
//! ```
//!
//! In its first round (when it is created, holding no session) a shard has not heard from
//! anyone; its grant is its static share `⌊C/N⌋` (+1 for the first `C mod N` shards).
//!
//! **Bound.** Let `E(r) = Σ_i e_i(r)`. A shard's count when it begins round `r` is at most its
//! ceiling for `r − 1`, so `U ≥ Σ_j c_j(r)` and
//! `Σ_i g_i(r) ≤ C − Σ_j c_j(r)`: `E(r) ≤ C` (or no grant at all, and `E(r) = Σ c(r) ≤
//! E(r−1)`). Shards do not begin a round at the same instant: at any moment some are in
//! round `r` (set A) and some already in `r + 1` (set B). For `j ∈ B`,
//! `e_j(r+1) ≤ c_j + (C − c_j − (E(r) − e_j(r)))/N` with `c_j ≤ e_j(r)`, so the node holds
//! at most `Σ_A e(r) + Σ_B e(r+1) ≤ E(r) + |B|(C − E(r))/N ≤ C`. A missing, late or lost
//! report only replaces a true ceiling by the larger `max_sessions_shard`, which shrinks
//! grants: the cap holds with any delay or loss, and only utilisation suffers. A property
//! test in `shard/tests/conn_admission.rs` checks the bound with random schedules, delays
//! and losses.
//!
//! **The node view.** The same reports give the connection manager its view of the node
//! ([`NodeView`]): the latest round for which this shard holds every shard's report, its own
//! included. Every shard builds that view from the same numbers, so every shard takes the
//! same trim decision in the same round (see `manager/watermarks.rs`).
//!
//! **Utilisation.** With fresh reports, a node filling from empty reaches the cap
//! geometrically (each round, grants total about half the headroom), stalling within about
//! `2N` sessions of it by rounding; sessions closed during a round are granted again from the
//! next.
#![forbid(unsafe_code)]

use std::time::Duration;

use super::super::time::{Timestamp, nanos};

/// One shard's count, published at the start of each round to every other shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LoadReport {
    /// The publishing shard.
    pub shard: u16,
    /// The round it began (`⌊now / exchange_interval⌋`).
    pub round: u64,
    /// Sessions it held when it began the round (pending handshakes included).
    pub sessions: u32,
    /// The most sessions it can hold before its next round: `sessions + grant`.
    pub ceiling: u32,
}

/// What a shard knows of the whole node's load, for the connection manager's watermarks.
///
/// `complete`: the counts are every shard's report for round `round` (own included), the
/// same numbers every other shard sees for that round. Otherwise (a report missing) they are
/// each peer's latest report and this shard's latest, a best effort.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct NodeView {
    /// The round the counts are from.
    pub round: u64,
    /// When that round began (on the shared session clock).
    pub at: Timestamp,
    /// This shard's sessions then.
    pub own: usize,
    /// The other shards' sessions then.
    pub peers: usize,
    /// Whether the counts are all from `round`.
    pub complete: bool,
}

impl NodeView {
    /// A view from explicit counts (for hosts that count differently, and tests).
    #[must_use]
    pub fn new(round: u64, at: Timestamp, own: usize, peers: usize, complete: bool) -> Self {
        NodeView {
            round,
            at,
            own,
            peers,
            complete,
        }
    }
}

/// Counters of the count exchange.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStats {
    /// The current round.
    pub round: u64,
    /// The most sessions this shard may hold in the current round.
    pub ceiling: usize,
    /// Sessions the other shards hold, by their latest reports.
    pub peer_sessions: usize,
    /// Rounds begun.
    pub rounds: u64,
    /// Rounds begun without every peer's report for the round before (those peers were
    /// assumed full): a sign of a lagging shard or a lossy control lane.
    pub rounds_incomplete: u64,
    /// Reports accepted.
    pub reports: u64,
    /// Reports ignored: from no other shard of this node, or not newer than the one held.
    pub reports_ignored: u64,
}

#[derive(Debug)]
pub(crate) struct NodeLoad {
    shard: u16,
    shards: u16,
    node_cap: usize,
    shard_cap: usize,
    interval_ns: u64,
    round: u64,
    ceiling: usize,
    /// The first round's report, until polled.
    first: Option<LoadReport>,
    /// Per shard, its reports for an even and an odd round (the own shard's entry holds this
    /// shard's own reports).
    peers: Vec<[Option<LoadReport>; 2]>,
    stats: NodeStats,
}

impl NodeLoad {
    /// Shard `shard` of `shards` (both already validated), holding no session at `now`.
    pub fn new(
        shard: u16,
        shards: u16,
        node_cap: usize,
        shard_cap: usize,
        interval: Duration,
        now: Timestamp,
    ) -> Self {
        let n = usize::from(shards.max(1));
        let interval_ns = nanos(interval).max(1);
        let round = now.as_nanos() / interval_ns;
        let share = node_cap / n + usize::from(usize::from(shard) < node_cap % n);
        let ceiling = share.min(shard_cap);
        let first = report(shard, round, 0, ceiling);
        let mut peers = vec![[None, None]; n];
        peers[usize::from(shard)][(round % 2) as usize] = Some(first);
        NodeLoad {
            shard,
            shards,
            node_cap,
            shard_cap,
            interval_ns,
            round,
            ceiling,
            first: Some(first),
            peers,
            stats: NodeStats {
                rounds: 1,
                ..NodeStats::default()
            },
        }
    }

    /// The report to publish, if a round began: the first round's report on the first call,
    /// then one for each new round `now` has reached. `sessions`: held now.
    pub fn poll(&mut self, now: Timestamp, sessions: usize) -> Option<LoadReport> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        let r = now.as_nanos() / self.interval_ns;
        if r <= self.round {
            return None;
        }
        self.round = r;
        self.stats.rounds += 1;
        let mut upper = sessions;
        let mut complete = true;
        for j in 0..self.shards {
            if j == self.shard {
                continue;
            }
            let ceiling = match self.report_for(j, r - 1) {
                Some(rep) => rep.ceiling as usize,
                None => {
                    complete = false;
                    self.shard_cap
                }
            };
            upper = upper.saturating_add(ceiling);
        }
        if !complete {
            self.stats.rounds_incomplete += 1;
        }
        let n = usize::from(self.shards.max(1));
        let grant =
            (self.node_cap.saturating_sub(upper) / n).min(self.shard_cap.saturating_sub(sessions));
        self.ceiling = sessions + grant;
        let own = report(self.shard, r, sessions, self.ceiling);
        self.peers[usize::from(self.shard)][(r % 2) as usize] = Some(own);
        Some(own)
    }

    /// When the next round begins (`Timestamp::ZERO` while the first report is unpolled).
    pub fn next_round(&self) -> Timestamp {
        if self.first.is_some() {
            return Timestamp::ZERO;
        }
        Timestamp(
            self.round
                .saturating_add(1)
                .saturating_mul(self.interval_ns),
        )
    }

    /// Whether a shard holding `sessions` may take one more in this round.
    pub fn has_room(&self, sessions: usize) -> bool {
        sessions < self.ceiling
    }

    /// A report from another shard.
    pub fn on_report(&mut self, rep: LoadReport) {
        if rep.shard >= self.shards || rep.shard == self.shard {
            self.stats.reports_ignored += 1;
            return;
        }
        let slot = &mut self.peers[usize::from(rep.shard)][(rep.round % 2) as usize];
        if slot.is_some_and(|held| held.round >= rep.round) {
            self.stats.reports_ignored += 1;
            return;
        }
        *slot = Some(rep);
        self.stats.reports += 1;
    }

    /// Sessions the other shards hold, by the latest report of each (0 if none yet).
    pub fn peer_sessions(&self) -> usize {
        self.latest_sessions().sum::<usize>()
            - self.latest(self.shard).map_or(0, |r| r.sessions as usize)
    }

    /// The node view: the latest round with every shard's report, else the latest of each.
    pub fn view(&self) -> NodeView {
        for r in [self.round, self.round.wrapping_sub(1)] {
            if r > self.round {
                continue; // round 0 has no predecessor
            }
            let reports: Option<Vec<LoadReport>> =
                (0..self.shards).map(|j| self.report_for(j, r)).collect();
            if let Some(reports) = reports {
                let own = reports[usize::from(self.shard)].sessions as usize;
                let all: usize = reports.iter().map(|rep| rep.sessions as usize).sum();
                return NodeView::new(r, self.round_start(r), own, all - own, true);
            }
        }
        let own = self.latest(self.shard).map_or(0, |r| r.sessions as usize);
        NodeView::new(
            self.round,
            self.round_start(self.round),
            own,
            self.peer_sessions(),
            false,
        )
    }

    fn round_start(&self, round: u64) -> Timestamp {
        Timestamp(round.saturating_mul(self.interval_ns))
    }

    fn latest(&self, shard: u16) -> Option<LoadReport> {
        self.peers[usize::from(shard)]
            .iter()
            .flatten()
            .max_by_key(|rep| rep.round)
            .copied()
    }

    fn latest_sessions(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.shards).map(|j| self.latest(j).map_or(0, |r| r.sessions as usize))
    }

    pub fn stats(&self) -> NodeStats {
        NodeStats {
            round: self.round,
            ceiling: self.ceiling,
            peer_sessions: self.peer_sessions(),
            ..self.stats
        }
    }

    fn report_for(&self, shard: u16, round: u64) -> Option<LoadReport> {
        self.peers[usize::from(shard)][(round % 2) as usize].filter(|rep| rep.round == round)
    }
}

/// Counts fit in `u32`: validation caps `max_sessions_shard` at `u32::MAX`.
fn report(shard: u16, round: u64, sessions: usize, ceiling: usize) -> LoadReport {
    LoadReport {
        shard,
        round,
        sessions: u32::try_from(sessions).unwrap_or(u32::MAX),
        ceiling: u32::try_from(ceiling).unwrap_or(u32::MAX),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    const IV: Duration = Duration::from_millis(100);

    fn at(round: u64) -> Timestamp {
        Timestamp::from_millis(round * 100)
    }

    #[test]
    fn first_round_is_the_static_share_then_headroom_is_split() {
        // Cap 10 over 3 shards: static shares 4, 3, 3.
        let mut s: Vec<NodeLoad> = (0..3)
            .map(|i| NodeLoad::new(i, 3, 10, 8, IV, at(0)))
            .collect();
        let first: Vec<_> = s.iter_mut().map(|n| n.poll(at(0), 0).unwrap()).collect();
        assert_eq!(
            first.iter().map(|r| r.ceiling).collect::<Vec<_>>(),
            [4, 3, 3]
        );
        assert_eq!(s[0].poll(at(0), 0), None, "one report per round");
        // Shard 0 may hold 4; everyone hears everyone's first report.
        assert!(s[0].has_room(3));
        assert!(!s[0].has_room(4));
        for n in &mut s {
            for r in &first {
                n.on_report(*r);
            }
        }
        // Round 1: shard 0 holds 4 and U = 4 + 3 + 3 = 10: no headroom left for it.
        let r0 = s[0].poll(at(1), 4).unwrap();
        assert_eq!((r0.sessions, r0.ceiling), (4, 4));
        // Shard 1: U = 0 + 4 + 3 = 7, headroom 3, a third of it.
        let r1 = s[1].poll(at(1), 0).unwrap();
        assert_eq!(r1.ceiling, 1);
        assert!(s[1].has_room(0));
        assert!(!s[1].has_room(1));
        assert_eq!(s[1].next_round(), at(2));
        assert_eq!(
            s[1].stats().peer_sessions,
            0,
            "first reports said 0 sessions"
        );
    }

    #[test]
    fn a_missing_report_counts_its_shard_as_full() {
        let mut a = NodeLoad::new(0, 2, 10, 8, IV, at(0));
        let mut b = NodeLoad::new(1, 2, 10, 8, IV, at(0));
        let ra = a.poll(at(0), 0).unwrap();
        let _lost = b.poll(at(0), 0).unwrap();
        b.on_report(ra);
        // a never heard from b: U = 0 + 8, grant (10 - 8) / 2 = 1.
        assert_eq!(a.poll(at(1), 0).unwrap().ceiling, 1);
        assert_eq!(a.stats().rounds_incomplete, 1);
        // b heard a's round 0 (ceiling 5): U = 0 + 5, grant 2.
        assert_eq!(b.poll(at(1), 0).unwrap().ceiling, 2);
        // Skipping to round 3: a needs b's round-2 report, which it lacks.
        assert_eq!(a.poll(at(3), 0).unwrap().ceiling, 1);
    }

    #[test]
    fn the_view_is_the_latest_round_every_shard_reported() {
        let mut a = NodeLoad::new(0, 3, 100, 50, IV, at(0));
        let mut b = NodeLoad::new(1, 3, 100, 50, IV, at(0));
        let mut c = NodeLoad::new(2, 3, 100, 50, IV, at(0));
        let r0 = [
            a.poll(at(0), 0).unwrap(),
            b.poll(at(0), 0).unwrap(),
            c.poll(at(0), 0).unwrap(),
        ];
        let v = a.view();
        assert!(!v.complete, "nothing heard yet");
        for r in r0 {
            a.on_report(r);
        }
        let v = a.view();
        assert!(v.complete);
        assert_eq!((v.round, v.own, v.peers), (0, 0, 0));
        // Round 1: a and b report; c's report is late. The view stays at round 0.
        let ra = a.poll(at(1), 7).unwrap();
        let rb = b.poll(at(1), 5).unwrap();
        a.on_report(rb);
        assert_eq!(a.view().round, 0);
        let rc = c.poll(at(1), 3).unwrap();
        a.on_report(rc);
        let v = a.view();
        assert_eq!(
            (v.round, v.at, v.own, v.peers, v.complete),
            (1, at(1), 7, 8, true)
        );
        // Far behind (round 5 without anything since round 1): the latest of each.
        let _ = a.poll(at(5), 9).unwrap();
        let v = a.view();
        assert_eq!((v.round, v.own, v.peers, v.complete), (5, 9, 8, false));
        let _ = ra;
    }

    #[test]
    fn bad_and_stale_reports_are_ignored() {
        let mut a = NodeLoad::new(0, 2, 10, 8, IV, at(0));
        let rep = |shard, round| LoadReport {
            shard,
            round,
            sessions: 1,
            ceiling: 2,
        };
        a.on_report(rep(0, 1)); // from itself
        a.on_report(rep(2, 1)); // no such shard
        a.on_report(rep(1, 3));
        a.on_report(rep(1, 3)); // duplicate
        a.on_report(rep(1, 1)); // older than round 3, same slot
        a.on_report(rep(1, 2));
        let st = a.stats();
        assert_eq!((st.reports, st.reports_ignored), (2, 4));
        assert_eq!(st.peer_sessions, 1);
    }
}
