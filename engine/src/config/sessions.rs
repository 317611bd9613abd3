//! The `[sessions.admission]` and `[sessions.manager]` tables: admission control and the
//! connection manager of a session app (`docs/CONFIG.md` justifies every default).
#![forbid(unsafe_code)]

use std::time::Duration;

use ringwire_shard::session::admission::{AdmissionConfig, BudgetConfig, PrefixLengths, RateLimit};
use ringwire_shard::session::manager::{ManagerConfig, PressureWeights};

use super::{ConfigError, TableErrors};

/// The `[sessions]` table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(deny_unknown_fields, default)
)]
#[non_exhaustive]
pub struct SessionsConfig {
    /// `[sessions.admission]`.
    pub admission: AdmissionTable,
    /// `[sessions.manager]`.
    pub manager: ManagerTable,
}

/// `[sessions.admission]`: limits checked before a session exists.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(deny_unknown_fields, default)
)]
#[non_exhaustive]
pub struct AdmissionTable {
    /// Sessions one shard holds at most (handshakes in progress included).
    pub max_sessions_shard: usize,
    /// Sessions the node holds at most (all shards).
    pub max_sessions_node: usize,
    /// Handshakes in progress on one shard at most.
    pub max_pending_handshakes: usize,
    /// IPv4 source prefix length that counts as one source.
    pub prefix_v4: u8,
    /// IPv6 source prefix length that counts as one source.
    pub prefix_v6: u8,
    /// Sessions one source prefix holds node-wide at most.
    pub max_sessions_per_prefix: usize,
    /// New sessions one source prefix may open per second, node-wide.
    pub new_sessions_per_prefix_per_second: u32,
    /// ... and at once.
    pub new_sessions_per_prefix_burst: u32,
    /// Entries of one shard's source-prefix table.
    pub prefix_table_capacity: usize,
    /// Refusal replies (`Refused`) one shard sends per second at most.
    pub refusal_replies_per_second: u32,
    /// ... and at once.
    pub refusal_replies_burst: u32,
    /// How often shards exchange their session counts, in milliseconds.
    pub exchange_interval_ms: u64,
    /// Hard bound on one shard's accounted session memory, in bytes (absent: the table's
    /// default; for `[quic.admission]` the QUIC one).
    pub memory_limit: Option<usize>,
    /// New sessions are refused above this, in bytes.
    pub memory_session_limit: Option<usize>,
    /// Above this the largest queues are shed, in bytes.
    pub memory_shed_above: Option<usize>,
    /// Bytes one session is charged for its state.
    pub session_cost: Option<usize>,
}

impl Default for AdmissionTable {
    fn default() -> Self {
        let a = AdmissionConfig::default();
        AdmissionTable {
            max_sessions_shard: a.max_sessions_shard,
            max_sessions_node: a.max_sessions_node,
            max_pending_handshakes: a.max_pending_handshakes,
            prefix_v4: a.prefix_lengths.v4,
            prefix_v6: a.prefix_lengths.v6,
            max_sessions_per_prefix: a.max_sessions_per_prefix,
            new_sessions_per_prefix_per_second: 20,
            new_sessions_per_prefix_burst: a.new_sessions_per_prefix.burst(),
            prefix_table_capacity: a.prefix_table_capacity,
            refusal_replies_per_second: 1000,
            refusal_replies_burst: a.refusal_replies.burst(),
            exchange_interval_ms: u64::try_from(a.exchange_interval.as_millis())
                .unwrap_or(u64::MAX),
            memory_limit: None,
            memory_session_limit: None,
            memory_shed_above: None,
            session_cost: None,
        }
    }
}

