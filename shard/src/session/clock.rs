//! The session clock: how the shard loop's `Instant`s become the [`Timestamp`]s the sans-IO
//! endpoint takes, and back.
//!
//! A timestamp is nanoseconds since an origin. Every shard of one server must use the *same*
//! origin: cookie secrets rotate by epochs of that clock, and a cookie issued on one shard is
//! checked on another (`docs/PROTOCOL.md` §5). So the origin is not a hidden global: whoever
//! builds the server (the engine's caller, the `ringwire` binary) starts one [`SessionClock`]
//! and gives a copy to every shard's [`SessionHost`](super::SessionHost). The clock also
//! records the wall-clock time of its origin, once: Initiation timestamps are wall-clock
//! (TAI64N), everything else monotonic.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant, SystemTime};

use super::time::Timestamp;

/// Maps `Instant`s to session [`Timestamp`]s from one origin. `Copy`: give the same value to
/// every shard of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionClock {
    origin: Instant,
    /// Wall-clock time (since the Unix epoch) at `origin`, read once: Initiation timestamps
    /// are wall-clock, everything else uses the monotonic origin.
    unix_at_origin: Duration,
}

impl SessionClock {
    /// A clock whose origin is now. Start one per server, before its shards.
    #[must_use]
    pub fn start() -> Self {
        Self::with_origin(Instant::now())
    }

    /// A clock with this origin.
    #[must_use]
    pub fn with_origin(origin: Instant) -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let unix_at_origin = since_epoch.saturating_sub(origin.elapsed());
        SessionClock {
            origin,
            unix_at_origin,
        }
    }

    /// Wall-clock time since the Unix epoch at the origin (for
    /// `EndpointConfig::unix_time_at_origin`).
    #[must_use]
    pub fn unix_time_at_origin(&self) -> Duration {
        self.unix_at_origin
    }

    /// The origin.
    #[must_use]
    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// `now` as a timestamp (an instant before the origin reads as the origin).
    #[must_use]
    pub fn stamp(&self, now: Instant) -> Timestamp {
        let nanos = now.saturating_duration_since(self.origin).as_nanos();
        Timestamp(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// The instant of timestamp `t`; `None` if it lies beyond what `Instant` can hold (a
    /// deadline that never comes).
    #[must_use]
    pub fn instant(&self, t: Timestamp) -> Option<Instant> {
        self.origin.checked_add(Duration::from_nanos(t.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_and_copies_agree() {
        let clock = SessionClock::start();
        let other_shard = clock;
        let later = clock.origin() + Duration::from_millis(1500);
        let t = clock.stamp(later);
        assert_eq!(t, Timestamp::from_millis(1500));
        assert_eq!(other_shard.stamp(later), t);
        assert_eq!(clock.instant(t), Some(later));
        if let Some(before) = clock.origin().checked_sub(Duration::from_secs(1)) {
            assert_eq!(clock.stamp(before), Timestamp::ZERO);
        }
    }
}
