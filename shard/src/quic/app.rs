//! The application's side of QUIC on a shard: [`QuicApp`] (connection, stream and DATAGRAM
//! events, one instance per shard) and [`QuicConn`], what a callback can do to the connection
//! it is called for. In the style of the session app
//! ([`SessionApp`](crate::session::SessionApp)): events in, explicit outcomes out.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use quinn_proto::{
    Connection, ConnectionError, Dir, FinishError, ReadError, ReadableError, SendDatagramError,
    StreamId, VarInt, WriteError,
};

/// A connection's name on its shard: the shard's index in the top 16 bits and a per-shard
/// sequence number below, never reused while the shard runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QuicConnId(pub u64);

impl QuicConnId {
    /// The shard that owns the connection.
    pub fn shard(self) -> usize {
        (self.0 >> 48) as usize
    }
}

/// What [`QuicConn::read`] found on a stream (after appending what it read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamRead {
    /// The stream is open; more may come (a `on_readable` call says when).
    Open,
    /// The peer finished the stream and every byte has been read.
    Finished,
    /// The peer reset the stream with this code.
    Reset(VarInt),
    /// No such stream to read (never opened, already finished and read, or stopped).
    Closed,
}

/// Application logic on QUIC connections, one instance per shard. Every callback runs on the
/// shard's thread, inside its loop turn; what it writes is sent with that turn.
pub trait QuicApp {
    /// A client's first Initial arrived from `remote` (address not yet validated unless
    /// `retry` is on): accept it? `false` refuses it (`CONNECTION_REFUSED`, counted as
    /// `quic_refused_by_app`) with no connection state kept. Default: accept.
    fn admit(&mut self, remote: SocketAddr) -> bool {
        let _ = remote;
        true
    }

    /// The handshake completed.
    fn on_connected(&mut self, conn: &mut QuicConn<'_>) {
        let _ = conn;
    }

    /// The peer opened stream `stream` (its direction: [`StreamId::dir`]). An `on_readable`
    /// for it follows at once.
    fn on_stream_opened(&mut self, conn: &mut QuicConn<'_>, stream: StreamId) {
        let _ = (conn, stream);
    }

    /// Stream `stream` may have data (or its end, or a reset) to read with [`QuicConn::read`].
    fn on_readable(&mut self, conn: &mut QuicConn<'_>, stream: StreamId);

    /// Stream `stream`, whose last write was refused with [`WriteError::Blocked`], may take
    /// more.
    fn on_writable(&mut self, conn: &mut QuicConn<'_>, stream: StreamId) {
        let _ = (conn, stream);
    }

    /// The peer asked us to stop sending on `stream` with `code`.
    fn on_stopped(&mut self, conn: &mut QuicConn<'_>, stream: StreamId, code: VarInt) {
        let _ = (conn, stream, code);
    }

    /// A DATAGRAM frame arrived.
    fn on_datagram(&mut self, conn: &mut QuicConn<'_>, bytes: Bytes) {
        let _ = (conn, bytes);
    }

    /// The connection ended: closed by the peer (`ApplicationClosed` with its code), by us
    /// (`LocallyClosed`), timed out, or failed. Called once per connection that was accepted.
    fn on_closed(&mut self, conn: QuicConnId, reason: &ConnectionError) {
        let _ = (conn, reason);
    }

    /// Adds the application's own counters to the shard's reports.
    fn counters(&self, out: &mut Vec<(&'static str, u64)>) {
        let _ = out;
    }
}

/// One connection, as a callback sees it.
pub struct QuicConn<'a> {
    pub(super) id: QuicConnId,
    pub(super) conn: &'a mut Connection,
    pub(super) now: Instant,
}

impl QuicConn<'_> {
    /// The connection's name.
    pub fn id(&self) -> QuicConnId {
        self.id
    }

    /// The peer's address now (it changes when the peer migrates).
    pub fn remote(&self) -> SocketAddr {
        self.conn.remote_address()
    }

    /// The current round-trip estimate.
    pub fn rtt(&self) -> Duration {
        self.conn.rtt()
    }

    /// Opens a stream of our own; `None` when the peer's stream limit is reached (an
    /// `Available` stream event follows when it rises: not reported in this API yet).
    pub fn open_stream(&mut self, dir: Dir) -> Option<StreamId> {
        self.conn.streams().open(dir)
    }

    /// Reads at most `max_bytes` from `stream`, in order, appending the chunks to `out`
    /// (without copying), and says what state the stream is in.
    pub fn read(&mut self, stream: StreamId, max_bytes: usize, out: &mut Vec<Bytes>) -> StreamRead {
        let mut recv = self.conn.recv_stream(stream);
        let mut chunks = match recv.read(true) {
            Ok(chunks) => chunks,
            Err(ReadableError::ClosedStream | ReadableError::IllegalOrderedRead) => {
                return StreamRead::Closed;
            }
        };
        let mut left = max_bytes;
        let status = loop {
            if left == 0 {
                break StreamRead::Open;
            }
            match chunks.next(left) {
                Ok(Some(chunk)) => {
                    left -= chunk.bytes.len();
                    out.push(chunk.bytes);
                }
                Ok(None) => break StreamRead::Finished,
                Err(ReadError::Blocked) => break StreamRead::Open,
                Err(ReadError::Reset(code)) => break StreamRead::Reset(code),
            }
        };
        // Whether a flow-control update must be sent is found by the next transmit poll.
        let _ = chunks.finalize();
        status
    }

    /// Writes as much of `data` as flow control and the send buffer allow; returns how much.
    /// [`WriteError::Blocked`] means nothing fit (an `on_writable` follows).
    pub fn write(&mut self, stream: StreamId, data: &[u8]) -> Result<usize, WriteError> {
        self.conn.send_stream(stream).write(data)
    }

    /// Ends our side of `stream` after what was written.
    pub fn finish(&mut self, stream: StreamId) -> Result<(), FinishError> {
        self.conn.send_stream(stream).finish()
    }

    /// Asks the peer to stop sending on `stream`, discarding what has not been read.
    pub fn stop(&mut self, stream: StreamId, code: VarInt) {
        let _ = self.conn.recv_stream(stream).stop(code);
    }

    /// Abandons our side of `stream` with `code`.
    pub fn reset(&mut self, stream: StreamId, code: VarInt) {
        let _ = self.conn.send_stream(stream).reset(code);
    }

    /// Queues a DATAGRAM frame. When the queue is full, the oldest queued datagram is dropped
    /// to make room (DATAGRAM frames are unreliable anyway).
    pub fn send_datagram(&mut self, bytes: Bytes) -> Result<(), SendDatagramError> {
        self.conn.datagrams().send(bytes, true)
    }

    /// The largest DATAGRAM payload the path and the peer allow now, or `None` if the peer
    /// does not accept DATAGRAM frames.
    pub fn max_datagram_size(&mut self) -> Option<usize> {
        self.conn.datagrams().max_size()
    }

    /// Closes the connection with an application error code and a reason (sent to the peer,
    /// which sees `ApplicationClosed`).
    pub fn close(&mut self, code: VarInt, reason: &[u8]) {
        self.conn
            .close(self.now, code, Bytes::copy_from_slice(reason));
    }
}
