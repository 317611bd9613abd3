//! Admission control: whether a peer that has proved its address may have a session, decided
//! before any session state exists or any key-exchange work is done.
//!
//! One [`AdmissionController`] per shard, sans-IO: it takes `now` and the peer's address and
//! returns a decision; it holds no socket and reads no clock. The checks, in order (the first
//! that fails names the [`RefusalReason`], counted once):
//!
//! | check | limit | scope |
//! |---|---|---|
//! | memory budget | [`BudgetConfig::session_limit`] | shard |
//! | sessions | `max_sessions_shard` | shard |
//! | sessions | this round's ceiling, from `max_sessions_node` and the count exchange (`node.rs`) | node |
//! | handshakes in progress | `max_pending_handshakes` | shard |
//! | sessions per source prefix | `max_sessions_per_prefix` | node, split among shards |
//! | new sessions per source prefix | `new_sessions_per_prefix` (token bucket) | node, split among shards |
//!
//! Global checks come first: they cost nothing, and when the shard is full the reason says
//! so rather than blaming a prefix. A refused peer may get one reply ([`Refusal::reply`]),
//! rate-limited per shard. Nothing is recorded for a refused peer.
//!
//! Per-prefix limits are configured node-wide and each shard enforces its part
//! (`⌈limit / shards⌉`, [`RateLimit::split`]): a source's flows reach shards by the kernel's
//! reuseport hash, i.e. evenly, so no shard needs another's per-prefix state.
//!
//! The host reports each admitted session's life: [`AdmissionController::handshake_completed`],
//! then [`AdmissionController::inbound_closed`]; or
//! [`AdmissionController::handshake_abandoned`]. Sessions this shard opens itself pass
//! [`AdmissionController::check_outbound`] (the shard and node caps and the memory budget;
//! no per-prefix limit applies to a peer the application chose) and end with
//! [`AdmissionController::outbound_closed`]. Every admission attempt is counted exactly once:
//! `attempts = admitted + admitted_outbound + refused.total()`.
#![forbid(unsafe_code)]

mod bucket;
mod budget;
mod node;
mod prefix;
mod reason;
mod table;

use std::net::SocketAddr;
use std::time::Duration;

pub use bucket::{RateLimit, TokenBucket};
pub use budget::{BudgetConfig, BudgetStats, MemoryBudget, Shed};
pub use node::{LoadReport, NodeStats, NodeView};
pub use prefix::{Prefix, PrefixLengths};
pub use reason::{Refusal, RefusalCounters, RefusalReason};
pub use table::PrefixTableStats;

use super::conn_id::{ConnId, MAX_SHARDS};
use super::time::Timestamp;
use node::NodeLoad;
use table::PrefixTable;

/// Idle prefix entries whose buckets have refilled that one check deletes at most.
const SWEEP_PER_CHECK: usize = 2;

/// Admission limits. Start from [`AdmissionConfig::default`] and set what you need; every
/// default is justified in `docs/CONFIG.md`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AdmissionConfig {
    /// Sessions one shard holds at most (pending handshakes included). Default 65,536.
    pub max_sessions_shard: usize,
    /// Sessions the whole node holds at most, kept by the count exchange. Default 262,144.
    pub max_sessions_node: usize,
    /// Handshakes in progress on one shard at most. Default 4096.
    pub max_pending_handshakes: usize,
    /// What a source prefix is. Default IPv4 /32, IPv6 /64.
    pub prefix_lengths: PrefixLengths,
    /// Sessions one source prefix holds node-wide at most (each shard enforces
    /// `⌈this / shards⌉`). Default 1024.
    pub max_sessions_per_prefix: usize,
    /// New sessions one source prefix may open node-wide (each shard enforces its
    /// [`RateLimit::split`]). Default 20 per second, burst 5 (WireGuard's handshake limit).
    pub new_sessions_per_prefix: RateLimit,
    /// Entries of one shard's prefix table; at least `max_sessions_shard`. Default 81,920.
    pub prefix_table_capacity: usize,
    /// Refusal replies one shard sends. Default 1000 per second, burst 100.
    pub refusal_replies: RateLimit,
    /// How often shards exchange their counts. Default 100 ms.
    pub exchange_interval: Duration,
    /// The shard's memory budget.
    pub memory: BudgetConfig,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            max_sessions_shard: 65_536,
            max_sessions_node: 262_144,
            max_pending_handshakes: 4096,
            prefix_lengths: PrefixLengths::default(),
            max_sessions_per_prefix: 1024,
            new_sessions_per_prefix: RateLimit::per_second(20, 5),
            prefix_table_capacity: 81_920,
            refusal_replies: RateLimit::per_second(1000, 100),
            exchange_interval: Duration::from_millis(100),
            memory: BudgetConfig::default(),
        }
    }
}

