//! The responder's handshake: Initiation intake (mac1, load, cookies) in `handle_datagram`,
//! and the bounded Diffie-Hellman work in `process_handshakes`.
//!
//! ```text
//! Initiation ─► mac1 valid? ─no─► drop (BadMac): no reply, no DH
//!                  │yes
//!              route byte names this shard? ─no─► OtherShard(k)
//!                  │yes
//!              under load? ─yes─► mac2 valid? ─no─► CookieReply (rate-limited), no DH
//!                  │no                │yes
//!                  └──────────────────┴─► admission ─no─► Refused (rate-limited), no DH
//!                                            │yes
//!                                         queue (bounded) ─► process_handshakes, ≤ K per turn:
//!                         read (2 DH) ─► key tag ─► allowed_peers ─► timestamp / replay
//!                         ─► the application's admit
//!                         ─► Response (3 DH), session Unconfirmed
//! ```
#![forbid(unsafe_code)]

use std::net::SocketAddr;

use super::super::config::Security;
use super::super::cookie;
use super::super::crypto::{self, MAC_LEN};
use super::super::drop_reason::DropReason;
use super::super::event::Handled;
use super::super::handshake::{self, dh_cost};
use super::super::initiations::Prior;
use super::super::replay::ReplayWindow;
use super::super::state::{Keys, Phase, Role, Session};
use super::super::time::{Timestamp, nanos};
use super::super::wire::{self, INITIATION_LEN, MsgType, RESPONSE_LEN, field};
use super::{Admit, Endpoint, QueuedInitiation};
use crate::session::control::Priority;

