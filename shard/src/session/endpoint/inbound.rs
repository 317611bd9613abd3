//! Inbound datagrams: framing, steering, then the message's handler. Handshake intake on the
//! responder side is in `handshakes.rs`.
#![forbid(unsafe_code)]

use std::net::SocketAddr;

use super::super::admission::RefusalReason;
use super::super::conn_id::{ConnId, connect_shard};
use super::super::cookie;
use super::super::crypto::{self, MAC_LEN};
use super::super::drop_reason::DropReason;
use super::super::event::{CloseReason, Closer, Event, Handled};
use super::super::handshake::{self, dh_cost};
use super::super::state::{Keys, PendingPing, Phase, PreviousKey, Role};
use super::super::time::Timestamp;
use super::super::wire::{self, Body, Message, MsgType, field};
use super::Endpoint;
use crate::session::control::Priority;

/// A decrypted transport message, owned.
enum Inbound {
    Data(Vec<u8>),
    /// Data longer than `max_payload`.
    TooLarge,
    Ping,
    Pong(u64),
    Close(CloseReason),
}

impl Endpoint {
    /// Handles one received datagram from `from`.
    ///
    /// `Handled::OtherShard(k)`: the datagram belongs to shard `k` (its connection ID names
    /// `k`, or an Initiation's route byte does); forward it with its source address, and shard
    /// `k` handles it as if it had received it. A dropped datagram gets no reply, except that a
    /// transport message naming no session may draw a rate-limited stateless Reset (Noise
    /// mode; `docs/PROTOCOL.md` §9).
    pub fn handle_datagram(&mut self, now: Timestamp, from: SocketAddr, bytes: &[u8]) -> Handled {
        self.stats.datagrams_in += 1;
        let d = match wire::parse(bytes) {
            Ok(d) => d,
            Err(reason) => return self.dropped(reason, None),
        };
        let pn = d.packet_number;
        match d.body {
            Body::Initiation {
                initiator_conn_id,
                noise,
                mac1,
                mac2,
            } => {
                return self.on_initiation(
                    now,
                    from,
                    bytes,
                    d.dst_conn_id,
                    pn,
                    initiator_conn_id,
                    noise.is_some(),
                    mac1,
                    mac2,
                );
            }
            Body::Reset { token } => return self.on_reset(now, from, d.dst_conn_id, token),
            _ => {}
        }
        let cid = ConnId(d.dst_conn_id);
        let owner = cid.shard();
        if owner != self.shard && owner < self.n_shards {
            self.stats.forwarded += 1;
            return Handled::OtherShard(owner);
        }
        let Some(s) = self.sessions.get(&cid) else {
            return self.unknown_connection(now, from, &d, bytes.len());
        };
        if s.peer != from {
            return self.dropped(DropReason::AddressMismatch, Some(cid));
        }
        let result = match d.body {
            Body::Response {
                noise,
                plain_conn_id,
                mac1,
            } => self.on_response(now, cid, pn, bytes, noise.is_some(), plain_conn_id, mac1),
            Body::CookieReply { nonce, sealed } => {
                self.on_cookie_reply(now, cid, pn, &nonce, &sealed)
            }
            Body::Refused { reason, mac1 } => self.on_refused(now, cid, pn, reason, &mac1),
            Body::Transport {
                ty,
                key_phase,
                body,
            } => {
                let mut header = [0u8; wire::HEADER_LEN];
                header.copy_from_slice(&bytes[..wire::HEADER_LEN]);
                self.on_transport(now, cid, pn, bytes.len(), &header, ty, key_phase, body)
            }
            Body::Initiation { .. } | Body::Reset { .. } => Handled::Consumed, // handled above
        };
        self.reschedule(cid);
        result
    }

    /// A datagram naming no session here: counted, and in Noise mode a transport message of
    /// at least `RESET_TRIGGER_MIN` bytes draws a Reset (rate-limited, stateless, smaller than
    /// its trigger).
    fn unknown_connection(
        &mut self,
        now: Timestamp,
        from: SocketAddr,
        d: &wire::Datagram<'_>,
        len: usize,
    ) -> Handled {
        if let Body::Transport { .. } = d.body
            && len >= wire::RESET_TRIGGER_MIN
            && let Some(token) = self.reset_token(d.dst_conn_id)
        {
            // Takes a token only when a Reset can actually be queued.
            if self.control.has_room_for(Priority::Stateless) && self.reset_rate.try_take(now) {
                let mut frame = [0u8; wire::RESET_LEN];
                frame[0] = (wire::VERSION << 4) | MsgType::Reset as u8;
                frame[field::RESET_CONN_ID].copy_from_slice(&d.dst_conn_id.to_be_bytes());
                frame[field::RESET_TOKEN].copy_from_slice(&token);
                let _queued = self.control.push(Priority::Stateless, from, None, &frame);
                self.stats.resets_sent += 1;
            } else {
                self.stats.resets_suppressed += 1;
            }
        }
        self.dropped(DropReason::UnknownConnection, None)
    }