/// An admission setting outside its allowed range; names the setting and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid admission setting `{key}` = {value}: allowed {allowed}")]
#[non_exhaustive]
pub struct AdmissionConfigError {
    /// The setting's name.
    pub key: &'static str,
    /// The rejected value.
    pub value: String,
    /// What would have been accepted.
    pub allowed: &'static str,
}

impl AdmissionConfig {
    /// Checks every setting against its allowed range.
    pub fn validate(&self) -> Result<(), AdmissionConfigError> {
        let err = |key, value: &dyn std::fmt::Debug, allowed| AdmissionConfigError {
            key,
            value: format!("{value:?}"),
            allowed,
        };
        let u32_max = u32::MAX as usize;
        if !(1..=u32_max).contains(&self.max_sessions_shard) {
            return Err(err(
                "max_sessions_shard",
                &self.max_sessions_shard,
                "1 to 2^32 - 1",
            ));
        }
        if self.max_sessions_node == 0 {
            return Err(err(
                "max_sessions_node",
                &self.max_sessions_node,
                "at least 1",
            ));
        }
        if self.max_pending_handshakes == 0 {
            return Err(err(
                "max_pending_handshakes",
                &self.max_pending_handshakes,
                "at least 1",
            ));
        }
        if !self.prefix_lengths.is_valid() {
            return Err(err(
                "prefix_lengths",
                &self.prefix_lengths,
                "v4 in 1..=32, v6 in 1..=128",
            ));
        }
        if !(1..=u32_max).contains(&self.max_sessions_per_prefix) {
            return Err(err(
                "max_sessions_per_prefix",
                &self.max_sessions_per_prefix,
                "1 to 2^32 - 1",
            ));
        }
        if self.prefix_table_capacity < self.max_sessions_shard
            || self.prefix_table_capacity >= u32_max
        {
            return Err(err(
                "prefix_table_capacity",
                &self.prefix_table_capacity,
                "at least max_sessions_shard, below 2^32 - 1",
            ));
        }
        if self.exchange_interval < Duration::from_millis(1) {
            return Err(err(
                "exchange_interval",
                &self.exchange_interval,
                "at least 1 ms",
            ));
        }
        if !self.memory.is_valid() {
            return Err(err(
                "memory",
                &self.memory,
                "session_cost <= session_limit <= shed_above <= limit, session_cost >= 1",
            ));
        }
        Ok(())
    }
}

/// Why [`AdmissionController::new`] refused its arguments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdmissionError {
    /// A setting is out of range.
    #[error(transparent)]
    Config(#[from] AdmissionConfigError),
    /// `shards` must be in `1..=256` and `shard` below it.
    #[error("shard {shard} of {shards}: need 1 <= shards <= 256 and shard < shards")]
    Placement {
        /// The shard index given.
        shard: u16,
        /// The shard count given.
        shards: u16,
    },
}

/// Counters and levels of one shard's admission.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AdmissionStats {
    /// Sessions held now (pending handshakes included, outbound included).
    pub sessions: usize,
    /// Inbound handshakes in progress now.
    pub pending: usize,
    /// Inbound sessions admitted.
    pub admitted: u64,
    /// Outbound sessions admitted.
    pub admitted_outbound: u64,
    /// Refusals by reason (inbound and outbound).
    pub refused: RefusalCounters,
    /// Refusals that were granted a reply.
    pub replies: u64,
    /// Refusals whose reply the per-shard bucket withheld.
    pub replies_suppressed: u64,
    /// Session or handshake ends reported with nothing to end (a host accounting error;
    /// ignored).
    pub unbalanced: u64,
    /// The prefix table.
    pub prefixes: PrefixTableStats,
    /// The memory budget.
    pub memory: BudgetStats,
    /// The count exchange.
    pub node: NodeStats,
}

