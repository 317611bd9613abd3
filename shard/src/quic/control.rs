//! Connection control for QUIC: the load signal that turns Retry on, admission control and the
//! connection manager (the session layer's, `session/admission/` and `session/manager/`),
//! wired into a QUIC connection's life on one shard.
//!
//! ```text
//!  first Initial ─► draining / max_connections_per_shard / QuicApp::admit ─no─► refuse
//!     ─► not validated, and Retry always or under load ─► Retry (no state, counted)
//!     ─► admission.check ─no─► refuse (CONNECTION_REFUSED if the reply bucket allows,
//!        │yes                 else ignored; counted by reason: quic_refusals_<reason>)
//!     ─► accept: a handshake in progress; its address and ConnId kept
//!  Connected ─► admission: handshake completed; manager.insert (grace period starts)
//!  freed (any reason) ─► manager.remove; admission: abandoned (never connected) or closed
//!  control timer ─► count-exchange round (reports over the mesh's control lane)
//!                ─► one trim step: ≤ close_batch connections closed with CLOSE_TRIMMED
//! ```
//!
//! **Under load** (for [`RetryMode::UnderLoad`]): the shard holds at least
//! `retry_above_connections` connections, or the handshake-rate bucket
//! (`handshakes_per_second`, each accepted connection takes a token) is empty. A Retry costs the
//! client one round trip and the shard nothing: quinn's Retry token is stateless, and a client
//! that echoes it has proved its address, so it is accepted (and takes a token if one is left)
//! whatever the load.
#![forbid(unsafe_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use super::app::QuicConnId;
use super::config::{QuicConfigError, QuicOptions, RetryMode};
use crate::session::SessionClock;
use crate::session::admission::{
    AdmissionController, LoadReport, RateLimit, RefusalReason, TokenBucket,
};
use crate::session::conn_id::ConnId;
use crate::session::manager::{ConnManager, Pressure, TrimReason};
use crate::session::time::Timestamp;

/// Load reports waiting to be sent at most (each exchange round yields one).
const REPORTS_WAITING: usize = 4;

/// What to do with a new connection's first Initial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Intake {
    /// Answer with a Retry (address validation); `under_load`: because of the load signal
    /// (not [`RetryMode::Always`]).
    Retry { under_load: bool },
    /// Admission refused it: answer with `CONNECTION_REFUSED` if `reply`, else drop it.
    Refuse { reason: RefusalReason, reply: bool },
    /// Accept it (admission, if on, counted a handshake in progress from this address).
    Accept,
}

/// Counters of the load signal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct LoadStats {
    /// Retries sent because the shard held `retry_above_connections` or more.
    pub retries_connections: u64,
    /// Retries sent because new connections came faster than `handshakes_per_second`.
    pub retries_rate: u64,
    /// Load reports sent to other shards.
    pub reports_sent: u64,
    /// Load reports lost (a peer's control lane full or closed, or too many waiting).
    pub reports_lost: u64,
    /// Load reports received.
    pub reports_received: u64,
}

/// One shard's connection control for QUIC (see the module documentation).
pub(super) struct ConnControl {
    clock: SessionClock,
    shards: usize,
    retry: RetryMode,
    retry_above: usize,
    rate: RateLimit,
    bucket: TokenBucket,
    admission: Option<AdmissionController>,
    manager: Option<ConnManager>,
    /// The manager names connections by `ConnId(QuicConnId.0)`; this finds their slots.
    slots: HashMap<u64, usize>,
    reports: VecDeque<LoadReport>,
    pub(super) stats: LoadStats,
}

