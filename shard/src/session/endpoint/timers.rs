//! Timers: handshake retransmission and timeout, unconfirmed sessions' expiry, the
//! initiator's confirming Ping, keepalive Pings, idle timeout, retiring previous keys; then
//! the turn's bounded handshake work.
//!
//! Established sessions: one min-heap of `(deadline, conn)` per endpoint. A session pushes an
//! entry only when its next deadline moves *earlier* than the one it already has in the heap
//! (`scheduled`); when an entry fires for a session whose real deadline has moved later (it
//! received something), the session is simply re-armed. So the heap holds O(sessions) entries
//! and receiving a datagram never touches it. Entries of freed sessions, and superseded ones,
//! are skipped.
//!
//! Sessions in their handshake (an initiator until it first hears from the responder after the
//! Response, a responder until the initiator's first transport message confirms it) keep
//! their one deadline in an ordered set
//! instead, moved whenever it moves and taken out when the session is established or freed.
//! Their deadline (retransmission, `handshake_timeout`) is about to become moot: in the heap it
//! would fire once for every session, long after its confirmation, on a session gone cold
//! (`docs/DECISIONS.md` D79). The set holds only sessions in a handshake, so idle established
//! sessions pay nothing for it.
//!
//! Keepalive and idle deadlines carry a per-session jitter (drawn from the seeded generator
//! when the session is created): keepalives up to 1/8 of the interval early, idle closes up to
//! 1/16 of the timeout late. Sessions opened together then spread their timers; those that
//! still coincide are worked off `timer_batch` at a time, never dropped.
#![forbid(unsafe_code)]

use std::cmp::Reverse;
use std::collections::BTreeSet;

use super::super::conn_id::ConnId;
use super::super::event::{CloseReason, Closer};
use super::super::state::{Phase, Session};
use super::super::time::{self, Timestamp};
use super::{Admit, Endpoint};

