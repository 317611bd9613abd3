//! The responder's initiation replay table: for each (initiator static key, initiator
//! connection ID), the greatest Initiation timestamp accepted (`docs/PROTOCOL.md` §7).
//!
//! An Initiation is accepted only if its timestamp is newer than the entry's and within
//! `window` of the responder's own clock. An entry lives while its session does (unconfirmed
//! or established) and, after the session ends, until its timestamp is `window` old: from then
//! on the clock check alone refuses every Initiation that entry would have refused, so
//! forgetting it reopens nothing. A captured Initiation is therefore useless after its session
//! closes, and a retransmitted (newer) one for an unconfirmed session refreshes that session.
//!
//! Keyed by connection ID as well as key because one initiator key may hold many sessions (a
//! load generator, a gateway) whose Initiations can arrive out of order. The route byte
//! steers every Initiation of one key to one shard, so a shard's table is complete for the keys
//! it sees.
//!
//! Bounded: at most `capacity` entries. When full of entries that may not be forgotten yet,
//! new handshakes are refused (`ReplayTableFull`) rather than a live entry forgotten.
#![forbid(unsafe_code)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::conn_id::ConnId;
use super::drop_reason::DropReason;
use super::identity::PublicKey;
use super::time::Timestamp;

#[derive(Clone, Copy, Debug)]
struct Entry {
    /// The greatest timestamp accepted, nanoseconds since the Unix epoch.
    ts: u64,
    /// The session it belongs to, while one exists (`ConnId(0)`: none; zero is never an ID).
    session: ConnId,
    /// When it may be forgotten (meaningful once `session` is `None`).
    expires: Timestamp,
}

/// What [`InitiationTable::check`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Prior {
    /// No live session for this key and ID: a new one may be created.
    None,
    /// The live session this Initiation is a (newer) retransmission for.
    Session(ConnId),
}

#[derive(Debug)]
pub(crate) struct InitiationTable {
    map: HashMap<(PublicKey, u64), Entry>,
    expiring: BinaryHeap<Reverse<(Timestamp, PublicKey, u64)>>,
    capacity: usize,
    window_nanos: u64,
}

impl InitiationTable {
    pub fn new(capacity: usize, window_nanos: u64) -> Self {
        InitiationTable {
            map: HashMap::new(),
            expiring: BinaryHeap::new(),
            capacity: capacity.max(1),
            window_nanos,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether an Initiation from `key` for `conn_id` with timestamp `ts` (Unix nanoseconds)
    /// may proceed, judged at wall time `wall` (Unix nanoseconds) and endpoint time `now`.
    pub fn check(
        &mut self,
        key: &PublicKey,
        conn_id: u64,
        ts: u64,
        wall: u64,
        now: Timestamp,
    ) -> Result<Prior, DropReason> {
        if ts.abs_diff(wall) > self.window_nanos {
            return Err(DropReason::StaleTimestamp);
        }
        match self.map.get(&(*key, conn_id)) {
            Some(e) if ts <= e.ts => Err(DropReason::ReplayedInitiation),
            Some(e) if e.session.0 == 0 => Ok(Prior::None),
            Some(e) => Ok(Prior::Session(e.session)),
            None => {
                if self.map.len() >= self.capacity {
                    self.purge(now, usize::MAX);
                }
                if self.map.len() >= self.capacity {
                    Err(DropReason::ReplayTableFull)
                } else {
                    Ok(Prior::None)
                }
            }
        }
    }

    /// Records an accepted Initiation of `session`.
    pub fn record(&mut self, key: PublicKey, conn_id: u64, ts: u64, session: ConnId) {
        self.map.insert(
            (key, conn_id),
            Entry {
                ts,
                session,
                expires: Timestamp::NEVER,
            },
        );
    }

    /// The session of `key` / `conn_id` ended at `now`; `unix_at_origin` maps timestamps to
    /// endpoint time. The entry is kept until its timestamp is `window` old.
    pub fn session_ended(&mut self, key: &PublicKey, conn_id: u64, unix_at_origin: u64) {
        if let Some(e) = self.map.get_mut(&(*key, conn_id)) {
            e.session = ConnId(0);
            let t =
                e.ts.saturating_add(self.window_nanos)
                    .saturating_sub(unix_at_origin);
            e.expires = Timestamp(t);
            self.expiring.push(Reverse((e.expires, *key, conn_id)));
        }
    }

    /// Forgets up to `max` entries whose time has come.
    pub fn purge(&mut self, now: Timestamp, max: usize) {
        let mut n = 0;
        while n < max
            && let Some(Reverse((t, key, id))) = self.expiring.peek().copied()
            && t <= now
        {
            self.expiring.pop();
            n += 1;
            if let Some(e) = self.map.get(&(key, id))
                && e.session.0 == 0
                && e.expires == t
            {
                self.map.remove(&(key, id));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u64 = 180_000_000_000;

    #[test]
    fn newer_only_then_forgotten_after_the_window() {
        let k = PublicKey::from_bytes([1; 32]);
        let unix0 = 1_000 * W;
        let mut t = InitiationTable::new(8, W);
        let now = Timestamp::ZERO;
        assert_eq!(t.check(&k, 5, unix0, unix0, now), Ok(Prior::None));
        t.record(k, 5, unix0, ConnId(9));
        assert_eq!(
            t.check(&k, 5, unix0, unix0, now),
            Err(DropReason::ReplayedInitiation)
        );
        assert_eq!(
            t.check(&k, 5, unix0 + 1, unix0, now),
            Ok(Prior::Session(ConnId(9)))
        );
        assert_eq!(
            t.check(&k, 6, unix0, unix0, now),
            Ok(Prior::None),
            "another ID"
        );
        assert_eq!(
            t.check(&k, 5, unix0 + W + 1, unix0, now),
            Err(DropReason::StaleTimestamp)
        );
        t.session_ended(&k, 5, unix0);
        // Still refused after the session ended...
        assert_eq!(
            t.check(&k, 5, unix0, unix0 + 10, Timestamp(10)),
            Err(DropReason::ReplayedInitiation)
        );
        // ...and once forgotten, the clock check refuses it.
        t.purge(Timestamp(W), usize::MAX);
        assert_eq!(t.len(), 0);
        assert_eq!(
            t.check(&k, 5, unix0, unix0 + W + 1, Timestamp(W + 1)),
            Err(DropReason::StaleTimestamp)
        );
    }

    #[test]
    fn full_table_refuses_rather_than_forgets_live_entries() {
        let mut t = InitiationTable::new(2, W);
        let now = Timestamp::ZERO;
        for id in 1..=2 {
            let k = PublicKey::from_bytes([id as u8; 32]);
            t.record(k, id, 5, ConnId(id));
        }
        let k3 = PublicKey::from_bytes([3; 32]);
        assert_eq!(t.check(&k3, 3, 5, 5, now), Err(DropReason::ReplayTableFull));
        t.session_ended(&PublicKey::from_bytes([1; 32]), 1, 0);
        assert_eq!(
            t.check(&k3, 3, 5, 5, now),
            Err(DropReason::ReplayTableFull),
            "not yet expired"
        );
        assert_eq!(t.check(&k3, 3, 5, 5, Timestamp(W + 5)), Ok(Prior::None));
    }
}
