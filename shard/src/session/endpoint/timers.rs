//! Timers: handshake retransmission and timeout, keepalive Pings, idle timeout.
//!
//! One min-heap of `(deadline, conn)` per endpoint. A session pushes an entry only when its
//! next deadline moves *earlier* than the one it already has in the heap (`scheduled`); when
//! an entry fires for a session whose real deadline has moved later (it received something),
//! the session is simply re-armed. So the heap holds O(sessions) entries and receiving a
//! datagram never touches it. Entries of freed sessions, and superseded ones, are skipped.
#![forbid(unsafe_code)]

use std::cmp::Reverse;

use super::super::conn_id::ConnId;
use super::super::event::{CloseReason, Closer};
use super::super::state::Phase;
use super::super::time::Timestamp;
use super::super::wire::Message;
use super::Endpoint;

impl Endpoint {
    /// The earliest time `handle_timeout` has work to do (it may find none: deadlines move
    /// later without the heap being told). `None`: no session has a timer.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    /// Runs every timer due at `now`: retransmits Hellos, abandons handshakes, sends keepalive
    /// Pings, closes idle sessions. Results appear through `poll_transmit` and `poll_event`.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        while let Some(&Reverse((t, cid))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(s) = self.sessions.get_mut(&cid) else {
                continue;
            };
            if s.scheduled != t {
                continue; // superseded by an earlier entry that already fired
            }
            s.scheduled = Timestamp::NEVER;
            self.on_session_timer(now, cid);
            self.reschedule(cid);
        }
    }

    /// Makes sure the heap has an entry at or before `cid`'s next deadline.
    pub(super) fn reschedule(&mut self, cid: ConnId) {
        let Some(s) = self.sessions.get_mut(&cid) else {
            return;
        };
        let d = s.next_deadline(&self.cfg);
        if d < s.scheduled {
            s.scheduled = d;
            self.timers.push(Reverse((d, cid)));
        }
    }

    fn on_session_timer(&mut self, now: Timestamp, cid: ConnId) {
        let Some(s) = self.sessions.get_mut(&cid) else {
            return;
        };
        match &mut s.phase {
            Phase::Handshaking(h) => {
                if now >= h.started.saturating_add(self.cfg.handshake_timeout) {
                    self.end_session(cid, CloseReason::HandshakeTimeout, Closer::Local, false);
                } else if now >= h.next_retransmit {
                    let max = super::super::time::nanos(self.cfg.handshake_max_rto).max(1);
                    h.rto_nanos = h.rto_nanos.saturating_mul(2).min(max);
                    h.next_retransmit = Timestamp(now.0.saturating_add(h.rto_nanos));
                    self.send_hello(cid);
                }
            }
            Phase::Established => {
                if now >= s.last_recv.saturating_add(self.cfg.idle_timeout) {
                    self.end_session(cid, CloseReason::IdleTimeout, Closer::Local, true);
                    return;
                }
                s.release_idle_queue();
                let Some(k) = self.cfg.keepalive_interval else {
                    return;
                };
                if now
                    >= s.last_recv
                        .max(s.last_ping_sent)
                        .saturating_add(k.max(std::time::Duration::from_millis(1)))
                {
                    let pn = s.next_pn;
                    s.last_ping_sent = now;
                    if self.push_session_control(cid, &Message::Ping)
                        && let Some(s) = self.sessions.get_mut(&cid)
                    {
                        s.outstanding_ping = Some((pn, now));
                        s.rec.unanswered_pings = s.rec.unanswered_pings.saturating_add(1);
                    }
                }
            }
        }
    }
}