/// `[sessions.manager]`: which sessions a node keeps when it holds too many.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(deny_unknown_fields, default)
)]
#[non_exhaustive]
pub struct ManagerTable {
    /// Node-wide: trimming brings the node down to this many sessions.
    pub low_watermark: usize,
    /// Node-wide: the node trims when it holds more than this.
    pub high_watermark: usize,
    /// A session younger than this is never trimmed, in milliseconds.
    pub grace_period_ms: u64,
    /// At most one trim round per this many milliseconds (a forced trim excepted).
    pub silence_period_ms: u64,
    /// Sessions one trim step scores at most.
    pub trim_batch: usize,
    /// Sessions one trim step closes at most.
    pub close_batch: usize,
    /// Tags, decaying values and protections one session holds at most.
    pub max_tags_per_session: usize,
    /// Decaying tags one shard registers at most.
    pub max_decaying_tags: usize,
    /// Score lowered per bit of a session's drop count.
    pub pressure_drops: i64,
    /// Score lowered per bit of a session's queue high water.
    pub pressure_queue_high_water: i64,
    /// Score lowered per unanswered ping.
    pub pressure_unanswered_ping: i64,
}

impl Default for ManagerTable {
    fn default() -> Self {
        let m = ManagerConfig::default();
        let p = PressureWeights::default();
        ManagerTable {
            low_watermark: m.low_watermark,
            high_watermark: m.high_watermark,
            grace_period_ms: u64::try_from(m.grace_period.as_millis()).unwrap_or(u64::MAX),
            silence_period_ms: u64::try_from(m.silence_period.as_millis()).unwrap_or(u64::MAX),
            trim_batch: m.trim_batch,
            close_batch: m.close_batch,
            max_tags_per_session: m.max_tags_per_session,
            max_decaying_tags: m.max_decaying_tags,
            pressure_drops: p.drops,
            pressure_queue_high_water: p.queue_high_water,
            pressure_unanswered_ping: p.unanswered_ping,
        }
    }
}

/// What the `[sessions]` tables resolve to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionsSettings {
    /// Admission control for every shard.
    pub admission: AdmissionConfig,
    /// The connection manager of every shard.
    pub manager: ManagerConfig,
}

impl SessionsConfig {
    /// Checks every value; the settings, or every error (keys spelled as in the file).
    pub fn resolve(&self) -> Result<SessionsSettings, Vec<ConfigError>> {
        self.resolve_in(
            ["sessions.admission", "sessions.manager"],
            BudgetConfig::default(),
        )
    }