impl ConnControl {
    pub(super) fn new(
        shard: usize,
        shards: usize,
        options: &QuicOptions,
    ) -> Result<Self, QuicConfigError> {
        let (index, count) = match (u16::try_from(shard), u16::try_from(shards)) {
            (Ok(i), Ok(n)) => (i, n),
            _ => return Err(QuicConfigError::ShardIndex { shard }),
        };
        let clock = options.clock;
        let now = Timestamp::ZERO;
        let admission = options
            .admission
            .clone()
            .map(|cfg| AdmissionController::new(cfg, index, count, now))
            .transpose()
            .map_err(QuicConfigError::Admission)?;
        let capacity = options.admission.as_ref().map_or(0, |a| {
            a.max_sessions_shard.min(options.max_connections_per_shard)
        });
        let manager = options
            .manager
            .clone()
            .map(|cfg| ConnManager::new(cfg, capacity))
            .transpose()
            .map_err(QuicConfigError::Manager)?;
        let per_second = options.handshakes_per_second.max(1);
        Ok(Self {
            clock,
            shards,
            retry: options.retry,
            retry_above: options.retry_above_connections,
            rate: RateLimit::per_second(per_second, (per_second / 10).max(1)),
            bucket: TokenBucket::default(),
            admission,
            manager,
            slots: HashMap::new(),
            reports: VecDeque::new(),
            stats: LoadStats::default(),
        })
    }

    /// The control clock's reading of the loop's `now`.
    pub(super) fn stamp(&self, now: std::time::Instant) -> Timestamp {
        self.clock.stamp(now)
    }

    /// The decision for a new connection's first Initial from `peer` (the host's own checks
    /// passed). `validated`: the Initial carried a valid Retry token; `may_retry`: quinn
    /// allows a Retry for it.
    pub(super) fn intake(
        &mut self,
        now: Timestamp,
        peer: SocketAddr,
        live: usize,
        validated: bool,
        may_retry: bool,
    ) -> Intake {
        if !validated && may_retry {
            match self.retry {
                RetryMode::Always => return Intake::Retry { under_load: false },
                RetryMode::UnderLoad if live >= self.retry_above => {
                    self.stats.retries_connections += 1;
                    return Intake::Retry { under_load: true };
                }
                RetryMode::UnderLoad if !self.bucket.can_take(now, self.rate) => {
                    self.stats.retries_rate += 1;
                    return Intake::Retry { under_load: true };
                }
                _ => {}
            }
        }
        if let Some(adm) = self.admission.as_mut() {
            Self::poll_rounds(adm, &mut self.reports, &mut self.stats, now);
            if let Err(r) = adm.check(now, peer) {
                return Intake::Refuse {
                    reason: r.reason,
                    reply: r.reply,
                };
            }
        }
        // A validated client takes a token if one is left; it is never turned away for it.
        let _ = self.bucket.take(now, self.rate);
        Intake::Accept
    }

    /// An accepted connection's slot, for the manager's trims.
    pub(super) fn accepted(&mut self, id: QuicConnId, slot: usize) {
        self.slots.insert(id.0, slot);
    }

    /// Admission passed but quinn did not accept the connection: its admission ends.
    pub(super) fn not_accepted(&mut self, now: Timestamp, peer: SocketAddr) {
        if let Some(adm) = self.admission.as_mut() {
            adm.handshake_abandoned(now, peer, None);
        }
    }

    /// The handshake of `id` completed: no longer pending; the manager manages it.
    pub(super) fn connected(&mut self, now: Timestamp, id: QuicConnId) {
        if let Some(adm) = self.admission.as_mut() {
            adm.handshake_completed();
        }
        if let Some(m) = self.manager.as_mut() {
            m.insert(now, ConnId(id.0));
        }
    }

    /// Connection `id` has lost `lost_packets` packets so far (quinn's count): the manager's
    /// pressure, which lowers its score (a lossy connection is trimmed first, as a session
    /// whose flight recorder saw drops).
    pub(super) fn note_losses(&mut self, id: QuicConnId, lost_packets: u64) {
        if let Some(m) = self.manager.as_mut() {
            m.set_pressure(
                ConnId(id.0),
                Pressure {
                    drops: lost_packets,
                    ..Pressure::default()
                },
            );
        }
    }

    /// Whether the manager is on (pressure worth reading).
    pub(super) fn manages(&self) -> bool {
        self.manager.is_some()
    }

    /// Connection `id`, admitted from `peer`, was freed; `connected`: its handshake had
    /// completed.
    pub(super) fn freed(
        &mut self,
        now: Timestamp,
        id: QuicConnId,
        peer: SocketAddr,
        connected: bool,
    ) {
        self.slots.remove(&id.0);
        if let Some(m) = self.manager.as_mut() {
            m.remove(ConnId(id.0));
        }
        let Some(adm) = self.admission.as_mut() else {
            return;
        };
        if connected {
            adm.inbound_closed(now, peer, ConnId(id.0));
        } else {
            adm.handshake_abandoned(now, peer, Some(ConnId(id.0)));
        }
    }

