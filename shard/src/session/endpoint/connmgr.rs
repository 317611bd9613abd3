//! Admission control and the connection manager, wired into the endpoint's session life.
//!
//! ```text
//!  Initiation ─► mac1 ─► route ─► load / mac2 ─► queue room ─► admission.check ─┬─ Ok: queued
//!                                                                               └─ Err: Refused
//!                                                         (rate-limited, 40 B, counted by reason)
//!  connect ─► admission.check_outbound
//!  Connected (either role) ─► manager.insert; a responder's handshake completes in admission
//!  session freed ─► manager.remove; admission: abandoned / inbound_closed / outbound_closed
//!  Data queued / sent / dropped ─► memory budget charged / released
//!  handle_timeout ─► shed the largest queues (bounded) ─► trim step (bounded) ─► Close(Trimmed)
//! ```
//!
//! Nothing here runs for a datagram without a valid mac1, and a refusal creates no state.
//! Every admitted handshake is released exactly once: when its queued Initiation is dropped
//! or answers an existing session, or when the session it became is freed.
#![forbid(unsafe_code)]

use std::net::SocketAddr;

use super::super::admission::{AdmissionController, LoadReport, MemoryBudget, RefusalReason, Shed};
use super::super::conn_id::ConnId;
use super::super::crypto::MAC_LEN;
use super::super::drop_reason::DropReason;
use super::super::event::{CloseReason, Closer, ConnectError, Handled};
use super::super::manager::{ConnManager, Pressure};
use super::super::state::{Phase, Role, Session};
use super::super::time::Timestamp;
use super::super::wire::{self, MsgType, REFUSED_LEN, field};
use super::Endpoint;
use crate::session::control::Priority;

/// Queues one `handle_timeout` call sheds at most (each drops at most `data_queue_capacity`
/// messages).
const SHED_PER_CALL: usize = 16;

/// Load reports waiting for the host to send them at most (each round yields one; the host
/// drains them every loop turn).
const REPORTS_WAITING: usize = 4;

impl Endpoint {
    /// Admission of a new inbound handshake from `from` (its mac1 verified, its address proven
    /// when under load). `Err`: refused and counted (`DropReason::Refused`, and the reason in
    /// the admission counters), with at most one rate-limited `Refused` reply.
    pub(super) fn admit_initiation(
        &mut self,
        now: Timestamp,
        from: SocketAddr,
        initiator_conn_id: u64,
        attempt: u64,
        mac1: &[u8; MAC_LEN],
    ) -> Result<(), Handled> {
        let Some(adm) = self.admission.as_mut() else {
            return Ok(());
        };
        Self::poll_rounds(adm, &mut self.reports_out, &mut self.stats, now);
        match adm.check(now, from) {
            Ok(()) => Ok(()),
            Err(refusal) => {
                if refusal.reply {
                    self.send_refused(from, initiator_conn_id, attempt, refusal.reason, mac1);
                }
                Err(self.dropped(DropReason::Refused, None))
            }
        }
    }

    /// The one reply a refusal may draw: `Refused`, 40 bytes, echoing the Initiation's
    /// initiator CID, attempt and mac1 (so only whoever saw the Initiation could forge it).
    fn send_refused(
        &mut self,
        to: SocketAddr,
        initiator_conn_id: u64,
        attempt: u64,
        reason: RefusalReason,
        mac1: &[u8; MAC_LEN],
    ) {
        if !self.control.has_room_for(Priority::Stateless) {
            self.stats.control_dropped += 1;
            return;
        }
        let mut frame = [0u8; REFUSED_LEN];
        wire::write_header(&mut frame, MsgType::Refused, 0, initiator_conn_id, attempt);
        let code = u16::try_from(reason.index()).unwrap_or(u16::MAX);
        frame[field::REFUSED_REASON].copy_from_slice(&code.to_be_bytes());
        frame[field::REFUSED_MAC1].copy_from_slice(mac1);
        let _room_checked = self.control.push(Priority::Stateless, to, None, &frame);
        self.stats.refused_sent += 1;
    }

    /// Admission of a session this endpoint opens itself (shard and node caps, the memory
    /// budget; no per-prefix limit applies to a peer the application chose).
    pub(super) fn admit_outbound(&mut self, now: Timestamp) -> Result<(), ConnectError> {
        let Some(adm) = self.admission.as_mut() else {
            return Ok(());
        };
        Self::poll_rounds(adm, &mut self.reports_out, &mut self.stats, now);
        adm.check_outbound(now)
            .map_err(|r| ConnectError::Refused(r.reason))
    }

    /// An admitted queued Initiation from `from` did not become a new session (dropped, or
    /// it answered an existing one): its admission ends.
    pub(super) fn initiation_released(&mut self, now: Timestamp, from: SocketAddr) {
        if let Some(adm) = self.admission.as_mut() {
            adm.handshake_abandoned(now, from, None);
        }
    }

    /// A session completed its handshake and is shown to the application: the manager
    /// manages it from now (its grace period starts), and a responder's pending handshake
    /// becomes a session.
    pub(super) fn session_connected(&mut self, now: Timestamp, cid: ConnId, role: Role) {
        if role == Role::Server
            && let Some(adm) = self.admission.as_mut()
        {
            adm.handshake_completed();
        }
        if let Some(m) = self.manager.as_mut() {
            m.insert(now, cid);
        }
    }

    /// Session `cid`, just removed from the table, ends: the manager forgets it, and its
    /// admission (and any bytes it still had queued) is released.
    pub(super) fn session_freed(&mut self, now: Timestamp, cid: ConnId, s: &Session) {
        if let Some(m) = self.manager.as_mut() {
            m.remove(cid);
        }
        let Some(adm) = self.admission.as_mut() else {
            return;
        };
        match (s.role, &s.phase) {
            (Role::Client, _) => adm.outbound_closed(cid),
            (Role::Server, Phase::Unconfirmed) => adm.handshake_abandoned(now, s.peer, Some(cid)),
            (Role::Server, _) => adm.inbound_closed(now, s.peer, cid),
        }
    }

