//! The per-prefix table: how many sessions each source prefix holds on this shard, and its
//! new-session token bucket. Bounded, whatever the number of distinct prefixes that knock.
//!
//! ```text
//!  index: HashMap<Prefix, slot>          slots: Vec<Slot> (allocated once, never grows)
//!                                         ┌──────────┬──────────┬──────────┬─────
//!                                         │ held (3) │ idle     │ free     │ ...
//!                                         └──────────┴────┬─────┴──────────┴─────
//!  idle list (oldest first): head ──► slot 1 ──► ... ◄── tail
//! ```
//!
//! Invariants:
//! 1. An entry exists only while it carries information: it holds sessions (`held`), or it
//!    holds none but its bucket is not yet full (`idle`). An idle entry whose bucket is full
//!    says exactly what no entry says, so it may be deleted at any time.
//! 2. Every idle entry is on the idle list exactly once, in the order it became idle; held
//!    entries are on no list.
//! 3. `index.len() <= capacity`, and both `index` and `slots` are allocated at construction:
//!    no insertion ever reallocates. `slots` holds `capacity` entries; `index` is sized for
//!    `2 × capacity + 2` because the `HashMap` may run out of room to tombstones left by
//!    deletions, and it then rehashes in place when at most half full but grows (moving every
//!    entry, inside one loop turn) when fuller. At most half full, it never grows.
//!
//! Admission refuses before the table when the shard already holds `max_sessions_shard`
//! sessions, and the configuration requires `capacity >= max_sessions_shard`, so when a new
//! prefix needs an entry there are fewer than `capacity` held entries: a free slot or an idle
//! entry always exists. A full table evicts the *oldest* idle entry: the one whose bucket has
//! had the longest to refill, full already unless the whole idle list is younger than one
//! bucket fill time. Evicting a non-full bucket forgets takes that prefix made: it gets its
//! burst back early. Eviction is therefore only ever lenient (it never refuses anyone), and it
//! is counted (`rate_resets`). To force one, an attacker must open and close sessions from more
//! distinct prefixes within one fill time than the table has free room: it then already holds
//! more fresh buckets than the one it resets.
#![forbid(unsafe_code)]

use std::collections::HashMap;

use super::super::time::Timestamp;
use super::bucket::{RateLimit, TokenBucket};
use super::prefix::Prefix;

const NIL: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Slot {
    prefix: Prefix,
    /// Sessions (pending handshakes included) this prefix holds on this shard.
    sessions: u32,
    bucket: TokenBucket,
    /// Idle list links (NIL when not on the list); the next free slot while free.
    prev: u32,
    next: u32,
}

/// What the table knows of one prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PrefixState {
    pub sessions: u32,
    pub bucket: TokenBucket,
}

/// Counters of the table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrefixTableStats {
    /// Entries now (held and idle).
    pub entries: usize,
    /// Entries that hold sessions now.
    pub held: usize,
    /// The most entries ever held at once.
    pub peak_entries: usize,
    /// Bytes allocated for the table at construction (its maps never grow).
    pub allocated_bytes: usize,
    /// Idle entries deleted because their bucket had refilled (no information lost).
    pub expired: u64,
    /// Idle entries evicted before their bucket had refilled, to make room: each gave one
    /// prefix its burst back early.
    pub rate_resets: u64,
    /// A release for a prefix the table did not hold (a host accounting error; ignored).
    pub unknown_releases: u64,
}

#[derive(Debug)]
pub(crate) struct PrefixTable {
    capacity: usize,
    index: HashMap<Prefix, u32>,
    /// `index.capacity()` at construction. It reads lower while deletions leave tombstones,
    /// and higher only if the map was resized (which invariant 3 rules out).
    index_room: usize,
    slots: Vec<Slot>,
    /// Head of the free-slot chain (through `next`).
    free: u32,
    idle_head: u32,
    idle_tail: u32,
    stats: PrefixTableStats,
}

