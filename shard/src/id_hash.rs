//! A hasher for tables keyed by identifiers this process chose itself: one multiplication by
//! 2^64 / phi (Fibonacci hashing) instead of SipHash.
//!
//! A keyed hash (the standard library's `RandomState`, SipHash-1-3) defends a table against
//! keys chosen to collide (HashDoS). Identifiers this process draws itself cannot be chosen
//! by anyone else: a timer set's counter ([`crate::timer`]), a shard's connection IDs (56 bits
//! from its keyed generator, [`crate::session::conn_id`]), a QUIC connection's sequence number.
//! A table keyed by them may hash with this; a peer that names an ID it made up only looks up
//! a missing key, which costs no more than any other miss in a table of random keys. A table
//! keyed by anything a peer chooses (addresses, prefixes, peer-supplied IDs, keys) keeps the
//! keyed default; `docs/SECURITY.md` ("Hash tables") lists which is which (D82, D84).
#![forbid(unsafe_code)]

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// Fibonacci hashing of `u64` identifiers: `(state ^ n) * 0x9e37_79b9_7f4a_7c15`. The product's
/// high bits (the table's control tags) mix every bit of the key, and its low bits (the bucket)
/// are a bijection of the key's low bits, which are random or sequential here.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Builds [`IdHasher`]s (no state: the table's hash is the same in every process).
pub type BuildIdHasher = BuildHasherDefault<IdHasher>;

/// A map keyed by an identifier this process chose (see the module documentation).
pub type IdMap<K, V> = HashMap<K, V, BuildIdHasher>;

/// A set of identifiers this process chose (see the module documentation).
pub type IdSet<K> = HashSet<K, BuildIdHasher>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher as _;

    #[test]
    fn a_u64_key_is_one_multiply() {
        let h = BuildIdHasher::default();
        assert_eq!(h.hash_one(1u64), 0x9e37_79b9_7f4a_7c15);
        assert_eq!(h.hash_one(0u64), 0);
    }

    #[test]
    fn sequential_keys_fill_distinct_low_buckets() {
        // 2^12 consecutive ids land in 2^12 distinct buckets of a 2^12-bucket table.
        let h = BuildIdHasher::default();
        let mut seen = vec![false; 1 << 12];
        for id in 1000u64..1000 + (1 << 12) {
            let bucket = (h.hash_one(id) & ((1 << 12) - 1)) as usize;
            assert!(!seen[bucket], "bucket {bucket} twice");
            seen[bucket] = true;
        }
    }
}
