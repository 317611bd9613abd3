//! Why a datagram was dropped, and counters per reason.
//!
//! Every datagram the endpoint refuses is dropped *silently* (no reply: a reply to garbage is an
//! amplifier and an oracle) and counted here, once, under exactly one reason.
#![forbid(unsafe_code)]

use std::fmt;
use std::ops::Index;

/// Why an inbound datagram (or an event it would have produced) was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum DropReason {
    /// Shorter than the common header, or than its message type requires.
    Truncated = 0,
    /// A field has a value the protocol forbids (non-zero reserved bits or padding, zero
    /// connection ID, wrong length for a fixed-size message, unknown close code...).
    Malformed,
    /// The version nibble is not one this endpoint speaks.
    UnknownVersion,
    /// The type nibble names no message of this version.
    UnknownType,
    /// No session has the destination connection ID (or the ID names a shard that does not
    /// exist).
    UnknownConnection,
    /// A Hello's cookie was issued too long ago, in the future, or under a retired secret.
    StaleCookie,
    /// A Hello's cookie MAC does not verify.
    BadMac,
    /// The packet number was already received (inside the replay window).
    Duplicate,
    /// The packet number is older than the replay window can judge.
    TooOld,
    /// The datagram names a live session but comes from another address than its peer's.
    AddressMismatch,
    /// A well-formed message that the session's state does not expect (e.g. Data during the
    /// handshake, an Accept when established, a Cookie echoing an old Hello).
    UnexpectedMessage,
    /// A valid Hello with cookie, but the endpoint holds `max_sessions` sessions already.
    SessionLimit,
    /// The control queue had no room for the reply this datagram asks for.
    ControlQueueFull,
    /// A Data message was valid but the application's event queue is full.
    EventQueueFull,
}

impl DropReason {
    /// Number of reasons (the length of a [`DropCounters`] array).
    pub const COUNT: usize = 14;
    /// Every reason, in counter order.
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::Truncated,
        DropReason::Malformed,
        DropReason::UnknownVersion,
        DropReason::UnknownType,
        DropReason::UnknownConnection,
        DropReason::StaleCookie,
        DropReason::BadMac,
        DropReason::Duplicate,
        DropReason::TooOld,
        DropReason::AddressMismatch,
        DropReason::UnexpectedMessage,
        DropReason::SessionLimit,
        DropReason::ControlQueueFull,
        DropReason::EventQueueFull,
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
            DropReason::Truncated => "truncated",
            DropReason::Malformed => "malformed",
            DropReason::UnknownVersion => "unknown_version",
            DropReason::UnknownType => "unknown_type",
            DropReason::UnknownConnection => "unknown_connection",
            DropReason::StaleCookie => "stale_cookie",
            DropReason::BadMac => "bad_mac",
            DropReason::Duplicate => "duplicate",
            DropReason::TooOld => "too_old",
            DropReason::AddressMismatch => "address_mismatch",
            DropReason::UnexpectedMessage => "unexpected_message",
            DropReason::SessionLimit => "session_limit",
            DropReason::ControlQueueFull => "control_queue_full",
            DropReason::EventQueueFull => "event_queue_full",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One counter per [`DropReason`]. `u32` per session keeps the flight recorder small; the
/// endpoint-wide totals use `u64`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounters<T = u64>(pub [T; DropReason::COUNT]);

impl DropCounters<u64> {
    /// Counts one drop.
    pub fn bump(&mut self, reason: DropReason) {
        let c = &mut self.0[reason.index()];
        *c = c.saturating_add(1);
    }

    /// Sum over all reasons.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

impl DropCounters<u32> {
    /// Counts one drop.
    pub fn bump(&mut self, reason: DropReason) {
        let c = &mut self.0[reason.index()];
        *c = c.saturating_add(1);
    }

    /// Sum over all reasons.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.0.iter().map(|&c| u64::from(c)).sum()
    }
}

impl<T> Index<DropReason> for DropCounters<T> {
    type Output = T;
    fn index(&self, reason: DropReason) -> &T {
        &self.0[reason.index()]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    #[test]
    fn all_is_in_index_order() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        let mut c = DropCounters::<u64>::default();
        c.bump(DropReason::BadMac);
        c.bump(DropReason::BadMac);
        assert_eq!(c[DropReason::BadMac], 2);
        assert_eq!(c.total(), 2);
    }
}