    /// Copies what the flight recorder saw of `cid` into the manager's score (from the
    /// session's timers: every keepalive interval at least).
    pub(super) fn note_pressure(&mut self, cid: ConnId) {
        let (Some(m), Some(s)) = (self.manager.as_mut(), self.sessions.get(&cid)) else {
            return;
        };
        m.set_pressure(
            cid,
            Pressure {
                drops: s.rec.drops().0.iter().map(|&n| u64::from(n)).sum(),
                queue_high_water: s.rec.queue_high_water,
                unanswered_pings: u32::from(s.rec.unanswered_pings),
            },
        );
    }

    /// When the connection controls have work: a load report due (multi-shard), queues to
    /// shed, or a trim step.
    pub(super) fn conn_control_due(&self) -> Option<Timestamp> {
        let mut due: Option<Timestamp> = None;
        let mut at = |t: Timestamp| due = Some(due.map_or(t, |d| d.min(t)));
        if let Some(adm) = &self.admission {
            if self.n_shards > 1 {
                at(adm.next_round());
            }
            let b = adm.budget();
            if b.used() > b.config().shed_above && b.stats().queued > 0 {
                at(Timestamp::ZERO);
            }
        }
        // `poll_timeout(ZERO)` gives the due time itself: ZERO (due now) while a round runs.
        if let Some(t) = self
            .manager
            .as_ref()
            .and_then(|m| m.poll_timeout(Timestamp::ZERO))
        {
            at(t);
        }
        due
    }

    /// The bounded connection-control work of one `handle_timeout`: the count exchange's
    /// round, at most `SHED_PER_CALL` queues shed, then one trim step whose sessions are
    /// closed with `Close(Trimmed)` (only while the control queue has room for their Closes;
    /// the rest stay chosen for the next call).
    pub(super) fn run_conn_control(&mut self, now: Timestamp) {
        if let Some(adm) = self.admission.as_mut() {
            Self::poll_rounds(adm, &mut self.reports_out, &mut self.stats, now);
        }
        for _ in 0..SHED_PER_CALL {
            let Some(shed) = self
                .admission
                .as_mut()
                .and_then(|a| a.budget_mut().next_shed())
            else {
                break;
            };
            self.shed_queue(shed);
        }
        let Some(m) = self.manager.as_mut() else {
            return;
        };
        // Each trimmed session queues one Close: take no more than the queue has room for
        // (the manager's `close_batch` bounds it too); the rest stay chosen for the next call.
        let room = self.control.room_for_timers();
        let trimmed: Vec<ConnId> = m.trim(now).take(room).map(|(cid, _)| cid).collect();
        for cid in trimmed {
            self.end_session(now, cid, CloseReason::Trimmed, Closer::Local, true);
        }
    }

    /// Drops the whole Data queue the budget named (its bytes already released there),
    /// counting every message.
    fn shed_queue(&mut self, shed: Shed) {
        let Some(s) = self.sessions.get_mut(&shed.conn) else {
            return;
        };
        let mut n = 0u64;
        while s.dequeue().is_some() {
            n += 1;
        }
        s.release_idle_queue();
        self.stats.shed_messages += n;
    }

    /// Takes the count exchange's reports due at `now` into the outbox (multi-shard only:
    /// alone, the shard's live count is the node's).
    fn poll_rounds(
        adm: &mut AdmissionController,
        out: &mut std::collections::VecDeque<LoadReport>,
        stats: &mut super::super::stats::EndpointStats,
        now: Timestamp,
    ) {
        while let Some(r) = adm.poll_report(now) {
            if out.len() >= REPORTS_WAITING {
                out.pop_front();
                stats.load_reports_lost += 1;
            }
            out.push_back(r);
        }
    }

    /// The next load report to send to every other shard (the count exchange of
    /// `admission/node.rs`, over the mesh's control lane). A host calls this after each
    /// `handle_timeout` (and any call that may admit) until `None`; with one shard there are
    /// none to send.
    pub fn poll_load_report(&mut self) -> Option<LoadReport> {
        let r = self.reports_out.pop_front()?;
        self.update_view();
        (self.n_shards > 1).then_some(r)
    }

    /// A load report another shard published.
    pub fn on_load_report(&mut self, report: LoadReport) {
        if let Some(adm) = self.admission.as_mut() {
            adm.on_load_report(report);
        }
        self.update_view();
    }

    fn update_view(&mut self) {
        if self.n_shards > 1
            && let (Some(adm), Some(m)) = (&self.admission, self.manager.as_mut())
        {
            m.set_node_view(adm.node_view());
        }
    }

    /// Admission control, if configured.
    #[must_use]
    pub fn admission(&self) -> Option<&AdmissionController> {
        self.admission.as_ref()
    }

    /// The memory budget, if admission is configured: a host charges its handoff buffers
    /// here.
    pub fn budget_mut(&mut self) -> Option<&mut MemoryBudget> {
        self.admission.as_mut().map(AdmissionController::budget_mut)
    }

    /// The connection manager, if configured.
    #[must_use]
    pub fn manager(&self) -> Option<&ConnManager> {
        self.manager.as_ref()
    }

    /// The connection manager, to tag and protect sessions. Trimming is driven by
    /// `handle_timeout`; a forced trim ([`ConnManager::force_trim`]) starts at the next call
    /// (`poll_timeout` says so).
    pub fn manager_mut(&mut self) -> Option<&mut ConnManager> {
        self.manager.as_mut()
    }
}