impl Endpoint {
    /// The earliest time `handle_timeout` has work to do (it may find none: deadlines move
    /// later without the heap being told). `None`: no session has a timer.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let timer = self.next_timer().map(|(t, _, _)| t);
        // Queued Initiations are due from their arrival.
        let handshake = self.handshakes.front().map(|q| q.at);
        [timer, handshake, self.conn_control_due()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Runs the timers due at `now` (retransmits Initiations, abandons handshakes, frees
    /// unconfirmed sessions, sends keepalive Pings, closes idle sessions), then the
    /// Diffie-Hellman work of at most `handshakes_per_turn` queued Initiations, admitting
    /// every authenticated initiator that `allowed_peers` admits. Results appear through
    /// `poll_transmit` and `poll_event`. See [`Endpoint::handle_timeout_with`] for an
    /// application admission callback.
    ///
    /// Bounded: it takes at most `timer_batch` heap entries, and runs a session's timer only
    /// while the control queue has room for timers (each queues at most one frame). Timers it
    /// leaves stay due, in deadline order: [`Endpoint::poll_timeout`] is then at or before
    /// `now`, and the next call (after `poll_transmit` has drained the queue, if that was the
    /// limit: see [`Endpoint::can_run_timers`]) continues. No timer's action is dropped.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.handle_timeout_with(now, &mut |_, _| true);
    }

    /// [`Endpoint::handle_timeout`] with the application's admission callback: called with
    /// each authenticated initiator's static key and address (after `allowed_peers`); `false`
    /// refuses it (`NotAdmitted`).
    pub fn handle_timeout_with(&mut self, now: Timestamp, admit: &mut Admit<'_>) {
        self.run_timers(now);
        // Established sessions' datagrams of this turn came first; now the bounded DH work.
        let max = self.cfg.handshakes_per_turn.max(1);
        self.process_handshakes(now, max, admit);
        self.initiations.purge(now, self.cfg.timer_batch.max(1));
        // Admission's count exchange, shedding over the memory budget, one trim step.
        self.run_conn_control(now);
    }

    /// The earliest entry of the heap and the handshake timers: its deadline, its session,
    /// and whether it is the handshake timers'.
    fn next_timer(&self) -> Option<(Timestamp, ConnId, bool)> {
        let heap = self.timers.peek().map(|&Reverse((t, c))| (t, c, false));
        let handshake = self.handshake_timers.first().map(|&(t, c)| (t, c, true));
        match (heap, handshake) {
            (Some(h), Some(s)) => Some(if s.0 < h.0 { s } else { h }),
            (h, s) => h.or(s),
        }
    }

    fn run_timers(&mut self, now: Timestamp) {
        let mut budget = self.cfg.timer_batch.max(1);
        while let Some((t, cid, handshake)) = self.next_timer() {
            if t > now {
                return;
            }
            if budget == 0 {
                self.stats.timers_deferred += 1;
                return;
            }
            // Stale (heap only): the session is gone, or an earlier entry of it already fired.
            let live = self.sessions.get(&cid).is_some_and(|s| s.scheduled == t);
            if live && !self.control.has_room_for_timers() {
                self.stats.timers_deferred += 1;
                return;
            }
            budget -= 1;
            if handshake {
                self.handshake_timers.pop_first();
            } else {
                self.timers.pop();
            }
            if !live {
                continue;
            }
            if let Some(s) = self.sessions.get_mut(&cid) {
                s.scheduled = Timestamp::NEVER;
            }
            self.on_session_timer(now, cid);
            self.reschedule(cid);
        }
    }

    /// Whether `handle_timeout` can make progress with due timers now: false while the
    /// control queue is at the share timers may fill. A driver then waits for `poll_transmit`
    /// to drain it (for send completions) rather than for a clock.
    #[must_use]
    pub fn can_run_timers(&self) -> bool {
        self.control.has_room_for_timers()
    }

    /// Makes sure the heap has an entry at or before `cid`'s next deadline; for a session in
    /// its handshake, moves its one entry in the handshake timers to that deadline.
    pub(super) fn reschedule(&mut self, cid: ConnId) {
        let Some(s) = self.sessions.get_mut(&cid) else {
            return;
        };
        let d = s.next_deadline(&self.cfg);
        if s.in_handshake() {
            if d != s.scheduled {
                self.handshake_timers.remove(&(s.scheduled, cid));
                s.scheduled = d;
                self.handshake_timers.insert((d, cid));
            }
        } else if d < s.scheduled {
            s.scheduled = d;
            self.timers.push(Reverse((d, cid)));
        }
    }

    /// Session `cid`'s handshake is over (confirmed; for an initiator, the responder heard
    /// from): its handshake deadline is moot, and goes. The caller reschedules it (in the heap,
    /// at its idle or keepalive deadline).
    pub(super) fn end_handshake_timer(
        handshake_timers: &mut BTreeSet<(Timestamp, ConnId)>,
        s: &mut Session,
        cid: ConnId,
    ) {
        handshake_timers.remove(&(s.scheduled, cid));
        s.scheduled = Timestamp::NEVER;
    }

    fn on_session_timer(&mut self, now: Timestamp, cid: ConnId) {
        let Some(s) = self.sessions.get_mut(&cid) else {
            return;
        };
        match &mut s.phase {
            Phase::Handshaking(h) => {
                if now >= h.started.saturating_add(self.cfg.handshake_timeout) {
                    self.end_session(
                        now,
                        cid,
                        CloseReason::HandshakeTimeout,
                        Closer::Local,
                        false,
                    );
                } else if now >= h.next_retransmit {
                    let max = time::nanos(self.cfg.handshake_max_rto).max(1);
                    h.rto_nanos = h.rto_nanos.saturating_mul(2).min(max);
                    h.next_retransmit = Timestamp(now.0.saturating_add(h.rto_nanos));
                    self.send_initiation(now, cid, false);
                }
            }
            Phase::Unconfirmed => {
                // Never announced to the application: freed without an event.
                if now >= s.last_recv.saturating_add(self.cfg.handshake_timeout) {
                    self.end_session(
                        now,
                        cid,
                        CloseReason::HandshakeTimeout,
                        Closer::Local,
                        false,
                    );
                }
            }
            Phase::Established => {
                if now >= s.idle_due(&self.cfg) {
                    self.end_session(now, cid, CloseReason::IdleTimeout, Closer::Local, true);
                    return;
                }
                s.release_idle_queue();
                self.note_pressure(cid);
                let Some(s) = self.sessions.get_mut(&cid) else {
                    return;
                };
                if let Some(k) = s.keys.as_mut()
                    && k.prev.as_ref().is_some_and(|p| now >= p.until)
                {
                    k.prev = None; // the previous receiving key is wiped on drop
                }
                let confirm = s.confirm_ping_due(&self.cfg).is_some_and(|due| now >= due);
                let keepalive = s.keepalive_due(&self.cfg).is_some_and(|due| now >= due);
                if confirm || keepalive {
                    self.send_ping(now, cid);
                }
            }
        }
    }
}
