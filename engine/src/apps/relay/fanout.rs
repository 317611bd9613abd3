//! The relay's fan-out table: who subscribed to whose `Publish`es, on one shard.
//!
//! Each session subscribes to at most one publisher (a new `Subscribe` replaces the old one),
//! so the table holds at most one entry per live session of the shard: it is bounded by the
//! session table. A publisher's subscribers are one `Vec` in subscription order, walked once
//! per `Publish`; removal is O(1) (swap with the last, whose recorded position is updated).
#![forbid(unsafe_code)]

use std::collections::HashMap;

use crate::session::ConnId;

/// Subscriptions of one shard's sessions.
#[derive(Debug, Default)]
pub struct Subscriptions {
    /// Publisher -> its subscribers.
    lists: HashMap<ConnId, Vec<ConnId>>,
    /// Subscriber -> (publisher, position in the publisher's list).
    of: HashMap<ConnId, (ConnId, usize)>,
}

impl Subscriptions {
    /// `subscriber` now receives `publisher`'s Publishes (and no longer any other's). False if
    /// it was already subscribed to `publisher` (nothing changes).
    pub fn subscribe(&mut self, subscriber: ConnId, publisher: ConnId) -> bool {
        if self
            .of
            .get(&subscriber)
            .is_some_and(|(p, _)| *p == publisher)
        {
            return false;
        }
        self.unsubscribe(subscriber);
        let list = self.lists.entry(publisher).or_default();
        self.of.insert(subscriber, (publisher, list.len()));
        list.push(subscriber);
        true
    }

    /// Ends `subscriber`'s subscription, if any.
    pub fn unsubscribe(&mut self, subscriber: ConnId) {
        let Some((publisher, at)) = self.of.remove(&subscriber) else {
            return;
        };
        let Some(list) = self.lists.get_mut(&publisher) else {
            return;
        };
        list.swap_remove(at);
        if let Some(moved) = list.get(at)
            && let Some(entry) = self.of.get_mut(moved)
        {
            entry.1 = at;
        }
        if list.is_empty() {
            self.lists.remove(&publisher);
        }
    }

    /// A session ended: it neither subscribes nor publishes any more (its subscribers keep
    /// their entries until they subscribe elsewhere or end, and get nothing meanwhile).
    pub fn session_ended(&mut self, conn: ConnId) {
        self.unsubscribe(conn);
    }

    /// `publisher`'s subscribers, in subscription order (until one leaves).
    pub fn subscribers(&self, publisher: ConnId) -> &[ConnId] {
        self.lists.get(&publisher).map_or(&[], Vec::as_slice)
    }

    /// Subscriptions held.
    pub fn len(&self) -> usize {
        self.of.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.of.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[ConnId]) -> Vec<u64> {
        v.iter().map(|c| c.0).collect()
    }

    #[test]
    fn subscribe_replace_and_leave() {
        let mut s = Subscriptions::default();
        let (p, q) = (ConnId(100), ConnId(200));
        for c in 1..=4 {
            assert!(s.subscribe(ConnId(c), p));
        }
        assert!(!s.subscribe(ConnId(2), p), "already subscribed");
        assert_eq!(ids(s.subscribers(p)), [1, 2, 3, 4]);
        // Moving 2 to q: the last of p's list takes its place.
        assert!(s.subscribe(ConnId(2), q));
        assert_eq!(ids(s.subscribers(p)), [1, 4, 3]);
        assert_eq!(ids(s.subscribers(q)), [2]);
        // 4 moved: its recorded position must follow, or this would remove the wrong one.
        s.session_ended(ConnId(4));
        assert_eq!(ids(s.subscribers(p)), [1, 3]);
        s.session_ended(ConnId(2));
        assert!(s.subscribers(q).is_empty());
        s.session_ended(ConnId(99)); // never subscribed
        assert_eq!(s.len(), 2);
        s.unsubscribe(ConnId(1));
        s.unsubscribe(ConnId(3));
        assert!(s.is_empty());
        assert!(s.subscribers(p).is_empty());
    }
}
