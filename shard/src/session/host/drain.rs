//! A session host's graceful drain ([`Handler::on_shutdown`](crate::Handler::on_shutdown)):
//! every session is closed with `ShuttingDown`, a few at a time, so that each Close finds room
//! in the endpoint's control queue (closing every session at once would overflow it and lose
//! Closes, counted as `session_control_dropped`), and no new session reaches the application.
//!
//! Per turn the host closes as many sessions as a quarter of the control queue has room for
//! (the rest stays free for Pongs, Accepts and cookie replies); the queue drains into send
//! slots as sends complete, and each completion turns the loop again. A
//! session that still has Data queued is put back once, so its queue can drain before the
//! Close (a close discards queued Data). A session the endpoint accepts during the drain (its
//! client had a cookie already) is closed at once and never shown to the application: its
//! client gets Accept and then Close(ShuttingDown), and learns at once to go elsewhere instead
//! of retransmitting its Hello until its handshake times out.
#![forbid(unsafe_code)]

use std::collections::VecDeque;

use crate::id_hash::IdSet;
use crate::session::{CloseReason, ConnId, Endpoint, SessionState, Timestamp};

/// Sessions still to close, and the ones hidden from the application.
#[derive(Debug, Default)]
pub(super) struct Drain {
    /// In connection-ID order; `true` once a session was put back for its queued Data.
    queue: VecDeque<(ConnId, bool)>,
    /// Accepted during the drain: their events are not delivered. Our own connection IDs: hashed with one multiply (`crate::id_hash`, D84).
    hidden: IdSet<ConnId>,
}

impl Drain {
    /// A drain of every session `ep` holds now.
    pub(super) fn new(ep: &Endpoint) -> Self {
        let mut drain = Self::default();
        drain.refill(ep);
        drain
    }

    /// Queues every session `ep` holds, in connection-ID order (one pass over the table).
    fn refill(&mut self, ep: &Endpoint) {
        let mut conns: Vec<ConnId> = ep.conn_ids().collect();
        conns.sort_unstable();
        self.queue.extend(conns.into_iter().map(|c| (c, false)));
    }

    /// A session accepted during the drain: close it next, and keep its events from the
    /// application.
    pub(super) fn refuse(&mut self, conn: ConnId) {
        self.hidden.insert(conn);
        self.queue.push_front((conn, true));
    }

    /// Whether `conn` was refused (its events are not for the application).
    pub(super) fn is_hidden(&self, conn: ConnId) -> bool {
        self.hidden.contains(&conn)
    }

    /// `conn` has ended: forget it.
    pub(super) fn forget(&mut self, conn: ConnId) -> bool {
        self.hidden.remove(&conn)
    }

    /// Closes as many queued sessions as a quarter of the control queue has room for (a
    /// handshaking session sends no Close and takes no room). Work per call is bounded by that
    /// room.
    pub(super) fn close_some(&mut self, ep: &mut Endpoint, now: Timestamp) {
        if self.queue.is_empty() && ep.session_count() > 0 {
            // Sessions that began after the drain did (a connect by the application).
            self.refill(ep);
        }
        let share = (ep.config().control_queue_capacity / 4).max(1);
        let mut room = share.saturating_sub(ep.stats().control_queue_depth);
        // Each entry is put back at most once, so twice the room bounds the entries looked at.
        let mut budget = 2 * room + 1;
        while room > 0 && budget > 0 {
            budget -= 1;
            let Some((conn, put_back)) = self.queue.pop_front() else {
                break;
            };
            let Some(s) = ep.session_stats(conn) else {
                continue; // ended on its own meanwhile
            };
            if s.queue_depth > 0 && !put_back {
                self.queue.push_back((conn, true));
                continue;
            }
            if s.state == SessionState::Established {
                room -= 1;
            }
            let _closed = ep.close(now, conn, CloseReason::ShuttingDown);
        }
    }

    /// Whether every session is closed and every Close has left the endpoint.
    pub(super) fn is_done(&self, ep: &Endpoint) -> bool {
        self.queue.is_empty() && ep.session_count() == 0 && ep.stats().control_queue_depth == 0
    }
}