    /// Initiator: a Reset for one of our sessions (found by the peer's address and the
    /// connection ID it echoes). A valid token ends the session at once (`CloseReason::Reset`).
    fn on_reset(
        &mut self,
        now: Timestamp,
        from: SocketAddr,
        remote_cid: u64,
        token: [u8; MAC_LEN],
    ) -> Handled {
        let Some(&local) = self.by_peer.get(&(from, remote_cid)) else {
            // Sessions to a peer live on the shard `connect_shard` names for its address.
            let k = connect_shard(from, self.n_shards);
            if k != self.shard {
                self.stats.forwarded += 1;
                return Handled::OtherShard(k);
            }
            return self.dropped(DropReason::UnknownConnection, None);
        };
        let valid = self
            .reset_tokens
            .get(&local)
            .is_some_and(|t| crypto::ct_eq(t, &token));
        if !valid {
            return self.dropped(DropReason::BadMac, Some(local));
        }
        self.end_session(now, local, CloseReason::Reset, Closer::Peer, false);
        Handled::Consumed
    }

    /// A transport message (Data, Ping, Pong, Close) for session `cid`: replay check, then
    /// decryption with the key its phase and packet number select, then the message.
    #[allow(clippy::too_many_arguments)]
    fn on_transport(
        &mut self,
        now: Timestamp,
        cid: ConnId,
        pn: u64,
        len: usize,
        header: &[u8; wire::HEADER_LEN],
        ty: MsgType,
        key_phase: bool,
        body: &[u8],
    ) -> Handled {
        let Some(s) = self.sessions.get_mut(&cid) else {
            return Handled::Consumed;
        };
        if matches!(s.phase, Phase::Handshaking(_)) {
            return self.dropped(DropReason::UnexpectedMessage, Some(cid));
        }
        if let Err(reason) = s.replay.check(pn) {
            return self.dropped(reason, Some(cid));
        }
        let Some(scratch) = self.scratch.get_mut(..body.len()) else {
            return self.dropped(DropReason::TooLarge, Some(cid));
        };
        // Data is opened in the buffer its event will own, so the datagram is copied once (the
        // buffer is freed again if it does not open); the other messages in the scratch buffer.
        let mut data = Vec::new();
        let buf = if ty == MsgType::Data {
            data.extend_from_slice(body);
            &mut data[..]
        } else {
            scratch.copy_from_slice(body);
            scratch
        };
        let mut next_key = None;
        let plain_len = match s.keys.as_mut() {
            None => Some(body.len()),
            Some(k) => {
                if k.prev.as_ref().is_some_and(|p| now >= p.until) {
                    k.prev = None; // wiped on drop
                }
                if key_phase == k.recv_phase {
                    k.recv.open(pn, header, buf)
                } else if let Some(p) = k.prev.as_ref().filter(|_| pn < k.recv_first_pn) {
                    p.key.open(pn, header, buf)
                } else {
                    // The peer's next phase: its key is REKEY of ours.
                    let next = k.recv.rekey();
                    let opened = next.open(pn, header, buf);
                    if opened.is_some() {
                        next_key = Some(next);
                    }
                    opened
                }
            }
        };
        let Some(plain_len) = plain_len else {
            return self.dropped(DropReason::DecryptFailed, Some(cid));
        };
        // Owned from here (the scratch buffer is reused).
        let msg = if ty == MsgType::Data {
            data.truncate(plain_len);
            if plain_len > self.cfg.max_payload {
                Inbound::TooLarge
            } else {
                Inbound::Data(data)
            }
        } else {
            match wire::parse_plain(ty, &self.scratch[..plain_len]) {
                Ok(Message::Ping) => Inbound::Ping,
                Ok(Message::Pong { echo }) => Inbound::Pong(echo),
                Ok(Message::Close(reason)) => Inbound::Close(reason),
                // Not reached: Data was opened in `data` above.
                Ok(Message::Data(_)) => Inbound::TooLarge,
                Err(reason) => return self.dropped(reason, Some(cid)),
            }
        };
        // Authenticated (Noise mode): from here the datagram is the peer's. `s` is the session
        // looked up above (one lookup per datagram here, not one per step).
        s.replay.commit(pn);
        s.last_recv = now;
        s.rec.datagrams_in += 1;
        s.rec.bytes_in += len as u64;
        if let (Some(next), Some(k)) = (next_key, s.keys.as_mut()) {
            let keep = self
                .cfg
                .previous_key_lifetime
                .max(s.rtt.srtt().unwrap_or_default().saturating_mul(3));
            let old = std::mem::replace(&mut k.recv, next);
            k.prev = Some(Box::new(PreviousKey {
                key: old,
                until: now.saturating_add(keep),
            }));
            k.recv_phase = key_phase;
            k.recv_first_pn = pn;
            self.stats.key_updates_received += 1;
        }
        let peer = s.peer;
        if s.role == Role::Client && !s.heard_peer {
            Self::end_handshake_timer(&mut self.handshake_timers, s, cid);
            s.heard_peer = true;
        }
        let confirmed = matches!(s.phase, Phase::Unconfirmed);
        if confirmed {
            Self::end_handshake_timer(&mut self.handshake_timers, s, cid);
            s.phase = Phase::Established;
            s.last_ping_sent = now;
            // Data relayed for it before confirmation may wait in its queue.
            if !s.queue.is_empty() && !s.in_ready {
                s.in_ready = true;
                self.ready.push_back(cid);
            }
            self.unconfirmed -= 1;
            self.stats.sessions_accepted += 1;
            self.session_connected(now, cid, Role::Server);
            self.push_event(Event::Connected { conn: cid, peer });
        }
        match msg {
            Inbound::TooLarge => self.dropped(DropReason::TooLarge, Some(cid)),
            Inbound::Data(bytes) => {
                if self.pending_messages >= self.cfg.event_queue_capacity {
                    self.dropped(DropReason::EventQueueFull, Some(cid))
                } else {
                    self.push_event(Event::Message { conn: cid, bytes });
                    Handled::Consumed
                }
            }
            Inbound::Ping => {
                if self.push_session_control(now, cid, &Message::Pong { echo: pn }) {
                    Handled::Consumed
                } else {
                    self.dropped(DropReason::ControlQueueFull, Some(cid))
                }
            }
            Inbound::Pong(echo) => self.on_pong(now, cid, echo),
            Inbound::Close(reason) => {
                self.end_session(now, cid, reason, Closer::Peer, false);
                Handled::Consumed
            }
        }
    }

