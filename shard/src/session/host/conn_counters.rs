//! The counters of admission control and the connection manager, as the host reports them
//! (`Handler::counters`): refusals by reason, trims by reason, the memory budget, the count
//! exchange. Names are stable: metrics turn `session_refusals_*` and `session_trims_*` into
//! one family each, labelled by reason.
#![forbid(unsafe_code)]

use super::{SessionApp, SessionHost};
use crate::session::admission::RefusalReason;
use crate::session::manager::TrimReason;

/// Prefix of the refusal counters (`session_refusals_<reason>`).
pub const REFUSALS_PREFIX: &str = "session_refusals_";
/// Prefix of the trim counters (`session_trims_<reason>`).
pub const TRIMS_PREFIX: &str = "session_trims_";

impl<A: SessionApp> SessionHost<A> {
    pub(super) fn conn_control_counters(&self, out: &mut Vec<(&'static str, u64)>) {
        let n = |v: usize| v as u64;
        if let Some(adm) = self.ep.admission() {
            let a = adm.stats();
            for r in RefusalReason::ALL {
                out.push((refusal_counter(r), a.refused[r]));
            }
            out.extend([
                ("session_admitted", a.admitted),
                ("session_admitted_outbound", a.admitted_outbound),
                ("session_pending", n(a.pending)),
                ("session_refusal_replies", a.replies),
                ("session_refusal_replies_suppressed", a.replies_suppressed),
                ("session_memory_limit", n(adm.config().memory.limit)),
                ("session_memory_used", n(a.memory.used)),
                ("session_memory_peak", n(a.memory.peak)),
                ("session_memory_queued", n(a.memory.queued)),
                ("session_memory_handoff", n(a.memory.handoff)),
                ("session_queue_memory_refused", a.memory.queue_refused),
                ("session_shed_queues", a.memory.shed_queues),
                ("session_shed_bytes", a.memory.shed_bytes),
                ("session_node_ceiling", n(a.node.ceiling)),
                ("session_node_peer_sessions", n(a.node.peer_sessions)),
                ("session_node_rounds", a.node.rounds),
                ("session_node_rounds_incomplete", a.node.rounds_incomplete),
                ("session_prefixes", n(a.prefixes.entries)),
            ]);
        }
        if let Some(m) = self.ep.manager() {
            let st = m.stats();
            for r in TrimReason::ALL {
                out.push((trim_counter(r), st.trimmed[r]));
            }
            out.extend([
                ("session_managed", n(st.sessions)),
                ("session_protected", n(st.protected)),
                ("session_high_share", n(st.high_share)),
                ("session_low_share", n(st.low_share)),
                ("session_trim_rounds", st.rounds),
                ("session_trim_rounds_short", st.rounds_short),
                ("session_tags_refused", st.tags_refused),
            ]);
        }
    }
}

/// The counter name of refusals for `r`.
#[must_use]
pub const fn refusal_counter(r: RefusalReason) -> &'static str {
    match r {
        RefusalReason::Memory => "session_refusals_memory",
        RefusalReason::ShardFull => "session_refusals_shard_full",
        RefusalReason::NodeFull => "session_refusals_node_full",
        RefusalReason::PendingFull => "session_refusals_pending_full",
        RefusalReason::PrefixFull => "session_refusals_prefix_full",
        RefusalReason::PrefixRate => "session_refusals_prefix_rate",
        RefusalReason::PrefixTableFull => "session_refusals_prefix_table_full",
    }
}

/// The counter name of trims for `r`.
#[must_use]
pub const fn trim_counter(r: TrimReason) -> &'static str {
    match r {
        TrimReason::Watermark => "session_trims_watermark",
        TrimReason::Forced => "session_trims_forced",
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
