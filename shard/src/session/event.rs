//! What the endpoint tells its driver: outcomes of each call, transmits and application events.
#![forbid(unsafe_code)]

use std::net::SocketAddr;

use super::conn_id::ConnId;
use super::drop_reason::DropReason;

/// Why a session ended. Carried on the wire by Close (see `docs/PROTOCOL.md` for the codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// Orderly close by the application. Code 0.
    Normal,
    /// Nothing was received for the idle timeout. Code 1.
    IdleTimeout,
    /// The peer broke the protocol. Code 2.
    ProtocolError,
    /// The application closed with its own code. Code 3, the code in the app field.
    Application(u16),
    /// The handshake did not complete in time (local only: never sent). Code 4.
    HandshakeTimeout,
    /// The endpoint is shutting down. Code 5.
    ShuttingDown,
    /// The connection manager closed the session to make room (its share of the node's
    /// high watermark was exceeded, or the application forced a trim). Code 6.
    Trimmed,
    /// The peer answered with an authenticated stateless Reset: it has no such session (it
    /// restarted, or freed it). Local only: never sent. Code 7.
    Reset,
    /// The responder's admission control refused the handshake for good (an authentic
    /// `Refused` answered our latest Initiation: the responder's memory, shard, node or
    /// source-prefix cap is reached). Local only: never sent. Code 8.
    Refused,
}

impl CloseReason {
    /// `(code, app_code)` as carried by a Close message.
    #[must_use]
    pub const fn to_wire(self) -> (u16, u16) {
        match self {
            CloseReason::Normal => (0, 0),
            CloseReason::IdleTimeout => (1, 0),
            CloseReason::ProtocolError => (2, 0),
            CloseReason::Application(c) => (3, c),
            CloseReason::HandshakeTimeout => (4, 0),
            CloseReason::ShuttingDown => (5, 0),
            CloseReason::Trimmed => (6, 0),
            CloseReason::Reset => (7, 0),
            CloseReason::Refused => (8, 0),
        }
    }

    /// Decodes a Close message's fields; `None` for unknown codes or a stray app code.
    #[must_use]
    pub const fn from_wire(code: u16, app: u16) -> Option<Self> {
        Some(match (code, app) {
            (0, 0) => CloseReason::Normal,
            (1, 0) => CloseReason::IdleTimeout,
            (2, 0) => CloseReason::ProtocolError,
            (3, c) => CloseReason::Application(c),
            (4, 0) => CloseReason::HandshakeTimeout,
            (5, 0) => CloseReason::ShuttingDown,
            (6, 0) => CloseReason::Trimmed,
            (7, 0) => CloseReason::Reset,
            (8, 0) => CloseReason::Refused,
            _ => return None,
        })
    }
}

/// Which side ended a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Closer {
    /// This endpoint (the application, or a local timer).
    Local,
    /// The peer, by a Close message.
    Peer,
}

/// Something the application should learn. Drained with `Endpoint::poll_event`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// A session finished its handshake: on the initiator when the Response arrives, on the
    /// responder when the first authenticated datagram from the initiator confirms it.
    Connected {
        /// The local connection ID.
        conn: ConnId,
        /// The peer's address.
        peer: SocketAddr,
    },
    /// An application datagram arrived.
    Message {
        /// The local connection ID.
        conn: ConnId,
        /// The payload.
        bytes: Vec<u8>,
    },
    /// A session ended and was freed; its ID is unknown from now on. Emitted exactly once per
    /// session, including sessions whose handshake never completed.
    Disconnected {
        /// The local connection ID.
        conn: ConnId,
        /// Why.
        reason: CloseReason,
        /// Who closed it.
        by: Closer,
    },
}

/// What `Endpoint::handle_datagram` did with a datagram.
#[must_use = "a datagram owned by another shard must be forwarded to it"]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Handled {
    /// Processed; events and transmits may now be pending.
    Consumed,
    /// Belongs to a session of shard `k`: forward the raw datagram (and its source address)
    /// to that shard, which will handle it as if it had received it.
    OtherShard(u16),
    /// Dropped without reply, counted under this reason.
    Dropped(DropReason),
}

/// What `Endpoint::send` did with a message.
#[must_use = "Full and UnknownConnection mean the message was not queued"]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SendOutcome {
    /// Queued; it goes out on a later `poll_transmit` (after the handshake, if one is running).
    Queued,
    /// The session's data queue is at capacity; nothing was queued. Retry after transmits.
    Full,
    /// The payload does not fit one datagram (`EndpointConfig::max_payload`).
    TooLarge,
    /// No such session: never existed, or closed and freed (closing frees at once).
    UnknownConnection,
}

/// Why `Endpoint::connect` failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The endpoint holds `max_sessions` sessions.
    #[error("session table full")]
    SessionLimit,
    /// The control queue has no room for the Initiation.
    #[error("control queue full")]
    ControlQueueFull,
    /// A Noise endpoint needs the server's static public key to connect.
    #[error("no server public key given")]
    NoServerKey,
    /// The handshake could not be built (snow refused the keys).
    #[error("handshake setup failed")]
    Handshake,
    /// Admission control refused the session (memory budget, shard or node cap).
    #[error("admission refused: {0}")]
    Refused(crate::session::admission::RefusalReason),
}

/// One datagram to send, written by `Endpoint::poll_transmit` at the start of the caller's
/// buffer.
#[must_use = "a transmit must be sent"]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Transmit {
    /// Where to send it.
    pub dst: SocketAddr,
    /// How many bytes of the buffer to send.
    pub len: usize,
    /// The session it belongs to (`None` for stateless handshake replies): pass it to
    /// `Endpoint::on_send_completed` when the send's completion arrives.
    pub conn: Option<ConnId>,
}