    /// [`SessionsConfig::resolve`] for the same two tables under other names (`[quic.admission]`
    /// and `[quic.manager]`), errors named there, the memory-budget keys not set taken from
    /// `memory`.
    pub fn resolve_in(
        &self,
        [admission_table, manager_table]: [&'static str; 2],
        memory: BudgetConfig,
    ) -> Result<SessionsSettings, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut table = TableErrors::new(admission_table, &mut errors);
        let a = &self.admission;
        let m = &self.manager;
        let mut admission = AdmissionConfig::default();
        admission.max_sessions_shard = a.max_sessions_shard;
        admission.max_sessions_node = a.max_sessions_node;
        admission.max_pending_handshakes = a.max_pending_handshakes;
        admission.prefix_lengths = prefix_lengths(a.prefix_v4, a.prefix_v6);
        admission.max_sessions_per_prefix = a.max_sessions_per_prefix;
        admission.new_sessions_per_prefix = RateLimit::per_second(
            a.new_sessions_per_prefix_per_second,
            a.new_sessions_per_prefix_burst,
        );
        admission.prefix_table_capacity = a.prefix_table_capacity;
        admission.refusal_replies =
            RateLimit::per_second(a.refusal_replies_per_second, a.refusal_replies_burst);
        admission.exchange_interval = Duration::from_millis(a.exchange_interval_ms);
        admission.memory = budget(a, memory);
        let rates = [
            (
                "new_sessions_per_prefix_per_second",
                a.new_sessions_per_prefix_per_second,
            ),
            (
                "new_sessions_per_prefix_burst",
                a.new_sessions_per_prefix_burst,
            ),
            ("refusal_replies_per_second", a.refusal_replies_per_second),
            ("refusal_replies_burst", a.refusal_replies_burst),
        ];
        for (key, v) in rates {
            if !(1..=1_000_000_000).contains(&v) {
                table.invalid(key, v, "1 to 1000000000");
            }
        }
        if let Err(e) = admission.validate() {
            let (key, allowed) = match e.key {
                "prefix_lengths" => ("prefix_v4", "prefix_v4 in 1..=32, prefix_v6 in 1..=128"),
                "memory" => (
                    "memory_limit",
                    "1 <= session_cost <= memory_session_limit <= memory_shed_above <= memory_limit",
                ),
                "exchange_interval" => ("exchange_interval_ms", "at least 1"),
                key => (key, e.allowed),
            };
            table.invalid(key, e.value, allowed);
        }
        let mut table = TableErrors::new(manager_table, &mut errors);
        let mut manager = ManagerConfig::default();
        manager.low_watermark = m.low_watermark;
        manager.high_watermark = m.high_watermark;
        manager.grace_period = Duration::from_millis(m.grace_period_ms);
        manager.silence_period = Duration::from_millis(m.silence_period_ms);
        manager.trim_batch = m.trim_batch;
        manager.close_batch = m.close_batch;
        manager.max_tags_per_session = m.max_tags_per_session;
        manager.max_decaying_tags = m.max_decaying_tags;
        let mut p = PressureWeights::default();
        p.drops = m.pressure_drops;
        p.queue_high_water = m.pressure_queue_high_water;
        p.unanswered_ping = m.pressure_unanswered_ping;
        manager.pressure = p;
        for (key, w) in [
            ("pressure_drops", m.pressure_drops),
            ("pressure_queue_high_water", m.pressure_queue_high_water),
            ("pressure_unanswered_ping", m.pressure_unanswered_ping),
        ] {
            if !(0..=1_000_000).contains(&w) {
                table.invalid(key, w, "0 to 1000000");
            }
        }
        if let Err(e) = manager.validate() {
            table.invalid(e.key, e.value, e.allowed);
        }
        if m.high_watermark > a.max_sessions_node {
            table.invalid(
                "high_watermark",
                m.high_watermark,
                format!(
                    "at most {admission_table}.max_sessions_node ({}): the node never holds more",
                    a.max_sessions_node
                ),
            );
        }
        if errors.is_empty() {
            Ok(SessionsSettings { admission, manager })
        } else {
            Err(errors)
        }
    }
}

fn prefix_lengths(v4: u8, v6: u8) -> PrefixLengths {
    PrefixLengths { v4, v6 }
}

fn budget(a: &AdmissionTable, base: BudgetConfig) -> BudgetConfig {
    let mut b = base;
    b.limit = a.memory_limit.unwrap_or(base.limit);
    b.session_limit = a.memory_session_limit.unwrap_or(base.session_limit);
    b.shed_above = a.memory_shed_above.unwrap_or(base.shed_above);
    b.session_cost = a.session_cost.unwrap_or(base.session_cost);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_libraries_defaults() {
        let s = SessionsConfig::default().resolve().ok();
        let s = s.as_ref();
        assert_eq!(s.map(|s| &s.admission), Some(&AdmissionConfig::default()));
        assert_eq!(s.map(|s| &s.manager), Some(&ManagerConfig::default()));
    }

    #[test]
    fn every_bad_value_names_its_key() {
        let mut c = SessionsConfig::default();
        c.admission.max_sessions_shard = 0;
        c.admission.new_sessions_per_prefix_burst = 0;
        c.manager.low_watermark = c.manager.high_watermark + 1;
        c.manager.pressure_drops = -1;
        let errors = c.resolve().err().unwrap_or_default();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        for key in [
            "sessions.admission.max_sessions_shard",
            "sessions.admission.new_sessions_per_prefix_burst",
            "sessions.manager.low_watermark",
            "sessions.manager.pressure_drops",
        ] {
            assert!(text.iter().any(|t| t.contains(key)), "{key}: {text:?}");
        }
    }
}
