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
#[non_exhaustive]
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
    /// exist). In Noise mode it may draw a rate-limited stateless Reset.
    UnknownConnection,
    /// mac1 of an Initiation or Response, a CookieReply's seal, or a Reset's token does not
    /// verify.
    BadMac,
    /// The packet number was already received (inside the replay window).
    Duplicate,
    /// The packet number is older than the replay window can judge.
    TooOld,
    /// The datagram names a live session but comes from another address than its peer's.
    AddressMismatch,
    /// A well-formed message that the session's state does not expect (e.g. Data during the
    /// handshake, a Response for an older attempt, an Initiation for a confirmed session).
    UnexpectedMessage,
    /// A valid Initiation, but the endpoint holds `max_sessions` sessions already.
    SessionLimit,
    /// The control queue had no room for the reply this datagram asks for.
    ControlQueueFull,
    /// A Data message was valid but the application's event queue is full.
    EventQueueFull,
    /// An authenticated Data payload longer than `max_payload`.
    TooLarge,
    /// A transport message that does not decrypt under the session's keys (forged, tampered,
    /// reflected, or under a key already retired).
    DecryptFailed,
    /// A Noise handshake message that does not decrypt (wrong responder key, wrong psk,
    /// tampered).
    HandshakeFailed,
    /// An Initiation whose timestamp is not newer than the last one accepted from that
    /// initiator key and connection ID.
    ReplayedInitiation,
    /// An Initiation whose timestamp is further than `initiation_replay_window` from this
    /// endpoint's clock.
    StaleTimestamp,
    /// An authenticated initiator refused by the application (`SessionApp::admit`, or the
    /// callback of `handle_timeout_with`).
    NotAdmitted,
    /// An Initiation whose route byte is not its static key's tag.
    UnknownKeyTag,
    /// The queue of Initiations waiting for Diffie-Hellman work, or the unconfirmed-session
    /// cap, is full.
    HandshakeQueueFull,
    /// The initiation replay table is full of entries it may not forget yet.
    ReplayTableFull,
    /// A handshake message of the other security mode (plaintext vs Noise).
    SecurityMismatch,
    /// A reply (CookieReply) was due but its rate limit was reached.
    RateLimited,
    /// Admission control refused a new session (the admission counters say why; at most one
    /// rate-limited Refused answers it).
    Refused,
    /// An authenticated initiator whose static key is not in `allowed_peers` (checked before
    /// the application is asked).
    NotAllowed,
}

impl DropReason {
    /// Number of reasons (the length of a [`DropCounters`] array).
    pub const COUNT: usize = 26;
    /// Every reason, in counter order.
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::Truncated,
        DropReason::Malformed,
        DropReason::UnknownVersion,
        DropReason::UnknownType,
        DropReason::UnknownConnection,
        DropReason::BadMac,
        DropReason::Duplicate,
        DropReason::TooOld,
        DropReason::AddressMismatch,
        DropReason::UnexpectedMessage,
        DropReason::SessionLimit,
        DropReason::ControlQueueFull,
        DropReason::EventQueueFull,
        DropReason::TooLarge,
        DropReason::DecryptFailed,
        DropReason::HandshakeFailed,
        DropReason::ReplayedInitiation,
        DropReason::StaleTimestamp,
        DropReason::NotAdmitted,
        DropReason::UnknownKeyTag,
        DropReason::HandshakeQueueFull,
        DropReason::ReplayTableFull,
        DropReason::SecurityMismatch,
        DropReason::RateLimited,
        DropReason::Refused,
        DropReason::NotAllowed,
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
            DropReason::BadMac => "bad_mac",
            DropReason::Duplicate => "duplicate",
            DropReason::TooOld => "too_old",
            DropReason::AddressMismatch => "address_mismatch",
            DropReason::UnexpectedMessage => "unexpected_message",
            DropReason::SessionLimit => "session_limit",
            DropReason::ControlQueueFull => "control_queue_full",
            DropReason::EventQueueFull => "event_queue_full",
            DropReason::TooLarge => "too_large",
            DropReason::DecryptFailed => "decrypt_failed",
            DropReason::HandshakeFailed => "handshake_failed",
            DropReason::ReplayedInitiation => "replayed_initiation",
            DropReason::StaleTimestamp => "stale_timestamp",
            DropReason::NotAdmitted => "not_admitted",
            DropReason::UnknownKeyTag => "unknown_key_tag",
            DropReason::HandshakeQueueFull => "handshake_queue_full",
            DropReason::ReplayTableFull => "replay_table_full",
            DropReason::SecurityMismatch => "security_mismatch",
            DropReason::RateLimited => "rate_limited",
            DropReason::Refused => "refused",
            DropReason::NotAllowed => "not_allowed",
        }
    }

    /// The slot of a reason that can be charged to a session (its flight recorder keeps only
    /// these, to stay small); `None` for reasons no session owns.
    #[must_use]
    pub const fn session_slot(self) -> Option<usize> {
        Some(match self {
            DropReason::Malformed => 0,
            DropReason::Duplicate => 1,
            DropReason::TooOld => 2,
            DropReason::AddressMismatch => 3,
            DropReason::UnexpectedMessage => 4,
            DropReason::ControlQueueFull => 5,
            DropReason::EventQueueFull => 6,
            DropReason::TooLarge => 7,
            DropReason::DecryptFailed => 8,
            DropReason::BadMac => 9,
            _ => return None,
        })
    }
}

/// A session's own drop counters: one `u32` per reason that [`DropReason::session_slot`]
/// maps (the rest are never charged to a session).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SessionDrops([u32; 10]);

impl SessionDrops {
    /// Counts one drop of a session-chargeable reason (others are ignored).
    pub fn bump(&mut self, reason: DropReason) {
        if let Some(i) = reason.session_slot() {
            self.0[i] = self.0[i].saturating_add(1);
        }
    }

    /// As a full counter array.
    pub fn expand(&self) -> DropCounters<u32> {
        let mut out = DropCounters::<u32>::default();
        for r in DropReason::ALL {
            if let Some(i) = r.session_slot() {
                out.0[r.index()] = self.0[i];
            }
        }
        out
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
