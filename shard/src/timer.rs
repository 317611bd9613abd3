//! Sorted deadlines for one shard: the timer facility behind keepalives and idle timeouts.
//!
//! Sans-IO: it reads no clock. The shard loop asks [`Timers::next_deadline`] for the earliest
//! live deadline and passes it to its wait, then calls [`Timers::expire`] with the current time.
//!
//! A binary heap ordered by `(deadline, id)` holds every scheduled timer; cancelling removes the
//! id from the `live` map and leaves a tombstone in the heap that is discarded when it reaches the
//! top. Tombstones are bounded: once they outnumber both the live timers and
//! [`PURGE_FLOOR`], the heap is rebuilt from the live entries. A rebuild costs
//! O(live + tombstones) and follows more than `live` cancels since the previous one, so
//! cancelling stays amortised O(1) whatever the churn, and a timer that stays live for hours
//! cannot make the heap grow with every cancel made meanwhile.
//!
//! Invariants: every id in `live` has exactly one heap entry; after every call the heap holds
//! at most `live + max(live, PURGE_FLOOR)` entries. Timers with equal deadlines fire in the
//! order they were scheduled (ids grow monotonically).
#![forbid(unsafe_code)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::id_hash::IdMap;

/// Names one scheduled timer; returned by [`Timers::schedule`] and used to cancel it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(u64);

/// Why a timer could not be scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimerError {
    /// The shard already holds its configured maximum of live timers.
    #[error("timer table full ({capacity} live timers)")]
    Full {
        /// The configured maximum.
        capacity: usize,
    },
}

/// Tombstones tolerated whatever the live count: below this a rebuild would cost more than the
/// entries it frees.
pub const PURGE_FLOOR: usize = 64;

/// A bounded set of deadlines, each carrying an application token.
#[derive(Debug)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, TimerId)>>,
    /// Keyed by the set's own counter, never chosen by a peer: hashed with one multiply
    /// ([`crate::id_hash`]), so a lookup on every loop turn ([`Timers::next_deadline`]) and
    /// every schedule, cancel and expiry costs no SipHash round (D82).
    live: IdMap<TimerId, u64>,
    next_id: u64,
    capacity: usize,
}

impl Timers {
    /// A timer set that holds at most `capacity` live timers.
    pub fn new(capacity: usize) -> Self {
        Self {
            heap: BinaryHeap::new(),
            live: IdMap::default(),
            next_id: 0,
            capacity,
        }
    }

    /// Schedules `token` to fire at `deadline`.
    pub fn schedule(&mut self, deadline: Instant, token: u64) -> Result<TimerId, TimerError> {
        if self.live.len() >= self.capacity {
            return Err(TimerError::Full {
                capacity: self.capacity,
            });
        }
        let id = TimerId(self.next_id);
        self.next_id += 1;
        self.live.insert(id, token);
        self.heap.push(Reverse((deadline, id)));
        Ok(id)
    }

    /// Cancels a timer; returns its token if it was still live.
    pub fn cancel(&mut self, id: TimerId) -> Option<u64> {
        let token = self.live.remove(&id);
        self.purge_tombstones();
        token
    }

    /// Heap entries, tombstones included (for tests and diagnostics).
    pub fn heap_len(&self) -> usize {
        self.heap.len()
    }

    /// Rebuilds the heap from the live entries once tombstones outnumber both the live timers
    /// and [`PURGE_FLOOR`] (the bound in the module docs).
    fn purge_tombstones(&mut self) {
        let tombstones = self.heap.len() - self.live.len();
        if tombstones <= self.live.len().max(PURGE_FLOOR) {
            return;
        }
        if self.live.is_empty() {
            self.heap.clear();
        } else {
            let live = &self.live;
            self.heap.retain(|Reverse((_, id))| live.contains_key(id));
        }
    }