impl PrefixTable {
    /// A table of at most `capacity` entries (at least 1, at most `u32::MAX - 1`).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, (NIL - 1) as usize);
        let index = HashMap::with_capacity(2 * capacity + 2);
        PrefixTable {
            capacity,
            index_room: index.capacity(),
            index,
            slots: Vec::with_capacity(capacity),
            free: NIL,
            idle_head: NIL,
            idle_tail: NIL,
            stats: PrefixTableStats::default(),
        }
    }

    pub fn get(&self, prefix: &Prefix) -> Option<PrefixState> {
        self.index.get(prefix).map(|&i| {
            let s = &self.slots[i as usize];
            PrefixState {
                sessions: s.sessions,
                bucket: s.bucket,
            }
        })
    }

    /// Records one more session for `prefix` and takes one of its tokens. The caller has
    /// checked the prefix's cap and bucket with [`PrefixTable::get`] (a prefix with no entry
    /// has a full bucket). `false`: no entry could be made (only possible when `capacity`
    /// entries all hold sessions).
    pub fn admit(&mut self, now: Timestamp, prefix: Prefix, rate: RateLimit) -> bool {
        let i = match self.index.get(&prefix) {
            Some(&i) => {
                if self.slots[i as usize].sessions == 0 {
                    self.unlink_idle(i);
                }
                i
            }
            None => {
                let Some(i) = self.new_slot(now, prefix) else {
                    return false;
                };
                i
            }
        };
        let s = &mut self.slots[i as usize];
        if s.sessions == 0 {
            self.stats.held += 1;
        }
        s.sessions = s.sessions.saturating_add(1);
        let _conforming = s.bucket.take(now, rate);
        true
    }

    /// One session of `prefix` ended.
    pub fn release(&mut self, now: Timestamp, prefix: &Prefix) {
        let Some(&i) = self.index.get(prefix) else {
            self.stats.unknown_releases += 1;
            return;
        };
        let s = &mut self.slots[i as usize];
        if s.sessions == 0 {
            self.stats.unknown_releases += 1;
            return;
        }
        s.sessions -= 1;
        if s.sessions > 0 {
            return;
        }
        self.stats.held -= 1;
        if s.bucket.is_full(now) {
            self.stats.expired += 1;
            self.delete(i);
        } else {
            self.push_idle(i);
        }
    }

    /// Deletes up to `max` idle entries from the head of the idle list whose buckets have
    /// refilled; stops at the first that has not. Bounded work; keeps `entries` honest.
    pub fn sweep(&mut self, now: Timestamp, max: usize) {
        for _ in 0..max {
            let i = self.idle_head;
            if i == NIL || !self.slots[i as usize].bucket.is_full(now) {
                return;
            }
            self.unlink_idle(i);
            self.stats.expired += 1;
            self.delete(i);
        }
    }

    pub fn stats(&self) -> PrefixTableStats {
        PrefixTableStats {
            entries: self.index.len(),
            allocated_bytes: self.allocated_bytes(),
            ..self.stats
        }
    }

    /// The maps' allocations: slots, and the index's buckets (a key, a value and one control
    /// byte each; its room is 7/8 of its buckets).
    fn allocated_bytes(&self) -> usize {
        let bucket = std::mem::size_of::<(Prefix, u32)>() + 1;
        let room = self.index_room.max(self.index.capacity());
        self.slots.capacity() * std::mem::size_of::<Slot>() + (room * 8).div_ceil(7) * bucket
    }

    fn new_slot(&mut self, now: Timestamp, prefix: Prefix) -> Option<u32> {
        if self.index.len() >= self.capacity {
            let victim = self.idle_head;
            if victim == NIL {
                return None;
            }
            self.unlink_idle(victim);
            if self.slots[victim as usize].bucket.is_full(now) {
                self.stats.expired += 1;
            } else {
                self.stats.rate_resets += 1;
            }
            self.delete(victim);
        }
        let slot = Slot {
            prefix,
            sessions: 0,
            bucket: TokenBucket::default(),
            prev: NIL,
            next: NIL,
        };
        let i = if self.free != NIL {
            let i = self.free;
            self.free = self.slots[i as usize].next;
            self.slots[i as usize] = slot;
            i
        } else {
            // `index.len() < capacity` and no free slot: fewer than `capacity` slots exist.
            self.slots.push(slot);
            (self.slots.len() - 1) as u32
        };
        self.index.insert(prefix, i);
        self.stats.peak_entries = self.stats.peak_entries.max(self.index.len());
        Some(i)
    }

    /// Removes a slot that is on no list from the index and puts it on the free chain.
    fn delete(&mut self, i: u32) {
        let prefix = self.slots[i as usize].prefix;
        self.index.remove(&prefix);
        self.slots[i as usize].next = self.free;
        self.free = i;
    }

    fn push_idle(&mut self, i: u32) {
        let tail = self.idle_tail;
        {
            let s = &mut self.slots[i as usize];
            s.prev = tail;
            s.next = NIL;
        }
        if tail == NIL {
            self.idle_head = i;
        } else {
            self.slots[tail as usize].next = i;
        }
        self.idle_tail = i;
    }

    fn unlink_idle(&mut self, i: u32) {
        let (prev, next) = {
            let s = &self.slots[i as usize];
            (s.prev, s.next)
        };
        if prev == NIL {
            self.idle_head = next;
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NIL {
            self.idle_tail = prev;
        } else {
            self.slots[next as usize].prev = prev;
        }
        let s = &mut self.slots[i as usize];
        s.prev = NIL;
        s.next = NIL;
    }

    /// Checks invariants 1-3 (tests only: walks everything).
    #[cfg(test)]
    fn check(&self) {
        let mut idle = 0;
        let mut i = self.idle_head;
        let mut prev = NIL;
        while i != NIL {
            let s = &self.slots[i as usize];
            assert_eq!(s.sessions, 0);
            assert_eq!(s.prev, prev);
            assert_eq!(self.index.get(&s.prefix), Some(&i));
            idle += 1;
            prev = i;
            i = s.next;
        }
        assert_eq!(self.idle_tail, prev);
        let held = self
            .index
            .values()
            .filter(|&&i| self.slots[i as usize].sessions > 0)
            .count();
        assert_eq!(held, self.stats.held);
        assert_eq!(held + idle, self.index.len());
        assert!(self.index.len() <= self.capacity);
        assert!(self.slots.len() <= self.capacity);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use proptest::prelude::*;

    use super::super::prefix::PrefixLengths;
    use super::*;

    fn pfx(n: u32) -> Prefix {
        Prefix::of(IpAddr::V4(Ipv4Addr::from(n)), PrefixLengths::default())
    }

    const RATE: RateLimit = RateLimit::per_second(20, 5);

    #[test]
    fn counts_sessions_and_forgets_a_prefix_once_its_bucket_refills() {
        let mut t = PrefixTable::new(8);
        let t0 = Timestamp::from_secs(1);
        assert!(t.admit(t0, pfx(1), RATE));
        assert!(t.admit(t0, pfx(1), RATE));
        let st = t.get(&pfx(1)).unwrap();
        assert_eq!(st.sessions, 2);
        assert_eq!(st.bucket.tokens(t0, RATE), 3);
        t.release(t0, &pfx(1));
        t.release(t0, &pfx(1));
        t.check();
        // Idle, bucket not full yet: still known (its takes still count).
        assert_eq!(t.get(&pfx(1)).unwrap().sessions, 0);
        t.sweep(t0, 10);
        assert!(t.get(&pfx(1)).is_some());
        // After the fill time it carries no information and goes.
        let later = t0.saturating_add(RATE.fill_time());
        t.sweep(later, 10);
        assert!(t.get(&pfx(1)).is_none());
        assert_eq!(t.stats().expired, 1);
        // A release after refill deletes at once.
        assert!(t.admit(later, pfx(2), RATE));
        t.release(later.saturating_add(RATE.fill_time()), &pfx(2));
        assert_eq!(t.stats().entries, 0);
        t.check();
    }

    #[test]
    fn a_full_table_evicts_the_oldest_idle_entry_and_counts_a_reset() {
        let mut t = PrefixTable::new(3);
        let t0 = Timestamp::from_secs(1);
        for n in 0..3 {
            assert!(t.admit(t0, pfx(n), RATE));
        }
        // Prefix 0 and 1 go idle (in that order) with non-full buckets.
        t.release(t0, &pfx(0));
        t.release(t0, &pfx(1));
        assert!(t.admit(t0, pfx(9), RATE));
        assert!(t.get(&pfx(0)).is_none(), "oldest idle evicted");
        assert!(t.get(&pfx(1)).is_some());
        assert_eq!(t.stats().rate_resets, 1);
        t.check();
        // All three hold sessions: nothing to evict, the table says no.
        assert!(t.admit(t0, pfx(1), RATE));
        assert!(!t.admit(t0, pfx(10), RATE));
        assert_eq!(t.stats().entries, 3);
        t.check();
    }

    #[test]
    fn unknown_releases_are_counted_and_ignored() {
        let mut t = PrefixTable::new(2);
        t.release(Timestamp::ZERO, &pfx(5));
        assert!(t.admit(Timestamp::ZERO, pfx(5), RATE));
        t.release(Timestamp::ZERO, &pfx(5));
        t.release(Timestamp::ZERO, &pfx(5));
        assert_eq!(t.stats().unknown_releases, 2);
        t.check();
    }

    #[derive(Clone, Debug)]
    enum Op {
        Admit(u8),
        Release(u8),
        Sweep,
        Wait(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => any::<u8>().prop_map(Op::Admit),
            3 => any::<u8>().prop_map(Op::Release),
            1 => Just(Op::Sweep),
            1 => any::<u16>().prop_map(Op::Wait),
        ]
    }

    proptest! {
        /// Against a model: session counts are exact, the table never exceeds its capacity
        /// or reallocates, and a prefix that holds sessions is never evicted.
        #[test]
        fn matches_a_model_and_stays_bounded(ops in proptest::collection::vec(op(), 1..400)) {
            let cap = 16;
            let mut t = PrefixTable::new(cap);
            let alloc = t.stats().allocated_bytes;
            let mut model: HashMap<u8, u32> = HashMap::new();
            let mut now = Timestamp::from_secs(10);
            for op in ops {
                match op {
                    Op::Admit(p) => {
                        let held = model.values().filter(|&&n| n > 0).count();
                        let known = model.get(&p).copied().unwrap_or(0) > 0;
                        let ok = t.admit(now, pfx(u32::from(p)), RATE);
                        // Refused only when every entry holds sessions and this prefix has none.
                        prop_assert_eq!(ok, known || held < cap);
                        if ok {
                            *model.entry(p).or_default() += 1;
                        }
                    }
                    Op::Release(p) => {
                        t.release(now, &pfx(u32::from(p)));
                        if let Some(n) = model.get_mut(&p) {
                            *n = n.saturating_sub(1);
                        }
                    }
                    Op::Sweep => t.sweep(now, 4),
                    Op::Wait(ms) => now = now.saturating_add(std::time::Duration::from_millis(u64::from(ms))),
                }
                t.check();
                for (&p, &n) in &model {
                    let got = t.get(&pfx(u32::from(p))).map_or(0, |s| s.sessions);
                    prop_assert_eq!(got, n);
                }
                prop_assert_eq!(t.stats().allocated_bytes, alloc);
            }
        }
    }
}
