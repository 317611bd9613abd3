//! `Endpoint::handle_datagram`: every inbound datagram, by message type.
//!
//! Order of checks, cheapest and most stateless first, so that garbage costs little and
//! changes nothing: parse (total, no state) → Hello goes the stateless cookie path → owner
//! shard from the ID → session lookup → peer address → replay window *check* → the message's
//! own rules → replay window *commit* → effects. A datagram that fails any step is counted
//! under one [`DropReason`] and gets no reply.
#![forbid(unsafe_code)]

use std::net::SocketAddr;

use super::super::conn_id::ConnId;
use super::super::control::Priority;
use super::super::drop_reason::DropReason;
use super::super::event::{Closer, Event, Handled};
use super::super::state::{Phase, Role, Session};
use super::super::time::Timestamp;
use super::super::wire::{self, CookieToken, Message};
use super::Endpoint;

impl Endpoint {
    /// Handles one received datagram from `from`.
    ///
    /// `Handled::OtherShard(k)`: the datagram names a session of shard `k`; forward it with its
    /// source address, and shard `k` handles it as if it had received it. Nothing is ever sent
    /// in reply to a dropped datagram.
    pub fn handle_datagram(&mut self, now: Timestamp, from: SocketAddr, bytes: &[u8]) -> Handled {
        self.stats.datagrams_in += 1;
        let d = match wire::parse(bytes) {
            Ok(d) => d,
            Err(reason) => return self.dropped(reason, None),
        };
        let pn = d.packet_number;
        if let Message::Hello {
            src_conn_id,
            cookie,
        } = d.message
        {
            return self.on_hello(now, from, pn, src_conn_id, cookie);
        }
        let cid = ConnId(d.dst_conn_id);
        let owner = cid.shard();
        if owner != self.shard {
            if owner < self.n_shards {
                self.stats.forwarded += 1;
                return Handled::OtherShard(owner);
            }
            return self.dropped(DropReason::UnknownConnection, None);
        }
        let Some(s) = self.sessions.get(&cid) else {
            return self.dropped(DropReason::UnknownConnection, None);
        };
        if s.peer != from {
            return self.dropped(DropReason::AddressMismatch, Some(cid));
        }
        // Cookie echoes one of our packet numbers: it is not in the peer's number space.
        if !matches!(d.message, Message::Cookie(_))
            && let Err(reason) = s.replay.check(pn)
        {
            return self.dropped(reason, Some(cid));
        }
        let established = s.is_established();
        let result = match d.message {
            Message::Hello { .. } => Handled::Consumed, // handled above
            Message::Cookie(token) => self.on_cookie(now, cid, pn, token),
            Message::Accept { server_conn_id, .. } => self.on_accept(now, cid, pn, server_conn_id),
            _ if !established => self.dropped(DropReason::UnexpectedMessage, Some(cid)),
            Message::Data(payload) => {
                self.accept_pn(now, cid, pn, bytes.len());
                if self.pending_messages >= self.cfg.event_queue_capacity {
                    self.dropped(DropReason::EventQueueFull, Some(cid))
                } else {
                    self.push_event(Event::Message {
                        conn: cid,
                        bytes: payload.to_vec(),
                    });
                    Handled::Consumed
                }
            }
            Message::Ping => {
                self.accept_pn(now, cid, pn, bytes.len());
                if self.push_session_control(cid, &Message::Pong { echo: pn }) {
                    Handled::Consumed
                } else {
                    self.dropped(DropReason::ControlQueueFull, Some(cid))
                }
            }
            Message::Pong { echo } => self.on_pong(now, cid, pn, echo, bytes.len()),
            Message::Close(reason) => {
                self.accept_pn(now, cid, pn, bytes.len());
                self.end_session(cid, reason, Closer::Peer, false);
                return Handled::Consumed;
            }
        };
        self.reschedule(cid);
        result
    }

    /// Commits `pn` and records a valid inbound datagram of `len` bytes.
    fn accept_pn(&mut self, now: Timestamp, cid: ConnId, pn: u64, len: usize) {
        if let Some(s) = self.sessions.get_mut(&cid) {
            s.replay.commit(pn);
            s.last_recv = now;
            s.rec.datagrams_in += 1;
            s.rec.bytes_in += len as u64;
        }
    }