    /// Number of live timers.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether no timer is live.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// The earliest live deadline, discarding tombstones on the way.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((deadline, id))) = self.heap.peek() {
            if self.live.contains_key(id) {
                return Some(*deadline);
            }
            self.heap.pop();
        }
        None
    }

    /// Removes every live timer whose deadline is at or before `now`, appending
    /// `(id, token)` to `fired` in deadline order. Returns how many fired.
    pub fn expire(&mut self, now: Instant, fired: &mut Vec<(TimerId, u64)>) -> usize {
        let before = fired.len();
        while let Some(Reverse((deadline, id))) = self.heap.peek() {
            if *deadline > now {
                break;
            }
            let id = *id;
            self.heap.pop();
            if let Some(token) = self.live.remove(&id) {
                fired.push((id, token));
            }
        }
        // Fewer live timers may leave the tombstones above their bound.
        self.purge_tombstones();
        fired.len() - before
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fires_in_deadline_order_and_only_when_due() {
        let t0 = Instant::now();
        let mut timers = Timers::new(16);
        let late = timers.schedule(t0 + Duration::from_millis(30), 3).unwrap();
        timers.schedule(t0 + Duration::from_millis(10), 1).unwrap();
        timers.schedule(t0 + Duration::from_millis(20), 2).unwrap();
        assert_eq!(timers.next_deadline(), Some(t0 + Duration::from_millis(10)));
        let mut fired = Vec::new();
        assert_eq!(timers.expire(t0 + Duration::from_millis(5), &mut fired), 0);
        assert_eq!(timers.expire(t0 + Duration::from_millis(20), &mut fired), 2);
        assert_eq!(fired.iter().map(|f| f.1).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(timers.cancel(late), Some(3));
        assert_eq!(timers.next_deadline(), None);
        assert!(timers.is_empty());
    }

    #[test]
    fn cancelled_timer_never_fires_and_capacity_is_enforced() {
        let t0 = Instant::now();
        let mut timers = Timers::new(2);
        let a = timers.schedule(t0, 1).unwrap();
        timers.schedule(t0 + Duration::from_secs(1), 2).unwrap();
        assert_eq!(
            timers.schedule(t0, 9),
            Err(TimerError::Full { capacity: 2 })
        );
        timers.cancel(a);
        assert_eq!(timers.cancel(a), None);
        let mut fired = Vec::new();
        timers.expire(t0 + Duration::from_secs(2), &mut fired);
        assert_eq!(fired.iter().map(|f| f.1).collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn tombstones_stay_bounded_while_a_timer_stays_live() {
        let t0 = Instant::now();
        let mut timers = Timers::new(16);
        let long = timers.schedule(t0 + Duration::from_secs(3600), 0).unwrap();
        let mut fired = Vec::new();
        for i in 1..=100_000u64 {
            let id = timers
                .schedule(t0 + Duration::from_millis(i % 1000), i)
                .unwrap();
            assert_eq!(timers.cancel(id), Some(i));
            assert!(
                timers.heap_len() <= timers.len() + timers.len().max(PURGE_FLOOR),
                "heap {} with {} live",
                timers.heap_len(),
                timers.len()
            );
        }
        // Churn among many live timers, some expiring meanwhile: the bound holds throughout.
        let mut kept = Vec::new();
        for i in 0..5000u64 {
            let id = timers
                .schedule(t0 + Duration::from_millis(i), i)
                .unwrap_or_else(|_| {
                    // Full: cancel the oldest kept timer and retry.
                    let old = kept.remove(0);
                    timers.cancel(old);
                    timers.schedule(t0 + Duration::from_millis(i), i).unwrap()
                });
            if i % 3 == 0 {
                timers.cancel(id);
            } else {
                kept.push(id);
            }
            if i % 7 == 0 {
                timers.expire(t0 + Duration::from_millis(i / 2), &mut fired);
                kept.retain(|k| !fired.iter().any(|f| f.0 == *k));
            }
            assert!(timers.heap_len() <= timers.len() + timers.len().max(PURGE_FLOOR));
        }
        // Only the long timer and the survivors fire, each once, and the long one last.
        fired.clear();
        let live = timers.len();
        assert_eq!(
            timers.expire(t0 + Duration::from_secs(7200), &mut fired),
            live
        );
        assert_eq!(fired.last().map(|f| f.0), Some(long));
        assert!(timers.is_empty());
        assert_eq!(timers.heap_len(), 0);
    }

    #[test]
    fn equal_deadlines_fire_in_schedule_order() {
        let t0 = Instant::now();
        let mut timers = Timers::new(8);
        for token in 0..5 {
            timers.schedule(t0, token).unwrap();
        }
        let mut fired = Vec::new();
        timers.expire(t0, &mut fired);
        assert_eq!(
            fired.iter().map(|f| f.1).collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4]
        );
    }
}
