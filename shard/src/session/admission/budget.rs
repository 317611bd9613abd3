//! A shard's memory budget: what its sessions, their queued bytes and its handoff buffers
//! cost, with three thresholds.
//!
//! ```text
//!   0 ───────────── session_limit ──── shed_above ──── limit
//!   │ new sessions admitted │ refused          │ refused, and the largest
//!   │                       │                  │ queues are named to shed
//!   └─ queued and handoff bytes are charged up to `limit`, never past it ─┘
//! ```
//!
//! The host charges memory as it uses it and releases it as it frees it; this type only
//! counts and decides. Invariant: `used() <= limit` at all times, because every charge that
//! would cross `limit` is refused (and counted), and sessions are refused from
//! `session_limit <= limit`. So the accounted memory of a shard is bounded by `limit` bytes,
//! exactly; what the accounting leaves out is listed in `docs/CONFIG.md`.
//!
//! Shedding names sessions by queued bytes, largest first to within a factor of two: queues
//! are kept in 64 classes by `⌊log2 bytes⌋`, so an update and a pick are O(1) however many
//! sessions queue (a sorted index would cost O(log n) per queued message).
#![forbid(unsafe_code)]

use std::collections::hash_map::Entry;

use crate::id_hash::IdMap;

use super::super::conn_id::ConnId;

/// The thresholds of a [`MemoryBudget`], in bytes, and the cost of one session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BudgetConfig {
    /// Hard bound on the accounted memory: a charge that would exceed it is refused.
    /// Default 128 MiB.
    pub limit: usize,
    /// New sessions are refused once one more would take the accounted memory past this.
    /// Default 96 MiB (3/4 of `limit`: the last quarter is kept for existing sessions'
    /// queues).
    pub session_limit: usize,
    /// Above this, [`MemoryBudget::next_shed`] names sessions whose queues to drop, largest
    /// first. Default 112 MiB (7/8 of `limit`).
    pub shed_above: usize,
    /// Bytes one session costs while it exists: its state and its entries in the host's
    /// tables. Default 1024 (an upper estimate: the session state is at most 512 bytes today,
    /// see `SESSION_STATE_SIZE`).
    pub session_cost: usize,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            limit: 128 << 20,
            session_limit: 96 << 20,
            shed_above: 112 << 20,
            session_cost: 1024,
        }
    }
}

impl BudgetConfig {
    /// Whether `session_cost <= session_limit <= shed_above <= limit`.
    #[must_use]
    pub fn is_valid(&self) -> bool {
        self.session_cost >= 1
            && self.session_cost <= self.session_limit
            && self.session_limit <= self.shed_above
            && self.shed_above <= self.limit
    }
}

/// A session whose queue the host must drop now.
#[must_use = "the named queue must be dropped: the budget already counts it as freed"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shed {
    /// The session.
    pub conn: ConnId,
    /// The bytes it had queued (now released from the budget).
    pub bytes: usize,
}

/// Counters of the budget.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BudgetStats {
    /// Accounted bytes now (sessions + queued + handoff).
    pub used: usize,
    /// The most ever accounted at once (never above `limit`).
    pub peak: usize,
    /// Sessions charged now.
    pub sessions: usize,
    /// Bytes queued now.
    pub queued: usize,
    /// Handoff bytes held now.
    pub handoff: usize,
    /// Queue charges refused because they would have crossed `limit`.
    pub queue_refused: u64,
    /// Handoff charges refused because they would have crossed `limit`.
    pub handoff_refused: u64,
    /// Queues named for shedding.
    pub shed_queues: u64,
    /// Bytes of those queues.
    pub shed_bytes: u64,
    /// Releases of more than was charged (a host accounting error; clamped to zero).
    pub unbalanced: u64,
}

/// One shard's memory accounting. See the module documentation.
#[derive(Debug)]
pub struct MemoryBudget {
    cfg: BudgetConfig,
    sessions: usize,
    queued: usize,
    handoff: usize,
    queues: QueueIndex,
    stats: BudgetStats,
}