    /// When [`ConnControl::run`] has work next: an exchange round (several shards), or a trim
    /// step.
    pub(super) fn due(&self) -> Option<Timestamp> {
        let mut due = None::<Timestamp>;
        let mut at = |t: Timestamp| due = Some(due.map_or(t, |d| d.min(t)));
        if self.shards > 1
            && let Some(adm) = &self.admission
        {
            at(adm.next_round());
        }
        if let Some(t) = self
            .manager
            .as_ref()
            .and_then(|m| m.poll_timeout(Timestamp::ZERO))
        {
            at(t);
        }
        due
    }

    /// The bounded work of one control timer: the exchange round's report, then one trim step.
    /// Calls `trim(slot, reason)` for each connection the manager trimmed (already forgotten
    /// by it).
    pub(super) fn run(&mut self, now: Timestamp, mut trim: impl FnMut(usize, TrimReason)) {
        if let Some(adm) = self.admission.as_mut() {
            Self::poll_rounds(adm, &mut self.reports, &mut self.stats, now);
        }
        let Some(m) = self.manager.as_mut() else {
            return;
        };
        for (conn, reason) in m.trim(now) {
            if let Some(&slot) = self.slots.get(&conn.0) {
                trim(slot, reason);
            }
        }
    }

    /// The next load report to send to every other shard (none with one shard).
    pub(super) fn poll_report(&mut self) -> Option<LoadReport> {
        let r = self.reports.pop_front()?;
        self.update_view();
        (self.shards > 1).then_some(r)
    }

    /// A load report from another shard.
    pub(super) fn on_load_report(&mut self, report: LoadReport) {
        self.stats.reports_received += 1;
        if let Some(adm) = self.admission.as_mut() {
            adm.on_load_report(report);
        }
        self.update_view();
    }

    fn update_view(&mut self) {
        if self.shards > 1
            && let (Some(adm), Some(m)) = (&self.admission, self.manager.as_mut())
        {
            m.set_node_view(adm.node_view());
        }
    }

    fn poll_rounds(
        adm: &mut AdmissionController,
        out: &mut VecDeque<LoadReport>,
        stats: &mut LoadStats,
        now: Timestamp,
    ) {
        while let Some(r) = adm.poll_report(now) {
            if out.len() >= REPORTS_WAITING {
                out.pop_front();
                stats.reports_lost += 1;
            }
            out.push_back(r);
        }
    }

    /// Admission, if on.
    pub(super) fn admission(&self) -> Option<&AdmissionController> {
        self.admission.as_ref()
    }

    /// The connection manager, if on.
    pub(super) fn manager(&self) -> Option<&ConnManager> {
        self.manager.as_ref()
    }

    /// The connection manager, if on (tags, protections, a forced trim).
    pub(super) fn manager_mut(&mut self) -> Option<&mut ConnManager> {
        self.manager.as_mut()
    }

    /// The slot of connection `id` (its key in the live view).
    pub(super) fn slot_of(&self, id: u64) -> Option<usize> {
        self.slots.get(&id).copied()
    }

    /// The keys of every connection held.
    pub(super) fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.slots.keys().copied()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::session::admission::AdmissionConfig;
    use crate::session::manager::ManagerConfig;