/// One shard's admission control. See the module documentation.
#[derive(Debug)]
pub struct AdmissionController {
    cfg: AdmissionConfig,
    /// This shard's part of the per-prefix limits.
    prefix_cap: u32,
    prefix_rate: RateLimit,
    sessions: usize,
    pending: usize,
    table: PrefixTable,
    replies: TokenBucket,
    budget: MemoryBudget,
    node: NodeLoad,
    stats: AdmissionStats,
}

impl AdmissionController {
    /// Admission for shard `shard` of `shards`, holding no session at `now` (the server's
    /// session clock, the same origin on every shard).
    pub fn new(
        cfg: AdmissionConfig,
        shard: u16,
        shards: u16,
        now: Timestamp,
    ) -> Result<Self, AdmissionError> {
        cfg.validate()?;
        if shards == 0 || shards > MAX_SHARDS || shard >= shards {
            return Err(AdmissionError::Placement { shard, shards });
        }
        let prefix_cap = u32::try_from(cfg.max_sessions_per_prefix.div_ceil(usize::from(shards)))
            .unwrap_or(u32::MAX);
        Ok(AdmissionController {
            prefix_cap,
            prefix_rate: cfg.new_sessions_per_prefix.split(shards),
            sessions: 0,
            pending: 0,
            table: PrefixTable::new(cfg.prefix_table_capacity),
            replies: TokenBucket::default(),
            budget: MemoryBudget::new(cfg.memory),
            node: NodeLoad::new(
                shard,
                shards,
                cfg.max_sessions_node,
                cfg.max_sessions_shard,
                cfg.exchange_interval,
                now,
            ),
            stats: AdmissionStats::default(),
            cfg,
        })
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &AdmissionConfig {
        &self.cfg
    }

    /// This shard's part of the per-prefix limits: sessions, and the new-session rate.
    #[must_use]
    pub fn prefix_limits(&self) -> (u32, RateLimit) {
        (self.prefix_cap, self.prefix_rate)
    }

    /// May `peer`, whose address is proven (it echoed a valid cookie), start a handshake?
    ///
    /// `Ok`: the session is counted (a pending handshake of `peer`'s prefix, charged to the
    /// memory budget) and the caller must later report its end. `Err`:
    /// nothing was recorded; the refusal is counted and says whether one reply may be sent.
    pub fn check(&mut self, now: Timestamp, peer: SocketAddr) -> Result<(), Refusal> {
        self.table.sweep(now, SWEEP_PER_CHECK);
        if let Some(reason) = self.global_refusal() {
            return Err(self.refuse(now, reason));
        }
        if self.pending >= self.cfg.max_pending_handshakes {
            return Err(self.refuse(now, RefusalReason::PendingFull));
        }
        let prefix = Prefix::of(peer.ip(), self.cfg.prefix_lengths);
        if let Some(st) = self.table.get(&prefix) {
            if st.sessions >= self.prefix_cap {
                return Err(self.refuse(now, RefusalReason::PrefixFull));
            }
            if !st.bucket.can_take(now, self.prefix_rate) {
                return Err(self.refuse(now, RefusalReason::PrefixRate));
            }
        }
        if !self.table.admit(now, prefix, self.prefix_rate) {
            return Err(self.refuse(now, RefusalReason::PrefixTableFull));
        }
        self.count_session();
        self.pending += 1;
        self.stats.admitted += 1;
        Ok(())
    }

    /// May this shard open a session to a peer its application chose? Only the memory budget
    /// and the shard and node caps apply. `Ok`: counted; report its end with
    /// [`AdmissionController::outbound_closed`].
    pub fn check_outbound(&mut self, now: Timestamp) -> Result<(), Refusal> {
        if let Some(reason) = self.global_refusal() {
            return Err(self.refuse(now, reason));
        }
        self.count_session();
        self.stats.admitted_outbound += 1;
        Ok(())
    }

    /// An admitted inbound handshake completed: the session stays, no longer pending.
    pub fn handshake_completed(&mut self) {
        self.end_pending();
    }

    /// An admitted inbound handshake ended without a session (timed out, failed). `conn`:
    /// its connection ID if it had one (releases any bytes it queued).
    pub fn handshake_abandoned(&mut self, now: Timestamp, peer: SocketAddr, conn: Option<ConnId>) {
        self.end_pending();
        self.release_inbound(now, peer, conn);
    }

    /// An inbound session whose handshake had completed ended (any reason, trims included).
    /// `peer` is the address it was admitted from.
    pub fn inbound_closed(&mut self, now: Timestamp, peer: SocketAddr, conn: ConnId) {
        self.release_inbound(now, peer, Some(conn));
    }

    /// A session admitted by [`AdmissionController::check_outbound`] ended.
    pub fn outbound_closed(&mut self, conn: ConnId) {
        self.release_session(Some(conn));
    }

    /// The memory budget, to read.
    #[must_use]
    pub fn budget(&self) -> &MemoryBudget {
        &self.budget
    }

    /// The memory budget, for the host to charge and release queued and handoff bytes and to
    /// take shedding decisions from.
    pub fn budget_mut(&mut self) -> &mut MemoryBudget {
        &mut self.budget
    }

    /// The [`LoadReport`] to send to every other shard, when a count-exchange round began:
    /// call at [`AdmissionController::next_round`] (and once after creation), until `None`.
    pub fn poll_report(&mut self, now: Timestamp) -> Option<LoadReport> {
        self.node.poll(now, self.sessions)
    }

    /// When the next count-exchange round begins.
    #[must_use]
    pub fn next_round(&self) -> Timestamp {
        self.node.next_round()
    }

    /// A report another shard published.
    pub fn on_load_report(&mut self, report: LoadReport) {
        self.node.on_report(report);
    }

    /// Sessions the other shards hold, by their latest reports.
    #[must_use]
    pub fn peer_sessions(&self) -> usize {
        self.node.peer_sessions()
    }

    /// The node's load as the count exchange knows it: what the connection manager needs to
    /// compute this shard's share of the watermarks (`ConnManager::set_node_view`).
    #[must_use]
    pub fn node_view(&self) -> NodeView {
        self.node.view()
    }

    /// Sessions this shard holds now (pending handshakes included).
    #[must_use]
    pub fn sessions(&self) -> usize {
        self.sessions
    }

    /// Counters and levels now.
    #[must_use]
    pub fn stats(&self) -> AdmissionStats {
        AdmissionStats {
            sessions: self.sessions,
            pending: self.pending,
            prefixes: self.table.stats(),
            memory: self.budget.stats(),
            node: self.node.stats(),
            ..self.stats
        }
    }

    fn global_refusal(&self) -> Option<RefusalReason> {
        if !self.budget.has_room_for_session() {
            Some(RefusalReason::Memory)
        } else if self.sessions >= self.cfg.max_sessions_shard {
            Some(RefusalReason::ShardFull)
        } else if !self.node.has_room(self.sessions) {
            Some(RefusalReason::NodeFull)
        } else {
            None
        }
    }

    fn refuse(&mut self, now: Timestamp, reason: RefusalReason) -> Refusal {
        self.stats.refused.bump(reason);
        let reply = self.replies.take(now, self.cfg.refusal_replies);
        if reply {
            self.stats.replies += 1;
        } else {
            self.stats.replies_suppressed += 1;
        }
        Refusal { reason, reply }
    }

    fn count_session(&mut self) {
        self.sessions += 1;
        self.budget.charge_session();
    }

    fn end_pending(&mut self) {
        if self.pending == 0 {
            self.stats.unbalanced += 1;
        } else {
            self.pending -= 1;
        }
    }

    fn release_inbound(&mut self, now: Timestamp, peer: SocketAddr, conn: Option<ConnId>) {
        let prefix = Prefix::of(peer.ip(), self.cfg.prefix_lengths);
        self.table.release(now, &prefix);
        self.release_session(conn);
    }

    fn release_session(&mut self, conn: Option<ConnId>) {
        if self.sessions == 0 {
            self.stats.unbalanced += 1;
        } else {
            self.sessions -= 1;
        }
        self.budget.release_session(conn);
    }
}

#[cfg(test)]
mod tests;
