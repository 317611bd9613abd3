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
//!
//! Small, because every responder session has an entry: the table is keyed by a 64-bit keyed
//! hash of (key, ID) under a secret of the endpoint, not by the 40 bytes themselves (24 bytes an
//! entry instead of 64). Without the secret nobody can aim a collision; by chance, two of a
//! million entries collide with probability 2^-25. The endpoint checks that a session found
//! through the table really is the initiator's (same key and ID) and refuses the handshake if
//! not (`ReplayTableFull`), so a collision can only refuse one handshake attempt, never mix
//! sessions.
#![forbid(unsafe_code)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::conn_id::ConnId;
use super::crypto;
use super::drop_reason::DropReason;
use super::identity::PublicKey;
use super::time::Timestamp;

#[derive(Clone, Copy, Debug)]
struct Entry {
    /// The greatest timestamp accepted, nanoseconds since the Unix epoch.
    ts: u64,
    /// The session it belongs to, while one exists (`ConnId(0)`: none; zero is never an ID).
    /// Once none, the entry may be forgotten when `ts` is `window` old.
    session: ConnId,
}

/// Bytes of one table slot (key and entry).
pub(crate) const ENTRY_SIZE: usize = std::mem::size_of::<(u64, Entry)>();

/// What [`InitiationTable::check`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Prior {
    /// No live session for this key and ID: a new one may be created.
    None,
    /// The live session this Initiation is a (newer) retransmission for.
    Session(ConnId),
}

pub(crate) struct InitiationTable {
    map: HashMap<u64, Entry>,
    expiring: BinaryHeap<Reverse<(Timestamp, u64)>>,
    capacity: usize,
    window_nanos: u64,
    /// Unix nanoseconds at endpoint time zero (maps timestamps to expiry times).
    unix_at_origin: u64,
    /// Secret key of the entries' hash.
    hash_key: [u8; 32],
}

impl std::fmt::Debug for InitiationTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitiationTable")
            .field("entries", &self.map.len())
            .finish_non_exhaustive()
    }
}

impl Drop for InitiationTable {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        self.hash_key.zeroize();
    }
}

impl InitiationTable {
    pub fn new(
        capacity: usize,
        window_nanos: u64,
        unix_at_origin: u64,
        hash_key: [u8; 32],
    ) -> Self {
        InitiationTable {
            map: HashMap::new(),
            expiring: BinaryHeap::new(),
            capacity: capacity.max(1),
            window_nanos,
            unix_at_origin,
            hash_key,
        }
    }

    fn slot(&self, key: &PublicKey, conn_id: u64) -> u64 {
        let m = crypto::mac(&self.hash_key, &[key.as_bytes(), &conn_id.to_be_bytes()]);
        let mut h = [0u8; 8];
        h.copy_from_slice(&m[..8]);
        u64::from_le_bytes(h)
    }

    /// When an entry of timestamp `ts` may be forgotten, in endpoint time.
    fn expiry(&self, ts: u64) -> Timestamp {
        Timestamp(
            ts.saturating_add(self.window_nanos)
                .saturating_sub(self.unix_at_origin),
        )
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
        match self.map.get(&self.slot(key, conn_id)) {
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
    pub fn record(&mut self, key: &PublicKey, conn_id: u64, ts: u64, session: ConnId) {
        let slot = self.slot(key, conn_id);
        self.map.insert(slot, Entry { ts, session });
    }

    /// The session of `key` / `conn_id` ended. The entry is kept until its timestamp is
    /// `window` old.
    pub fn session_ended(&mut self, key: &PublicKey, conn_id: u64) {
        let slot = self.slot(key, conn_id);
        let Some(ts) = self.map.get_mut(&slot).map(|e| {
            e.session = ConnId(0);
            e.ts
        }) else {
            return;
        };
        let t = self.expiry(ts);
        self.expiring.push(Reverse((t, slot)));
    }

    /// Forgets up to `max` entries whose time has come.
    pub fn purge(&mut self, now: Timestamp, max: usize) {
        let mut n = 0;
        while n < max
            && let Some(Reverse((t, slot))) = self.expiring.peek().copied()
            && t <= now
        {
            self.expiring.pop();
            n += 1;
            // Skip stale heap entries: the slot was reused by a newer handshake since.
            if let Some(e) = self.map.get(&slot)
                && e.session.0 == 0
                && self.expiry(e.ts) <= now
            {
                self.map.remove(&slot);
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
        let mut t = InitiationTable::new(8, W, unix0, [7; 32]);
        let now = Timestamp::ZERO;
        assert_eq!(t.check(&k, 5, unix0, unix0, now), Ok(Prior::None));
        t.record(&k, 5, unix0, ConnId(9));
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
        t.session_ended(&k, 5);
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
        let mut t = InitiationTable::new(2, W, 0, [7; 32]);
        let now = Timestamp::ZERO;
        for id in 1..=2 {
            let k = PublicKey::from_bytes([id as u8; 32]);
            t.record(&k, id, 5, ConnId(id));
        }
        let k3 = PublicKey::from_bytes([3; 32]);
        assert_eq!(t.check(&k3, 3, 5, 5, now), Err(DropReason::ReplayTableFull));
        t.session_ended(&PublicKey::from_bytes([1; 32]), 1);
        assert_eq!(
            t.check(&k3, 3, 5, 5, now),
            Err(DropReason::ReplayTableFull),
            "not yet expired"
        );
        assert_eq!(t.check(&k3, 3, 5, 5, Timestamp(W + 5)), Ok(Prior::None));
    }
}