    fn addr(i: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, i], 4433))
    }

    fn control(f: impl FnOnce(&mut QuicOptions)) -> ConnControl {
        let mut o = QuicOptions::default();
        f(&mut o);
        ConnControl::new(0, 1, &o).unwrap()
    }

    const T: Timestamp = Timestamp::from_secs(1);

    #[test]
    fn retry_under_load_by_connection_count() {
        let mut c = control(|o| o.retry_above_connections = 2);
        assert_eq!(c.intake(T, addr(1), 1, false, true), Intake::Accept);
        assert_eq!(
            c.intake(T, addr(1), 2, false, true),
            Intake::Retry { under_load: true }
        );
        // A client that echoed a Retry token has proved its address: accepted under load.
        assert_eq!(c.intake(T, addr(1), 2, true, false), Intake::Accept);
        assert_eq!(c.stats.retries_connections, 1);
    }

    #[test]
    fn retry_under_load_by_handshake_rate() {
        // 10 per second, burst 1: the second new connection in the same instant is retried,
        // and a tenth of a second later the bucket has a token again.
        let mut c = control(|o| o.handshakes_per_second = 10);
        assert_eq!(c.intake(T, addr(1), 0, false, true), Intake::Accept);
        assert_eq!(
            c.intake(T, addr(2), 1, false, true),
            Intake::Retry { under_load: true }
        );
        let later = T.saturating_add(Duration::from_millis(100));
        assert_eq!(c.intake(later, addr(2), 1, false, true), Intake::Accept);
        assert_eq!(c.stats.retries_rate, 1);
    }

    #[test]
    fn retry_always_and_never() {
        let mut c = control(|o| o.retry = RetryMode::Always);
        assert_eq!(
            c.intake(T, addr(1), 0, false, true),
            Intake::Retry { under_load: false }
        );
        assert_eq!(c.intake(T, addr(1), 0, true, false), Intake::Accept);
        let mut c = control(|o| {
            o.retry = RetryMode::Never;
            o.retry_above_connections = 0;
        });
        assert_eq!(c.intake(T, addr(1), 5, false, true), Intake::Accept);
    }

    #[test]
    fn admission_refuses_by_reason_and_releases_on_free() {
        let mut c = control(|o| {
            o.admission = Some(AdmissionConfig {
                max_sessions_per_prefix: 1,
                ..AdmissionConfig::default()
            });
        });
        assert_eq!(c.intake(T, addr(1), 0, false, true), Intake::Accept);
        let id = QuicConnId(7);
        c.accepted(id, 3);
        assert!(matches!(
            c.intake(T, addr(1), 1, false, true),
            Intake::Refuse {
                reason: RefusalReason::PrefixFull,
                ..
            }
        ));
        // Another address is another prefix.
        assert_eq!(c.intake(T, addr(2), 1, false, true), Intake::Accept);
        c.not_accepted(T, addr(2));
        c.connected(T, id);
        assert_eq!(c.admission().unwrap().stats().pending, 0);
        c.freed(T, id, addr(1), true);
        assert_eq!(c.admission().unwrap().sessions(), 0);
        assert_eq!(c.intake(T, addr(1), 0, false, true), Intake::Accept);
        let a = c.admission().unwrap().stats();
        assert_eq!(a.refused[RefusalReason::PrefixFull], 1);
        assert_eq!(a.unbalanced, 0);
    }

    #[test]
    fn the_manager_trims_connected_connections_above_the_high_watermark() {
        let mut c = control(|o| {
            o.manager = Some(ManagerConfig {
                high_watermark: 2,
                low_watermark: 1,
                grace_period: Duration::ZERO,
                ..ManagerConfig::default()
            });
        });
        for i in 0..3u64 {
            c.accepted(QuicConnId(i), i as usize);
            c.connected(T, QuicConnId(i));
        }
        assert!(c.due().is_some_and(|t| t <= T));
        let mut trimmed = Vec::new();
        c.run(T, |slot, reason| trimmed.push((slot, reason)));
        assert_eq!(trimmed.len(), 2, "{trimmed:?}");
        assert!(trimmed.iter().all(|&(_, r)| r == TrimReason::Watermark));
        for &(slot, _) in &trimmed {
            c.freed(T, QuicConnId(slot as u64), addr(1), true);
        }
        assert_eq!(c.manager().unwrap().len(), 1);
        assert_eq!(c.due(), None);
    }

    #[test]
    fn lossy_connections_are_trimmed_first() {
        let mut c = control(|o| {
            o.manager = Some(ManagerConfig {
                high_watermark: 3,
                low_watermark: 2,
                grace_period: Duration::ZERO,
                ..ManagerConfig::default()
            });
        });
        for i in 0..4u64 {
            c.accepted(QuicConnId(i), i as usize);
            c.connected(T, QuicConnId(i));
        }
        c.note_losses(QuicConnId(2), 1000);
        let mut trimmed = Vec::new();
        c.run(T, |slot, _| trimmed.push(slot));
        assert_eq!(trimmed.len(), 2, "{trimmed:?}");
        assert_eq!(trimmed[0], 2, "the lossy one first: {trimmed:?}");
    }
}
