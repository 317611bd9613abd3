//! Virtual time for the sans-IO core.
#![forbid(unsafe_code)]
//!
//! The session core never reads a clock. Every entry point takes a [`Timestamp`]: a count of
//! nanoseconds since an origin the caller picks. In the shard loop the origin is the server's
//! [`SessionClock`](super::SessionClock), one for *all* its shards (cookies issued by one shard
//! are checked by another, so their clocks must agree); the simulator starts at zero and jumps
//! from event to event. A plain `u64` makes virtual clocks trivial and keeps the session state small.

use std::fmt;
use std::time::Duration;

/// A point in (possibly virtual) time: nanoseconds since a caller-chosen origin.
///
/// Invariant: callers pass non-decreasing timestamps to one endpoint. A timestamp that goes
/// backwards is tolerated (all arithmetic saturates) but delays timers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The origin.
    pub const ZERO: Timestamp = Timestamp(0);
    /// Later than any real deadline; used as "never".
    pub const NEVER: Timestamp = Timestamp(u64::MAX);

    /// From nanoseconds since the origin.
    #[must_use]
    pub const fn from_nanos(nanos: u64) -> Self {
        Timestamp(nanos)
    }

    /// From milliseconds since the origin (saturating).
    #[must_use]
    pub const fn from_millis(millis: u64) -> Self {
        Timestamp(millis.saturating_mul(1_000_000))
    }

    /// From seconds since the origin (saturating).
    #[must_use]
    pub const fn from_secs(secs: u64) -> Self {
        Timestamp(secs.saturating_mul(1_000_000_000))
    }

    /// Nanoseconds since the origin.
    #[must_use]
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Whole milliseconds since the origin.
    #[must_use]
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000_000
    }

    /// `self + d`, saturating at [`Timestamp::NEVER`].
    #[must_use]
    pub fn saturating_add(self, d: Duration) -> Self {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_add(nanos))
    }

    /// `self - earlier`, or zero if `earlier` is later.
    #[must_use]
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:09}s",
            self.0 / 1_000_000_000,
            self.0 % 1_000_000_000
        )
    }
}

/// Converts a duration to whole nanoseconds, saturating.
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(
            Timestamp::NEVER.saturating_add(Duration::from_secs(1)),
            Timestamp::NEVER
        );
        assert_eq!(
            Timestamp::ZERO.saturating_since(Timestamp(5)),
            Duration::ZERO
        );
        assert_eq!(Timestamp::from_millis(1500).to_string(), "1.500000000s");
    }
}