    /// Initiator: the Response to our latest attempt. Checks mac1 (no Diffie-Hellman for a
    /// forgery without it), finishes the handshake, and confirms at once with queued Data or a
    /// Ping.
    #[allow(clippy::too_many_arguments)]
    fn on_response(
        &mut self,
        now: Timestamp,
        cid: ConnId,
        echo: u64,
        bytes: &[u8],
        noise: bool,
        plain_conn_id: u64,
        mac1: [u8; MAC_LEN],
    ) -> Handled {
        let encrypted = self.cfg.encrypted();
        let Some(s) = self.sessions.get_mut(&cid) else {
            return Handled::Consumed;
        };
        let Phase::Handshaking(h) = &mut s.phase else {
            return self.dropped(DropReason::UnexpectedMessage, Some(cid));
        };
        if noise != encrypted {
            return self.dropped(DropReason::SecurityMismatch, Some(cid));
        }
        if echo != h.attempt {
            return self.dropped(DropReason::UnexpectedMessage, Some(cid));
        }
        let mac1_at = if noise {
            field::RESP_MAC1.start
        } else {
            field::RESP_PLAIN_MAC1.start
        };
        if !crypto::ct_eq(&cookie::mac1(&self.mac1_key, &bytes[..mac1_at]), &mac1) {
            return self.dropped(DropReason::BadMac, Some(cid));
        }
        let (peer_conn_id, keys) = if noise {
            let (Some(mut state), Some(remote), Ok(response)) = (
                h.noise.take(),
                h.remote,
                <&[u8; wire::RESPONSE_LEN]>::try_from(bytes),
            ) else {
                return self.dropped(DropReason::UnexpectedMessage, Some(cid));
            };
            self.stats.dh_operations += dh_cost::READ_RESPONSE;
            let Ok(r) = handshake::read_response(&mut state, response) else {
                // snow's state is spent; the next retransmission starts a new attempt.
                return self.dropped(DropReason::HandshakeFailed, Some(cid));
            };
            if r.responder_conn_id == 0 {
                return self.dropped(DropReason::Malformed, Some(cid));
            }
            let keys = Keys {
                send: r.keys.send,
                recv: r.keys.recv,
                prev: None,
                sent_under_key: 0,
                send_since: now,
                recv_first_pn: 0,
                send_phase: false,
                recv_phase: false,
                peer_key: remote,
            };
            self.reset_tokens.insert(cid, r.reset_token);
            (r.responder_conn_id, Some(keys))
        } else {
            (plain_conn_id, None)
        };
        s.phase = Phase::Established;
        s.keys = keys;
        s.peer_conn_id = peer_conn_id;
        s.last_ping_sent = now;
        s.last_recv = now;
        s.rec.datagrams_in += 1;
        s.rec.bytes_in += bytes.len() as u64;
        let peer = s.peer;
        let has_data = !s.queue.is_empty();
        if has_data && !s.in_ready {
            s.in_ready = true;
            self.ready.push_back(cid);
        }
        self.by_peer.insert((peer, peer_conn_id), cid);
        self.session_connected(now, cid, Role::Client);
        self.push_event(Event::Connected { conn: cid, peer });
        if !has_data {
            self.send_ping(now, cid);
        }
        Handled::Consumed
    }