impl MemoryBudget {
    /// An empty budget. `cfg` should satisfy [`BudgetConfig::is_valid`] (the admission
    /// config checks it).
    #[must_use]
    pub fn new(cfg: BudgetConfig) -> Self {
        MemoryBudget {
            cfg,
            sessions: 0,
            queued: 0,
            handoff: 0,
            queues: QueueIndex::default(),
            stats: BudgetStats::default(),
        }
    }

    /// The thresholds.
    #[must_use]
    pub fn config(&self) -> &BudgetConfig {
        &self.cfg
    }

    /// Accounted bytes now.
    #[must_use]
    pub fn used(&self) -> usize {
        self.sessions
            .saturating_mul(self.cfg.session_cost)
            .saturating_add(self.queued)
            .saturating_add(self.handoff)
    }

    /// Whether one more session fits under `session_limit`.
    #[must_use]
    pub fn has_room_for_session(&self) -> bool {
        self.used().saturating_add(self.cfg.session_cost) <= self.cfg.session_limit
    }

    /// Charges one session (admission does this when it admits).
    pub(crate) fn charge_session(&mut self) {
        self.sessions += 1;
        self.note_peak();
    }

    /// Releases one session's fixed cost, and whatever it still had queued.
    pub(crate) fn release_session(&mut self, conn: Option<ConnId>) {
        if self.sessions == 0 {
            self.stats.unbalanced += 1;
        } else {
            self.sessions -= 1;
        }
        if let Some(conn) = conn {
            let bytes = self.queues.set(conn, 0);
            self.queued -= bytes;
        }
    }

    /// Charges `bytes` queued for `conn`. `false`: over `limit`, nothing charged (the host
    /// refuses the message, e.g. `SendOutcome::Full`, and counts it).
    pub fn try_queue(&mut self, conn: ConnId, bytes: usize) -> bool {
        if self.used().saturating_add(bytes) > self.cfg.limit {
            self.stats.queue_refused += 1;
            return false;
        }
        self.queues.update(conn, |had| had + bytes);
        self.queued += bytes;
        self.note_peak();
        true
    }

    /// Releases `bytes` of `conn`'s queue (sent, or dropped by the host).
    pub fn dequeued(&mut self, conn: ConnId, bytes: usize) {
        let had = self.queues.update(conn, |had| had - bytes.min(had));
        if bytes > had {
            self.stats.unbalanced += 1;
        }
        self.queued -= bytes.min(had);
    }

    /// Bytes queued for `conn` as accounted.
    #[must_use]
    pub fn queued(&self, conn: ConnId) -> usize {
        self.queues.get(conn)
    }

    /// Charges `bytes` of handoff buffer (a datagram held for, or from, another shard).
    /// `false`: over `limit`, nothing charged (the host drops it, counted).
    pub fn try_handoff(&mut self, bytes: usize) -> bool {
        if self.used().saturating_add(bytes) > self.cfg.limit {
            self.stats.handoff_refused += 1;
            return false;
        }
        self.handoff += bytes;
        self.note_peak();
        true
    }

    /// Releases `bytes` of handoff buffer.
    pub fn handoff_done(&mut self, bytes: usize) {
        if bytes > self.handoff {
            self.stats.unbalanced += 1;
        }
        self.handoff -= bytes.min(self.handoff);
    }

    /// While the accounted memory is above `shed_above`, the session with the largest queue
    /// (to within a factor of two), its bytes already released here: the host drops that
    /// whole queue, counting every message it drops, and reports none of them through
    /// [`MemoryBudget::dequeued`]. `None` once at or below `shed_above` or when nothing is
    /// queued. O(1); call it at most a bounded number of times per loop turn.
    pub fn next_shed(&mut self) -> Option<Shed> {
        if self.used() <= self.cfg.shed_above {
            return None;
        }
        let (conn, bytes) = self.queues.largest()?;
        self.queues.set(conn, 0);
        self.queued -= bytes;
        self.stats.shed_queues += 1;
        self.stats.shed_bytes += bytes as u64;
        Some(Shed { conn, bytes })
    }

