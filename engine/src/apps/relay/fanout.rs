//! The relay's fan-out table: who subscribed to whose `Publish`es, on one shard.
//!
//! Each session subscribes to at most one publisher (a new `Subscribe` replaces the old one),
//! so the subscriber side holds at most one entry per live session of the shard: it is bounded
//! by the session table. A publisher's subscribers here are one `Vec` in subscription order,
//! walked once per `Publish`; removal is O(1) (swap with the last, whose recorded position is
//! updated). The publisher may live on another shard: then this shard's list is what that
//! shard's Publishes are copied to when they arrive over the mesh.
//!
//! The publisher side: for each publisher of this shard, the other shards that hold
//! subscribers of it (at most shards − 1 entries per publisher, so bounded by the session
//! table too), each sent one copy of every Publish.
#![forbid(unsafe_code)]

use std::collections::HashMap;

use crate::session::ConnId;

/// What [`Subscriptions::subscribe`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Change {
    /// The subscription is new (false: it already existed, nothing changed).
    pub added: bool,
    /// The publisher had no subscribers here before this one.
    pub first: bool,
    /// The subscriber's previous publisher, if it has no subscribers here any more.
    pub emptied: Option<ConnId>,
}

/// Subscriptions of one shard's sessions, and the other shards that follow its publishers.
#[derive(Debug, Default)]
pub struct Subscriptions {
    /// Publisher -> its subscribers on this shard.
    lists: HashMap<ConnId, Vec<ConnId>>,
    /// Subscriber -> (publisher, position in the publisher's list).
    of: HashMap<ConnId, (ConnId, usize)>,
    /// Publisher of this shard -> the other shards with subscribers of it.
    remote: HashMap<ConnId, Vec<u16>>,
}

impl Subscriptions {
    /// `subscriber` now receives `publisher`'s Publishes (and no longer any other's).
    pub fn subscribe(&mut self, subscriber: ConnId, publisher: ConnId) -> Change {
        if self
            .of
            .get(&subscriber)
            .is_some_and(|(p, _)| *p == publisher)
        {
            return Change::default();
        }
        let emptied = self.unsubscribe(subscriber);
        let list = self.lists.entry(publisher).or_default();
        let first = list.is_empty();
        self.of.insert(subscriber, (publisher, list.len()));
        list.push(subscriber);
        Change {
            added: true,
            first,
            emptied,
        }
    }

    /// Ends `subscriber`'s subscription, if any; returns its publisher if that has no
    /// subscribers here any more.
    pub fn unsubscribe(&mut self, subscriber: ConnId) -> Option<ConnId> {
        let (publisher, at) = self.of.remove(&subscriber)?;
        let list = self.lists.get_mut(&publisher)?;
        list.swap_remove(at);
        if let Some(moved) = list.get(at)
            && let Some(entry) = self.of.get_mut(moved)
        {
            entry.1 = at;
        }
        if list.is_empty() {
            self.lists.remove(&publisher);
            return Some(publisher);
        }
        None
    }

    /// A session ended: it no longer subscribes (returns its publisher if that has no
    /// subscribers here any more, as [`Subscriptions::unsubscribe`]), and as a publisher it
    /// is no longer followed by other shards (returns those shards, which should be told).
    /// Its subscribers on this shard keep their entries until they subscribe elsewhere or
    /// end, and get nothing meanwhile.
    pub fn session_ended(&mut self, conn: ConnId) -> (Option<ConnId>, Vec<u16>) {
        let emptied = self.unsubscribe(conn);
        (emptied, self.remote.remove(&conn).unwrap_or_default())
    }

    /// The publisher `publisher`, on another shard, is gone: its subscribers here lose their
    /// subscription. Returns them.
    pub fn drop_publisher(&mut self, publisher: ConnId) -> Vec<ConnId> {
        let list = self.lists.remove(&publisher).unwrap_or_default();
        for sub in &list {
            self.of.remove(sub);
        }
        list
    }

    /// `publisher`'s subscribers on this shard, in subscription order (until one leaves).
    pub fn subscribers(&self, publisher: ConnId) -> &[ConnId] {
        self.lists.get(&publisher).map_or(&[], Vec::as_slice)
    }

    /// Shard `shard` has subscribers of `publisher` (a session of this shard). False if it
    /// was already known.
    pub fn follow(&mut self, publisher: ConnId, shard: u16) -> bool {
        let shards = self.remote.entry(publisher).or_default();
        if shards.contains(&shard) {
            return false;
        }
        shards.push(shard);
        true
    }

    /// Shard `shard` no longer has subscribers of `publisher`. False if it was not known.
    pub fn unfollow(&mut self, publisher: ConnId, shard: u16) -> bool {
        let Some(shards) = self.remote.get_mut(&publisher) else {
            return false;
        };
        let Some(at) = shards.iter().position(|&k| k == shard) else {
            return false;
        };
        shards.swap_remove(at);
        if shards.is_empty() {
            self.remote.remove(&publisher);
        }
        true
    }

    /// The other shards that follow `publisher`.
    pub fn followers(&self, publisher: ConnId) -> &[u16] {
        self.remote.get(&publisher).map_or(&[], Vec::as_slice)
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
            assert!(s.subscribe(ConnId(c), p).added);
        }
        assert!(!s.subscribe(ConnId(2), p).added, "already subscribed");
        assert_eq!(ids(s.subscribers(p)), [1, 2, 3, 4]);
        // Moving 2 to q: the last of p's list takes its place.
        let moved = s.subscribe(ConnId(2), q);
        assert!(moved.added && moved.first && moved.emptied.is_none());
        assert_eq!(ids(s.subscribers(p)), [1, 4, 3]);
        assert_eq!(ids(s.subscribers(q)), [2]);
        // 4 moved: its recorded position must follow, or this would remove the wrong one.
        s.session_ended(ConnId(4));
        assert_eq!(ids(s.subscribers(p)), [1, 3]);
        assert_eq!(s.session_ended(ConnId(2)), (Some(q), vec![]));
        assert!(s.subscribers(q).is_empty());
        s.session_ended(ConnId(99)); // never subscribed
        assert_eq!(s.len(), 2);
        assert_eq!(s.unsubscribe(ConnId(1)), None);
        assert_eq!(
            s.unsubscribe(ConnId(3)),
            Some(p),
            "p's last subscriber left"
        );
        assert!(s.is_empty());
        assert!(s.subscribers(p).is_empty());
    }

    #[test]
    fn followers_and_a_gone_publisher() {
        let mut s = Subscriptions::default();
        let (p, remote) = (ConnId(100), ConnId(200));
        assert!(s.follow(p, 1));
        assert!(!s.follow(p, 1), "already following");
        assert!(s.follow(p, 2));
        assert_eq!(s.followers(p), [1, 2]);
        assert!(s.unfollow(p, 1));
        assert!(!s.unfollow(p, 1));
        assert_eq!(s.followers(p), [2]);
        // The publisher ends: the shards that followed it are returned to be told.
        assert_eq!(s.session_ended(p), (None, vec![2]));
        assert!(s.followers(p).is_empty());
        // A publisher of another shard gone: its subscribers here lose their subscription.
        for c in 1..=3 {
            assert_eq!(s.subscribe(ConnId(c), remote).first, c == 1);
        }
        assert_eq!(ids(&s.drop_publisher(remote)), [1, 2, 3]);
        assert!(s.is_empty());
        assert!(s.subscribers(remote).is_empty());
    }
}