impl Endpoint {
    /// An Initiation arrived. Cheap checks only: nothing here costs a Diffie-Hellman
    /// operation.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_initiation(
        &mut self,
        now: Timestamp,
        from: SocketAddr,
        bytes: &[u8],
        route: u64,
        attempt: u64,
        initiator_conn_id: u64,
        noise: bool,
        mac1: [u8; MAC_LEN],
        mac2: [u8; MAC_LEN],
    ) -> Handled {
        if !self.cfg.accept_incoming {
            return self.dropped(DropReason::UnexpectedMessage, None);
        }
        if noise != self.cfg.encrypted() {
            return self.dropped(DropReason::SecurityMismatch, None);
        }
        let (mac1_at, mac2_at) = if noise {
            (field::INIT_MAC1.start, field::INIT_MAC2.start)
        } else {
            (field::INIT_PLAIN_MAC1.start, field::INIT_PLAIN_MAC2.start)
        };
        if !crypto::ct_eq(&cookie::mac1(&self.mac1_key, &bytes[..mac1_at]), &mac1) {
            return self.dropped(DropReason::BadMac, None);
        }
        // The route byte names the shard that holds this initiator's handshake state.
        let owner = ((route >> 56) as u16) % self.n_shards;
        if owner != self.shard {
            self.stats.forwarded += 1;
            return Handled::OtherShard(owner);
        }
        // Plaintext mode proves nothing but the address, so it always asks for it (mac2).
        let under_load = !noise
            || self.handshakes.len() > self.cfg.handshake_queue_capacity / 2
            || !self.handshake_rate.has_token(now);
        if under_load {
            if !self.cookies.mac2_valid(now, from, &bytes[..mac2_at], &mac2) {
                return self.send_cookie_reply(now, from, initiator_conn_id, attempt, &mac1);
            }
        } else {
            self.handshake_rate.try_take(now);
        }
        if !noise {
            return self.accept_plain_initiation(now, from, attempt, initiator_conn_id, &mac1);
        }
        if self.handshakes.len() >= self.cfg.handshake_queue_capacity {
            return self.dropped(DropReason::HandshakeQueueFull, None);
        }
        let Ok(b) = <[u8; INITIATION_LEN]>::try_from(bytes) else {
            return self.dropped(DropReason::Malformed, None);
        };
        // Admission, before any Diffie-Hellman work or state: released when the queued
        // Initiation is dropped or answers an existing session, else when its session ends.
        if let Err(refused) = self.admit_initiation(now, from, initiator_conn_id, attempt, &mac1) {
            return refused;
        }
        self.handshakes.push_back(QueuedInitiation {
            from,
            at: now,
            bytes: Box::new(b),
        });
        Handled::Consumed
    }

    /// Under load: answer with a sealed cookie instead of doing Diffie-Hellman work.
    fn send_cookie_reply(
        &mut self,
        now: Timestamp,
        from: SocketAddr,
        initiator_conn_id: u64,
        attempt: u64,
        mac1: &[u8; MAC_LEN],
    ) -> Handled {
        if !self.control.has_room_for(Priority::Stateless) {
            return self.dropped(DropReason::ControlQueueFull, None);
        }
        if !self.cookie_rate.try_take(now) {
            return self.dropped(DropReason::RateLimited, None);
        }
        let c = self.cookies.cookie(now, from);
        let seed = self.draw_seed();
        let mut nonce = [0u8; 24];
        nonce.copy_from_slice(&seed[..24]);
        let sealed = crypto::seal_cookie(&self.cookie_seal_key, &nonce, mac1, &c);
        let mut frame = [0u8; wire::COOKIE_REPLY_LEN];
        wire::write_header(
            &mut frame,
            MsgType::CookieReply,
            0,
            initiator_conn_id,
            attempt,
        );
        frame[field::COOKIE_NONCE].copy_from_slice(&nonce);
        frame[field::COOKIE_SEALED].copy_from_slice(&sealed);
        let _room_checked = self.control.push(Priority::Stateless, from, None, &frame);
        self.stats.cookies_sent += 1;
        Handled::Consumed
    }

    /// Runs the Diffie-Hellman work of at most `max` queued Initiations, oldest first (and
    /// only while the control queue has room for their Responses). `admit` is the
    /// application's say on each authenticated initiator, after `allowed_peers`. Returns how
    /// many were processed. [`Endpoint::handle_timeout`] calls this with
    /// `handshakes_per_turn` and an admit-all callback; a host with an application callback
    /// calls [`Endpoint::handle_timeout_with`].
    pub fn process_handshakes(
        &mut self,
        now: Timestamp,
        max: usize,
        admit: &mut Admit<'_>,
    ) -> usize {
        let mut done = 0;
        while done < max && self.control.has_room() {
            let Some(q) = self.handshakes.pop_front() else {
                break;
            };
            done += 1;
            let from = q.from;
            match self.respond(now, q, admit) {
                Ok(true) => {}
                Ok(false) => self.initiation_released(now, from),
                Err(reason) => {
                    self.initiation_released(now, from);
                    let _counted = self.dropped(reason, None);
                }
            }
        }
        done
    }

    /// One queued Initiation's Diffie-Hellman work. `Ok(true)`: its admission is accounted
    /// for (a new session holds it, or it replaced an unconfirmed session's, which released
    /// one); `Ok(false)` or `Err`: the caller releases it.
    fn respond(
        &mut self,
        now: Timestamp,
        q: QueuedInitiation,
        admit: &mut Admit<'_>,
    ) -> Result<bool, DropReason> {
        let seed = self.draw_seed();
        let wall = nanos(self.wall(now));
        let jitter = self.draw_jitter();
        let Security::Noise(n) = &self.cfg.security else {
            return Ok(false);
        };
        self.stats.dh_operations += dh_cost::READ_INITIATION;
        let read = match handshake::read_initiation(&n.identity, &n.psk, &q.bytes, seed, None) {
            Ok(r) => r,
            Err(_) => {
                return Err(DropReason::HandshakeFailed);
            }
        };
        let key = read.initiator;
        let mut w = [0u8; 8];
        w.copy_from_slice(&q.bytes[field::INIT_CONN_ID]);
        let initiator_conn_id = u64::from_be_bytes(w);
        if handshake::route_tag(&key, initiator_conn_id) != q.bytes[field::ROUTE] {
            return Err(DropReason::UnknownKeyTag);
        }
        if n.allowed_peers
            .as_ref()
            .is_some_and(|allowed| !allowed.contains(&key))
        {
            return Err(DropReason::NotAllowed);
        }
        let Some(ts) = handshake::from_tai64n(&read.timestamp) else {
            return Err(DropReason::StaleTimestamp);
        };
        let ts = nanos(ts);
        w.copy_from_slice(&q.bytes[field::PACKET_NUMBER]);
        let attempt = u64::from_be_bytes(w);
        let prior = match self
            .initiations
            .check(&key, initiator_conn_id, ts, wall, now)
        {
            Ok(p) => p,
            Err(reason) => {
                return Err(reason);
            }
        };
        let existing = match prior {
            Prior::Session(cid) => {
                let Some(s) = self.sessions.get(&cid) else {
                    return Err(DropReason::UnexpectedMessage);
                };
                let same = s.peer_conn_id == initiator_conn_id
                    && s.keys.as_ref().is_some_and(|k| k.peer_key == key);
                if !same {
                    // A collision of the table's 64-bit keyed hash: refuse this attempt
                    // rather than touch another initiator's session.
                    return Err(DropReason::ReplayTableFull);
                }
                if !matches!(s.phase, Phase::Unconfirmed) {
                    // A late retransmission for a session already confirmed: nothing to redo.
                    return Err(DropReason::UnexpectedMessage);
                }
                Some(cid)
            }
            Prior::None => None,
        };
        if !admit(&key, q.from) {
            return Err(DropReason::NotAdmitted);
        }
        if existing.is_none() {
            if self.sessions.len() >= self.cfg.max_sessions {
                return Err(DropReason::SessionLimit);
            }
            if self.unconfirmed >= self.cfg.max_unconfirmed {
                return Err(DropReason::HandshakeQueueFull);
            }
        }
        let cid = existing.unwrap_or_else(|| self.fresh_conn_id());
        let Some(token) = self.reset_token(cid.0) else {
            return Ok(false);
        };
        let mut resp = [0u8; RESPONSE_LEN];
        self.stats.dh_operations += dh_cost::WRITE_RESPONSE;
        let Ok(k) =
            handshake::write_response(read, initiator_conn_id, attempt, cid.0, &token, &mut resp)
        else {
            return Err(DropReason::HandshakeFailed);
        };
        let keys = Keys {
            send: k.send,
            recv: k.recv,
            prev: None,
            sent_under_key: 0,
            send_since: now,
            recv_first_pn: 0,
            send_phase: false,
            recv_phase: false,
            peer_key: key,
        };
        let created = if let Some(s) = existing.and_then(|c| self.sessions.get_mut(&c)) {
            // A retransmitted Initiation: the initiator holds only its latest attempt's keys.
            // The old ones are dropped here, and so wiped.
            s.keys = Some(keys);
            // The session's admission is held for its address: if the initiator moved, the
            // old address's is released and this attempt's kept; else this attempt's is.
            if s.peer != q.from {
                let old = std::mem::replace(&mut s.peer, q.from);
                self.initiation_released(now, old);
            } else {
                self.initiation_released(now, q.from);
            }
            let Some(s) = existing.and_then(|c| self.sessions.get_mut(&c)) else {
                return Ok(false);
            };
            s.last_recv = now;
            s.replay = ReplayWindow::default();
            true
        } else {
            let mut s = Session::new(
                q.from,
                initiator_conn_id,
                Role::Server,
                Phase::Unconfirmed,
                now,
                jitter,
            );
            s.keys = Some(keys);
            self.sessions.insert(cid, Box::new(s));
            self.unconfirmed += 1;
            true
        };
        self.initiations.record(&key, initiator_conn_id, ts, cid);
        if !self
            .control
            .push(Priority::Session, q.from, Some(cid), &resp)
        {
            // Lost like any control frame (counted); the initiator retransmits.
            self.stats.control_dropped += 1;
        }
        self.stats.handshakes_completed += 1;
        self.reschedule(cid);
        Ok(created)
    }

    /// Plaintext mode, after mac2 proved the address: the session (new, or the existing one
    /// for a retransmission) and a Response. No Diffie-Hellman work, so no queue.
    fn accept_plain_initiation(
        &mut self,
        now: Timestamp,
        from: SocketAddr,
        attempt: u64,
        initiator_conn_id: u64,
        mac1: &[u8; MAC_LEN],
    ) -> Handled {
        let cid = if let Some(&cid) = self.by_peer.get(&(from, initiator_conn_id)) {
            if !matches!(
                self.sessions.get(&cid).map(|s| &s.phase),
                Some(Phase::Unconfirmed)
            ) {
                return self.dropped(DropReason::UnexpectedMessage, Some(cid));
            }
            if let Some(s) = self.sessions.get_mut(&cid) {
                s.last_recv = now;
            }
            cid
        } else {
            if self.sessions.len() >= self.cfg.max_sessions {
                return self.dropped(DropReason::SessionLimit, None);
            }
            if self.unconfirmed >= self.cfg.max_unconfirmed {
                return self.dropped(DropReason::HandshakeQueueFull, None);
            }
            if let Err(refused) = self.admit_initiation(now, from, initiator_conn_id, attempt, mac1)
            {
                return refused;
            }
            let cid = self.fresh_conn_id();
            let jitter = self.draw_jitter();
            let s = Session::new(
                from,
                initiator_conn_id,
                Role::Server,
                Phase::Unconfirmed,
                now,
                jitter,
            );
            self.sessions.insert(cid, Box::new(s));
            self.by_peer.insert((from, initiator_conn_id), cid);
            self.unconfirmed += 1;
            cid
        };
        let mut resp = [0u8; INITIATION_LEN];
        let len = handshake::write_plain_response(initiator_conn_id, attempt, cid.0, &mut resp);
        if !self
            .control
            .push(Priority::Session, from, Some(cid), &resp[..len])
        {
            self.stats.control_dropped += 1;
        }
        self.stats.handshakes_completed += 1;
        self.reschedule(cid);
        Handled::Consumed
    }
}