    /// Counters and levels now.
    #[must_use]
    pub fn stats(&self) -> BudgetStats {
        BudgetStats {
            used: self.used(),
            sessions: self.sessions,
            queued: self.queued,
            handoff: self.handoff,
            ..self.stats
        }
    }

    fn note_peak(&mut self) {
        self.stats.peak = self.stats.peak.max(self.used());
    }
}

/// Sessions with queued bytes, in classes by `⌊log2 bytes⌋` (class `c` holds 2^c..2^(c+1)).
#[derive(Debug)]
struct QueueIndex {
    /// conn → (bytes, class, position in `classes[class]`). Our own connection IDs: hashed
    /// with one multiply (`crate::id_hash`, D84).
    pos: IdMap<ConnId, (usize, u8, u32)>,
    classes: [Vec<ConnId>; 64],
}

impl Default for QueueIndex {
    fn default() -> Self {
        QueueIndex {
            pos: IdMap::default(),
            classes: std::array::from_fn(|_| Vec::new()),
        }
    }
}

impl QueueIndex {
    fn get(&self, conn: ConnId) -> usize {
        self.pos.get(&conn).map_or(0, |&(b, _, _)| b)
    }

    /// Sets `conn`'s bytes; returns what it had.
    fn set(&mut self, conn: ConnId, bytes: usize) -> usize {
        self.update(conn, |_| bytes)
    }

    /// Sets `conn`'s bytes to `f(what it had)`; returns what it had. One lookup of `conn`
    /// (this runs for every Data message queued and sent), one more to insert it again when
    /// it moves between classes, and one of the session that takes its old place.
    fn update(&mut self, conn: ConnId, f: impl FnOnce(usize) -> usize) -> usize {
        let class_of = |bytes: usize| (bytes > 0).then(|| bytes.ilog2() as u8);
        let (had, bytes) = match self.pos.entry(conn) {
            Entry::Occupied(mut e) => {
                let (had, c, i) = *e.get();
                let bytes = f(had);
                if class_of(bytes) == Some(c) {
                    e.get_mut().0 = bytes;
                    return had;
                }
                e.remove();
                self.unlink(c, i);
                (had, bytes)
            }
            Entry::Vacant(e) => {
                let bytes = f(0);
                if let Some(c) = class_of(bytes) {
                    let list = &mut self.classes[usize::from(c)];
                    list.push(conn);
                    e.insert((bytes, c, (list.len() - 1) as u32));
                }
                return 0;
            }
        };
        if let Some(c) = class_of(bytes) {
            let list = &mut self.classes[usize::from(c)];
            list.push(conn);
            self.pos.insert(conn, (bytes, c, (list.len() - 1) as u32));
        }
        had
    }

    fn unlink(&mut self, class: u8, i: u32) {
        let list = &mut self.classes[usize::from(class)];
        list.swap_remove(i as usize);
        if let Some(&moved) = list.get(i as usize)
            && let Some(p) = self.pos.get_mut(&moved)
        {
            p.2 = i;
        }
    }

