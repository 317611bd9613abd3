//! The control queue: handshake messages, CookieReply, Reset, Ping, Pong and Close.
//!
//! Control frames are encoded (and encrypted) when queued (they are at most
//! [`MAX_CONTROL_LEN`] bytes, stored inline: no allocation per frame) and always leave before
//! any Data. Data never takes their room: the queue is separate, and only stateless replies
//! (CookieReply, Reset) are capped (at half the capacity) so that a flood cannot crowd out the
//! frames of live sessions. Timers stop short of three quarters: their frames (Ping, Close,
//! Initiation retransmission) wait in the timer heap instead, never dropped, until the queue
//! drains.
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;

use super::conn_id::ConnId;
use super::wire::MAX_CONTROL_LEN;

/// One encoded control datagram.
#[derive(Clone, Debug)]
pub(crate) struct ControlFrame {
    pub dst: SocketAddr,
    pub conn: Option<ConnId>,
    pub len: u8,
    pub bytes: [u8; MAX_CONTROL_LEN],
}

/// Who is queuing: stateless replies get only half the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Priority {
    /// A frame of a live session.
    Session,
    /// A stateless reply (CookieReply, Reset).
    Stateless,
}

#[derive(Debug)]
pub(crate) struct ControlQueue {
    frames: VecDeque<ControlFrame>,
    capacity: usize,
}

impl ControlQueue {
    pub fn new(capacity: usize) -> Self {
        ControlQueue {
            frames: VecDeque::new(),
            capacity: capacity.max(2),
        }
    }

    /// Whether a frame of `priority` would fit now.
    pub fn has_room_for(&self, priority: Priority) -> bool {
        let limit = match priority {
            Priority::Session => self.capacity,
            Priority::Stateless => self.capacity / 2,
        };
        self.frames.len() < limit
    }

    /// Queues an encoded frame; `false` (nothing queued) if its share of the queue is full or
    /// the frame is longer than [`MAX_CONTROL_LEN`].
    #[must_use]
    pub fn push(
        &mut self,
        priority: Priority,
        dst: SocketAddr,
        conn: Option<ConnId>,
        frame: &[u8],
    ) -> bool {
        if !self.has_room_for(priority) || frame.len() > MAX_CONTROL_LEN {
            return false;
        }
        let mut bytes = [0u8; MAX_CONTROL_LEN];
        bytes[..frame.len()].copy_from_slice(frame);
        let Ok(len) = u8::try_from(frame.len()) else {
            return false;
        };
        self.frames.push_back(ControlFrame {
            dst,
            conn,
            len,
            bytes,
        });
        true
    }

    pub fn pop(&mut self) -> Option<ControlFrame> {
        self.frames.pop_front()
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether a Session-priority frame would fit.
    pub fn has_room(&self) -> bool {
        self.frames.len() < self.capacity
    }

    /// Whether a timer may queue its frame: timers can wait for the queue to drain without
    /// losing anything, so they fill at most three quarters of it and leave the rest to the
    /// replies a received datagram asks for (Pong, Response, CookieReply), which cannot wait.
    pub fn has_room_for_timers(&self) -> bool {
        self.room_for_timers() > 0
    }

    /// How many frames timers may still queue (see [`ControlQueue::has_room_for_timers`]).
    pub fn room_for_timers(&self) -> usize {
        (self.capacity - self.capacity / 4).saturating_sub(self.frames.len())
    }
}
