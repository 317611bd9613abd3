//! The QUIC host's counters on one shard.
//!
//! Every datagram the shard reads is counted under exactly one of: handed to its owner
//! (`handed_off`), dropped because the owner's lane was full or closed (`handoff_full`,
//! `handoff_closed`), or given to the endpoint (`to_endpoint`), whose own drops (malformed,
//! unknown connection, buffered during a handshake) are quinn's. So
//! `datagrams + handoffs_received = handed_off + handoff_full + handoff_closed + to_endpoint`.
#![forbid(unsafe_code)]

use crate::session::admission::RefusalReason;
use crate::session::manager::TrimReason;

/// Counters of the QUIC host on one shard (see the module docs for the ledger).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QuicStats {
    /// Datagrams read from this shard's socket.
    pub datagrams: u64,
    /// Of those, carrying a CID that names this shard (steered, or landed by chance).
    pub owned_here: u64,
    /// Of those, naming no shard (Initial, 0-RTT, runts): the kernel's hash decided.
    pub hashed: u64,
    /// Datagrams naming another shard, handed to it over the mesh's data lane.
    pub handed_off: u64,
    /// Handoffs dropped because the owner's lane was full.
    pub handoff_full: u64,
    /// Handoffs dropped because the owner had stopped.
    pub handoff_closed: u64,
    /// Datagrams other shards handed to this one.
    pub handoffs_received: u64,
    /// Datagrams given to the endpoint (read here or handed here).
    pub to_endpoint: u64,
    /// Connections accepted.
    pub accepted: u64,
    /// Initials refused because the shard holds `max_connections_per_shard`.
    pub refused_full: u64,
    /// Initials refused by [`QuicApp::admit`](super::QuicApp::admit).
    pub refused_by_app: u64,
    /// Initials refused while draining.
    pub refused_draining: u64,
    /// Retry packets sent (address validation).
    pub retries: u64,
    /// Of those, sent because the shard was under load (`RetryMode::UnderLoad`).
    pub retries_under_load: u64,
    /// Initials admission refused whose `CONNECTION_REFUSED` the reply bucket withheld
    /// (dropped instead; the refusal is counted by reason either way).
    pub refusal_replies_suppressed: u64,
    /// Incoming connections quinn could not accept (bad token, CID collision, ...).
    pub accept_failed: u64,
    /// Connections that ended (drained and freed).
    pub closed: u64,
    /// Stateless packets sent by the endpoint (version negotiation, resets, refusals).
    pub stateless_out: u64,
    /// QUIC datagrams handed to send slots.
    pub datagrams_out: u64,
    /// QUIC datagrams refused by the send slots (full or too large); the connection sees a
    /// loss and retransmits.
    pub send_refused: u64,
    /// Times a connection had more to send than free send slots and waited a turn.
    pub backlogged: u64,
    /// Times the shard's timer table refused a connection's deadline (checked every turn
    /// instead).
    pub timer_refused: u64,
    /// Connection timers that fired before the connection's deadline (it had moved later
    /// since the timer was armed) and were re-armed at it without driving the connection.
    pub timers_early: u64,
}

impl QuicStats {
    /// Appends the counters as `(name, value)` pairs, names prefixed `quic_`.
    pub fn append(&self, out: &mut Vec<(&'static str, u64)>) {
        out.extend([
            ("quic_datagrams", self.datagrams),
            ("quic_owned_here", self.owned_here),
            ("quic_hashed", self.hashed),
            ("quic_handed_off", self.handed_off),
            ("quic_handoff_full", self.handoff_full),
            ("quic_handoff_closed", self.handoff_closed),
            ("quic_handoffs_received", self.handoffs_received),
            ("quic_to_endpoint", self.to_endpoint),
            ("quic_accepted", self.accepted),
            ("quic_refused_full", self.refused_full),
            ("quic_refused_by_app", self.refused_by_app),
            ("quic_refused_draining", self.refused_draining),
            ("quic_retries", self.retries),
            ("quic_retries_under_load", self.retries_under_load),
            (
                "quic_refusal_replies_suppressed",
                self.refusal_replies_suppressed,
            ),
            ("quic_accept_failed", self.accept_failed),
            ("quic_closed", self.closed),
            ("quic_stateless_out", self.stateless_out),
            ("quic_datagrams_out", self.datagrams_out),
            ("quic_send_refused", self.send_refused),
            ("quic_backlogged", self.backlogged),
            ("quic_timer_refused", self.timer_refused),
            ("quic_timers_early", self.timers_early),
        ]);
    }
}

/// Prefix of the admission refusal counters (`quic_refusals_<reason>`, the reasons of
/// [`RefusalReason`]); metrics turn them into one family labelled by reason.
pub const REFUSALS_PREFIX: &str = "quic_refusals_";
/// Prefix of the trim counters (`quic_trims_<reason>`).
pub const TRIMS_PREFIX: &str = "quic_trims_";

/// The counter name of QUIC refusals for `r`.
#[must_use]
pub const fn refusal_counter(r: RefusalReason) -> &'static str {
    match r {
        RefusalReason::Memory => "quic_refusals_memory",
        RefusalReason::ShardFull => "quic_refusals_shard_full",
        RefusalReason::NodeFull => "quic_refusals_node_full",
        RefusalReason::PendingFull => "quic_refusals_pending_full",
        RefusalReason::PrefixFull => "quic_refusals_prefix_full",
        RefusalReason::PrefixRate => "quic_refusals_prefix_rate",
        RefusalReason::PrefixTableFull => "quic_refusals_prefix_table_full",
    }
}

/// The counter name of QUIC trims for `r`.
#[must_use]
pub const fn trim_counter(r: TrimReason) -> &'static str {
    match r {
        TrimReason::Watermark => "quic_trims_watermark",
        TrimReason::Forced => "quic_trims_forced",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_names_carry_the_reason_names() {
        for r in RefusalReason::ALL {
            assert_eq!(refusal_counter(r), format!("{REFUSALS_PREFIX}{}", r.name()));
        }
        for r in TrimReason::ALL {
            assert_eq!(trim_counter(r), format!("{TRIMS_PREFIX}{}", r.name()));
        }
    }
}