    /// A session of the highest non-empty class, and its bytes.
    fn largest(&self) -> Option<(ConnId, usize)> {
        let list = self.classes.iter().rev().find(|l| !l.is_empty())?;
        let conn = *list.last()?;
        Some((conn, self.get(conn)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn cfg(limit: usize) -> BudgetConfig {
        BudgetConfig {
            limit,
            session_limit: limit / 2,
            shed_above: limit * 3 / 4,
            session_cost: 100,
        }
    }

    #[test]
    fn defaults_are_valid() {
        assert!(BudgetConfig::default().is_valid());
        let mut bad = BudgetConfig::default();
        bad.shed_above = bad.limit + 1;
        assert!(!bad.is_valid());
    }

    #[test]
    fn sessions_are_refused_at_session_limit_and_charges_at_limit() {
        let mut b = MemoryBudget::new(cfg(1000));
        for _ in 0..5 {
            assert!(b.has_room_for_session());
            b.charge_session();
        }
        assert!(!b.has_room_for_session(), "500 used, session_limit 500");
        assert!(b.try_queue(ConnId(1), 500));
        assert!(!b.try_queue(ConnId(1), 1), "at limit");
        assert!(!b.try_handoff(1));
        let s = b.stats();
        assert_eq!(
            (s.used, s.peak, s.queue_refused, s.handoff_refused),
            (1000, 1000, 1, 1)
        );
        b.dequeued(ConnId(1), 200);
        assert!(b.try_handoff(200));
        b.handoff_done(200);
        b.release_session(Some(ConnId(1)));
        assert_eq!(b.stats().queued, 0);
        assert_eq!(b.used(), 400);
    }

    #[test]
    fn sheds_the_largest_queues_first_until_below_the_threshold() {
        let mut b = MemoryBudget::new(cfg(10_000));
        assert!(b.try_queue(ConnId(1), 100));
        assert!(b.try_queue(ConnId(2), 5000));
        assert!(b.try_queue(ConnId(3), 900));
        assert!(b.try_queue(ConnId(4), 1500));
        assert_eq!(b.next_shed(), None, "7500 used, shed above 7500");
        assert!(b.try_queue(ConnId(1), 1));
        assert_eq!(
            b.next_shed(),
            Some(Shed {
                conn: ConnId(2),
                bytes: 5000
            })
        );
        assert_eq!(b.next_shed(), None);
        assert_eq!(b.queued(ConnId(2)), 0);
        assert_eq!(b.stats().shed_bytes, 5000);
        // A shed session may queue again.
        assert!(b.try_queue(ConnId(2), 10));
    }

    #[test]
    fn over_releases_are_counted_and_clamped() {
        let mut b = MemoryBudget::new(cfg(1000));
        b.dequeued(ConnId(9), 10);
        b.handoff_done(10);
        b.release_session(None);
        assert_eq!(b.stats().unbalanced, 3);
        assert_eq!(b.used(), 0);
    }

    proptest! {
        /// Against a model: `used` never exceeds `limit`, per-session bytes are exact, and a
        /// shed names a session in the top class.
        #[test]
        fn accounting_matches_a_model(ops in proptest::collection::vec((0u8..4, 0u64..8, 0usize..3000), 1..300)) {
            let mut b = MemoryBudget::new(cfg(20_000));
            let mut model: std::collections::HashMap<ConnId, usize> = std::collections::HashMap::new();
            for (kind, c, n) in ops {
                let conn = ConnId(c);
                match kind {
                    0 => {
                        let fits = b.used() + n <= 20_000;
                        prop_assert_eq!(b.try_queue(conn, n), fits);
                        if fits { *model.entry(conn).or_default() += n; }
                    }
                    1 => {
                        b.dequeued(conn, n);
                        let m = model.entry(conn).or_default();
                        *m -= n.min(*m);
                    }
                    2 => {
                        let top = model.values().copied().max().unwrap_or(0);
                        if let Some(s) = b.next_shed() {
                            prop_assert!(s.bytes > 0 && s.bytes * 2 > top, "{} vs {}", s.bytes, top);
                            prop_assert_eq!(model.insert(s.conn, 0), Some(s.bytes));
                        }
                    }
                    _ => {
                        b.release_session(Some(conn));
                        model.remove(&conn);
                    }
                }
                prop_assert!(b.used() <= 20_000);
                for (&conn, &n) in &model {
                    prop_assert_eq!(b.queued(conn), n);
                }
                prop_assert_eq!(b.stats().queued, model.values().sum::<usize>());
            }
        }
    }
}
