//! Why a new session was refused, and counters per reason.
#![forbid(unsafe_code)]

use std::fmt;
use std::ops::Index;

/// Why admission refused a new session. Each refusal is counted under exactly one reason:
/// the first check that failed, in the order below.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
#[repr(u8)]
pub enum RefusalReason {
    /// The shard's memory budget has no room for another session.
    Memory = 0,
    /// The shard holds `max_sessions_shard` sessions.
    ShardFull,
    /// This shard's part of `max_sessions_node` for the current count-exchange round is used.
    NodeFull,
    /// `max_pending_handshakes` handshakes are in progress on this shard.
    PendingFull,
    /// The source prefix holds `max_sessions_per_prefix` sessions on this shard.
    PrefixFull,
    /// The source prefix opened sessions faster than `new_sessions_per_prefix` allows.
    PrefixRate,
    /// The prefix table had no room for a new prefix. Cannot happen while
    /// `prefix_table_capacity >= max_sessions_shard` (which validation requires); kept so
    /// that the check is total.
    PrefixTableFull,
}

impl RefusalReason {
    /// Number of reasons.
    pub const COUNT: usize = 7;
    /// Every reason, in check order.
    pub const ALL: [RefusalReason; Self::COUNT] = [
        RefusalReason::Memory,
        RefusalReason::ShardFull,
        RefusalReason::NodeFull,
        RefusalReason::PendingFull,
        RefusalReason::PrefixFull,
        RefusalReason::PrefixRate,
        RefusalReason::PrefixTableFull,
    ];

    /// This reason's index in a counter array.
    #[must_use]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A short stable name, for metrics labels.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            RefusalReason::Memory => "memory",
            RefusalReason::ShardFull => "shard_full",
            RefusalReason::NodeFull => "node_full",
            RefusalReason::PendingFull => "pending_full",
            RefusalReason::PrefixFull => "prefix_full",
            RefusalReason::PrefixRate => "prefix_rate",
            RefusalReason::PrefixTableFull => "prefix_table_full",
        }
    }
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A refused session: why, and whether the protocol layer may answer the trigger.
///
/// `reply == true` grants exactly one reply to the datagram that asked, no larger than it
/// (the protocol layer picks its bytes, e.g. a Close with a refusal code); replies come from
/// a per-shard token bucket, so a refusal flood cannot turn into a reply flood.
#[must_use = "a refusal names a reason and may grant a reply"]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Refusal {
    /// Why.
    pub reason: RefusalReason,
    /// Whether one reply, no larger than the trigger, may be sent.
    pub reply: bool,
}

/// Refusals counted by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RefusalCounters([u64; RefusalReason::COUNT]);

impl RefusalCounters {
    pub(crate) fn bump(&mut self, reason: RefusalReason) {
        self.0[reason.index()] += 1;
    }

    /// Refusals of every reason.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// `(reason, count)` for every reason with a non-zero count.
    pub fn nonzero(&self) -> impl Iterator<Item = (RefusalReason, u64)> + '_ {
        RefusalReason::ALL
            .into_iter()
            .map(|r| (r, self.0[r.index()]))
            .filter(|&(_, n)| n > 0)
    }
}

impl Index<RefusalReason> for RefusalCounters {
    type Output = u64;
    fn index(&self, reason: RefusalReason) -> &u64 {
        &self.0[reason.index()]
    }
}

impl fmt::Display for RefusalCounters {
    /// `name:count,...` for the non-zero reasons (`-` when none).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (r, n) in self.nonzero() {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{r}:{n}")?;
        }
        if first {
            f.write_str("-")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_indices_are_stable() {
        for (i, r) in RefusalReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        let names: std::collections::HashSet<_> =
            RefusalReason::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), RefusalReason::COUNT);
        let mut c = RefusalCounters::default();
        assert_eq!(c.to_string(), "-");
        c.bump(RefusalReason::PrefixRate);
        c.bump(RefusalReason::PrefixRate);
        c.bump(RefusalReason::Memory);
        assert_eq!(c.to_string(), "memory:1,prefix_rate:2");
        assert_eq!(c.total(), 3);
        assert_eq!(c[RefusalReason::PrefixRate], 2);
    }
}