    /// Server side. Without a cookie: a stateless Cookie reply, nothing allocated. With a
    /// valid cookie: the session (new, or the existing one for a retransmitted Hello) and an
    /// Accept.
    fn on_hello(
        &mut self,
        now: Timestamp,
        from: SocketAddr,
        pn: u64,
        src_conn_id: u64,
        cookie: Option<CookieToken>,
    ) -> Handled {
        if !self.cfg.accept_incoming {
            return self.dropped(DropReason::UnexpectedMessage, None);
        }
        let Some(token) = cookie else {
            let token = self.cookies.issue(now, from, src_conn_id);
            // dst = the client's ID (steers the reply to its shard); pn echoes the Hello's.
            let msg = Message::Cookie(token);
            if !self
                .control
                .push(Priority::Stateless, from, None, src_conn_id, pn, &msg)
            {
                return self.dropped(DropReason::ControlQueueFull, None);
            }
            self.stats.cookies_sent += 1;
            return Handled::Consumed;
        };
        if let Err(reason) = self.cookies.verify(now, from, src_conn_id, &token) {
            return self.dropped(reason, None);
        }
        let cid = if let Some(&cid) = self.by_peer.get(&(from, src_conn_id)) {
            // A retransmitted Hello: our Accept was lost or is in flight. Answer again.
            let Some(s) = self.sessions.get(&cid) else {
                return self.dropped(DropReason::UnknownConnection, None);
            };
            if let Err(reason) = s.replay.check(pn) {
                return self.dropped(reason, Some(cid));
            }
            self.accept_pn(now, cid, pn, wire::HELLO_LEN);
            cid
        } else {
            if self.sessions.len() >= self.cfg.max_sessions {
                return self.dropped(DropReason::SessionLimit, None);
            }
            let cid = self.fresh_conn_id();
            let jitter = self.draw_jitter();
            let s = Box::new(Session::new(
                from,
                src_conn_id,
                Role::Server,
                Phase::Established,
                now,
                jitter,
            ));
            self.sessions.insert(cid, s);
            self.by_peer.insert((from, src_conn_id), cid);
            self.accept_pn(now, cid, pn, wire::HELLO_LEN);
            self.stats.sessions_accepted += 1;
            self.push_event(Event::Connected {
                conn: cid,
                peer: from,
            });
            cid
        };
        let accept = Message::Accept {
            server_conn_id: cid.0,
            client_conn_id: src_conn_id,
        };
        // If the control queue is full the Accept is lost (counted in `control_dropped`): the
        // client retransmits its Hello and gets another try.
        let _counted = self.push_session_control(cid, &accept);
        self.reschedule(cid);
        Handled::Consumed
    }

    /// Client side: the server validated nothing yet but gave us a cookie; resend the Hello
    /// with it at once.
    fn on_cookie(&mut self, now: Timestamp, cid: ConnId, echo: u64, token: CookieToken) -> Handled {
        let Some(s) = self.sessions.get_mut(&cid) else {
            return Handled::Consumed;
        };
        let next_pn = s.next_pn;
        let Phase::Handshaking(h) = &mut s.phase else {
            return self.dropped(DropReason::UnexpectedMessage, Some(cid));
        };
        // Must answer a Hello we sent, newer than the one that got us the current cookie:
        // a replayed Cookie then cannot make us send anything.
        if echo >= next_pn || h.cookie_for_pn.is_some_and(|p| echo <= p) {
            return self.dropped(DropReason::UnexpectedMessage, Some(cid));
        }
        h.cookie = Some(token);
        h.cookie_for_pn = Some(echo);
        h.next_retransmit = Timestamp(now.0.saturating_add(h.rto_nanos));
        s.rec.datagrams_in += 1;
        s.rec.bytes_in += wire::COOKIE_LEN as u64;
        s.last_recv = now;
        self.send_hello(cid);
        Handled::Consumed
    }

    /// Client side: the handshake is done.
    fn on_accept(&mut self, now: Timestamp, cid: ConnId, pn: u64, server_conn_id: u64) -> Handled {
        let Some(s) = self.sessions.get_mut(&cid) else {
            return Handled::Consumed;
        };
        if s.role != Role::Client || s.is_established() {
            return self.dropped(DropReason::UnexpectedMessage, Some(cid));
        }
        s.phase = Phase::Established;
        s.peer_conn_id = server_conn_id;
        s.last_ping_sent = now;
        let peer = s.peer;
        let has_data = !s.queue.is_empty();
        if has_data {
            s.in_ready = true;
        }
        self.accept_pn(now, cid, pn, wire::ACCEPT_LEN);
        if has_data {
            self.ready.push_back(cid);
        }
        self.push_event(Event::Connected { conn: cid, peer });
        Handled::Consumed
    }

    fn on_pong(&mut self, now: Timestamp, cid: ConnId, pn: u64, echo: u64, len: usize) -> Handled {
        let Some(s) = self.sessions.get_mut(&cid) else {
            return Handled::Consumed;
        };
        if echo >= s.next_pn {
            // Answers a Ping we never sent.
            return self.dropped(DropReason::UnexpectedMessage, Some(cid));
        }
        s.rec.unanswered_pings = 0;
        if let Some((ping_pn, sent_at)) = s.outstanding_ping
            && ping_pn == echo
        {
            s.rtt.sample(now.saturating_since(sent_at));
            s.outstanding_ping = None;
        }
        self.accept_pn(now, cid, pn, len);
        Handled::Consumed
    }
}
