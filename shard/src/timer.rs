//! Sorted deadlines for one shard: the timer facility behind keepalives and idle timeouts.
//!
//! Sans-IO: it reads no clock. The shard loop asks [`Timers::next_deadline`] for the earliest
//! live deadline and passes it to its wait, then calls [`Timers::expire`] with the current time.
//!
//! A binary heap ordered by `(deadline, id)` holds every scheduled timer; cancelling removes the
//! id from the `live` map and leaves a tombstone in the heap that is discarded when it reaches the
//! top. Invariants: every id in `live` has exactly one heap entry; the heap never holds more
//! than `capacity + tombstones` entries and tombstones are purged lazily, so memory stays bounded
//! by the number of timers ever live at once plus those cancelled since the last expiry.
//! Timers with equal deadlines fire in the order they were scheduled (ids grow monotonically).
#![forbid(unsafe_code)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

/// Names one scheduled timer; returned by [`Timers::schedule`] and used to cancel it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(u64);

/// Why a timer could not be scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimerError {
    /// The shard already holds its configured maximum of live timers.
    #[error("timer table full ({capacity} live timers)")]
    Full {
        /// The configured maximum.
        capacity: usize,
    },
}

/// A bounded set of deadlines, each carrying an application token.
#[derive(Debug)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, TimerId)>>,
    live: HashMap<TimerId, u64>,
    next_id: u64,
    capacity: usize,
}

impl Timers {
    /// A timer set that holds at most `capacity` live timers.
    pub fn new(capacity: usize) -> Self {
        Self {
            heap: BinaryHeap::new(),
            live: HashMap::new(),
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
        if self.live.is_empty() {
            // Nothing live: every heap entry is a tombstone.
            self.heap.clear();
        }
        token
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