    /// Queues a Ping (keepalive, or the initiator's confirmation) and records it.
    pub(super) fn send_ping(&mut self, now: Timestamp, cid: ConnId) {
        let Some(s) = self.sessions.get_mut(&cid) else {
            return;
        };
        let pn = s.next_pn;
        s.last_ping_sent = now;
        if self.push_session_control(now, cid, &Message::Ping)
            && let Some(s) = self.sessions.get_mut(&cid)
        {
            s.outstanding_ping = PendingPing::new(pn);
            s.rec.unanswered_pings = s.rec.unanswered_pings.saturating_add(1);
        }
    }

    /// Initiator: the responder is under load and sent a cookie; send a new attempt with mac2
    /// at once. The reply must echo our latest attempt and be sealed with its mac1 as
    /// associated data, so a replayed or forged one makes us send nothing.
    fn on_cookie_reply(
        &mut self,
        now: Timestamp,
        cid: ConnId,
        echo: u64,
        nonce: &[u8; 24],
        sealed: &[u8; 32],
    ) -> Handled {
        let Some(s) = self.sessions.get_mut(&cid) else {
            return Handled::Consumed;
        };
        let Phase::Handshaking(h) = &mut s.phase else {
            return self.dropped(DropReason::UnexpectedMessage, Some(cid));
        };
        if echo != h.attempt {
            return self.dropped(DropReason::UnexpectedMessage, Some(cid));
        }
        let remote = h.remote.map_or([0; 32], |k| *k.as_bytes());
        let key = cookie::cookie_seal_key(&remote);
        let Some(c) = crypto::open_cookie(&key, nonce, &h.last_mac1, sealed) else {
            return self.dropped(DropReason::BadMac, Some(cid));
        };
        h.cookie = Some((c, now));
        h.next_retransmit = Timestamp(now.0.saturating_add(h.rto_nanos));
        s.rec.datagrams_in += 1;
        s.rec.bytes_in += wire::COOKIE_REPLY_LEN as u64;
        self.send_initiation(now, cid, false);
        Handled::Consumed
    }

    /// Initiator: the responder's admission refused our latest attempt. Authentic only if it
    /// echoes that attempt and its mac1 (which only whoever saw the Initiation knows). A
    /// refusal that time cures (too many handshakes at once, the source's rate) leaves the
    /// handshake to its retransmissions; any other (the responder is full) ends it at once
    /// (`CloseReason::Refused`) instead of retransmitting into it for `handshake_timeout`.
    fn on_refused(
        &mut self,
        now: Timestamp,
        cid: ConnId,
        echo: u64,
        reason: u16,
        mac1: &[u8; MAC_LEN],
    ) -> Handled {
        let Some(s) = self.sessions.get_mut(&cid) else {
            return Handled::Consumed;
        };
        let Phase::Handshaking(h) = &s.phase else {
            return self.dropped(DropReason::UnexpectedMessage, Some(cid));
        };
        if echo != h.attempt {
            return self.dropped(DropReason::UnexpectedMessage, Some(cid));
        }
        if !crypto::ct_eq(&h.last_mac1, mac1) {
            return self.dropped(DropReason::BadMac, Some(cid));
        }
        s.rec.datagrams_in += 1;
        s.rec.bytes_in += wire::REFUSED_LEN as u64;
        self.stats.refused_received += 1;
        let transient = [RefusalReason::PendingFull, RefusalReason::PrefixRate]
            .iter()
            .any(|r| usize::from(reason) == r.index());
        if !transient {
            self.end_session(now, cid, CloseReason::Refused, Closer::Peer, false);
        }
        Handled::Consumed
    }

    fn on_pong(&mut self, now: Timestamp, cid: ConnId, echo: u64) -> Handled {
        let Some(s) = self.sessions.get_mut(&cid) else {
            return Handled::Consumed;
        };
        if echo >= s.next_pn {
            // Answers a Ping we never sent.
            return self.dropped(DropReason::UnexpectedMessage, Some(cid));
        }
        s.rec.unanswered_pings = 0;
        if s.outstanding_ping.answered_by(echo) {
            s.rtt.sample(now.saturating_since(s.last_ping_sent));
            s.outstanding_ping = PendingPing::NONE;
        }
        Handled::Consumed
    }
}
