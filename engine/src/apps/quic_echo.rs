//! `quic-echo`: QUIC connections whose streams and DATAGRAM frames are echoed. A
//! bidirectional stream's bytes go back on the same stream, and the stream is finished when the
//! peer's is; a unidirectional stream's bytes go back on a unidirectional stream the server
//! opens; every DATAGRAM frame is sent back as one.
//!
//! Memory is bounded per stream: at most [`QuicEcho::STREAM_BUFFER`] bytes read and not yet
//! written back; past that the app stops reading until the peer takes what was written, so
//! QUIC's flow control pushes back on the sender.
#![forbid(unsafe_code)]

use std::collections::{HashMap, VecDeque};

use bytes::{Buf, Bytes};
use ringwire_shard::quic::proto::{ConnectionError, Dir, StreamId, VarInt, WriteError};
use ringwire_shard::quic::{QuicApp, QuicConn, QuicConnId, StreamRead};

/// The stream error code sent when the server cannot open the stream it echoes a
/// unidirectional stream on (the peer's stream limit).
pub const NO_ECHO_STREAM: u32 = 1;

/// Bytes read from one stream and not yet written back.
#[derive(Debug)]
struct Pending {
    /// Where the bytes go back: the same stream (bidirectional) or one we opened.
    target: StreamId,
    queue: VecDeque<Bytes>,
    queued: usize,
    /// The peer finished its stream and everything was read.
    finished: bool,
}

/// Echoes streams and DATAGRAM frames on every connection of one shard.
#[derive(Debug, Default)]
pub struct QuicEcho {
    /// Per connection, per incoming stream.
    streams: HashMap<QuicConnId, HashMap<StreamId, Pending>>,
    /// Per connection, our unidirectional echo stream -> the peer's stream it echoes.
    echo_of: HashMap<QuicConnId, HashMap<StreamId, StreamId>>,
    scratch: Vec<Bytes>,
    connected: u64,
    closed: u64,
    closed_by_peer: u64,
    stream_bytes: u64,
    streams_echoed: u64,
    datagrams: u64,
    datagrams_refused: u64,
    streams_refused: u64,
}

impl QuicEcho {
    /// Bytes read from one stream and not yet written back, at most.
    pub const STREAM_BUFFER: usize = 64 * 1024;

    /// Reads what the buffer has room for and writes back what the stream takes, until
    /// neither moves.
    fn pump(&mut self, conn: &mut QuicConn<'_>, stream: StreamId) {
        let id = conn.id();
        let Some(p) = self.streams.get_mut(&id).and_then(|s| s.get_mut(&stream)) else {
            return;
        };
        loop {
            let mut moved = false;
            if !p.finished && p.queued < Self::STREAM_BUFFER {
                let status = conn.read(stream, Self::STREAM_BUFFER - p.queued, &mut self.scratch);
                for b in self.scratch.drain(..) {
                    moved = true;
                    p.queued += b.len();
                    p.queue.push_back(b);
                }
                match status {
                    StreamRead::Open => {}
                    StreamRead::Finished => p.finished = true,
                    StreamRead::Reset(code) => {
                        conn.reset(p.target, code);
                        self.forget(id, stream);
                        return;
                    }
                    StreamRead::Closed => p.finished = true,
                }
            }
            while let Some(front) = p.queue.front_mut() {
                match conn.write(p.target, front) {
                    Ok(n) => {
                        moved |= n > 0;
                        self.stream_bytes += n as u64;
                        p.queued -= n;
                        front.advance(n);
                        if front.is_empty() {
                            p.queue.pop_front();
                        }
                    }
                    Err(WriteError::Blocked) => break,
                    Err(_) => {
                        // Stopped by the peer or closed: nothing more goes back.
                        conn.stop(stream, VarInt::from_u32(0));
                        self.forget(id, stream);
                        return;
                    }
                }
            }
            if p.queue.is_empty() && p.finished {
                let _ = conn.finish(p.target);
                self.streams_echoed += 1;
                self.forget(id, stream);
                return;
            }
            if !moved {
                return;
            }
        }
    }

    fn forget(&mut self, conn: QuicConnId, stream: StreamId) {
        if let Some(s) = self.streams.get_mut(&conn)
            && let Some(p) = s.remove(&stream)
            && p.target != stream
            && let Some(e) = self.echo_of.get_mut(&conn)
        {
            e.remove(&p.target);
        }
    }
}

impl QuicApp for QuicEcho {
    fn on_connected(&mut self, _conn: &mut QuicConn<'_>) {
        self.connected += 1;
    }

    fn on_stream_opened(&mut self, conn: &mut QuicConn<'_>, stream: StreamId) {
        let target = match stream.dir() {
            Dir::Bi => stream,
            Dir::Uni => match conn.open_stream(Dir::Uni) {
                Some(ours) => {
                    self.echo_of
                        .entry(conn.id())
                        .or_default()
                        .insert(ours, stream);
                    ours
                }
                None => {
                    self.streams_refused += 1;
                    conn.stop(stream, VarInt::from_u32(NO_ECHO_STREAM));
                    return;
                }
            },
        };
        self.streams.entry(conn.id()).or_default().insert(
            stream,
            Pending {
                target,
                queue: VecDeque::new(),
                queued: 0,
                finished: false,
            },
        );
    }

    fn on_readable(&mut self, conn: &mut QuicConn<'_>, stream: StreamId) {
        self.pump(conn, stream);
    }

    fn on_writable(&mut self, conn: &mut QuicConn<'_>, stream: StreamId) {
        let source = self
            .echo_of
            .get(&conn.id())
            .and_then(|e| e.get(&stream))
            .copied()
            .unwrap_or(stream);
        self.pump(conn, source);
    }

    fn on_stopped(&mut self, conn: &mut QuicConn<'_>, stream: StreamId, code: VarInt) {
        let source = self
            .echo_of
            .get(&conn.id())
            .and_then(|e| e.get(&stream))
            .copied()
            .unwrap_or(stream);
        conn.stop(source, code);
        self.forget(conn.id(), source);
    }

    fn on_datagram(&mut self, conn: &mut QuicConn<'_>, bytes: Bytes) {
        match conn.send_datagram(bytes) {
            Ok(()) => self.datagrams += 1,
            Err(_) => self.datagrams_refused += 1,
        }
    }

    fn on_closed(&mut self, conn: QuicConnId, reason: &ConnectionError) {
        self.closed += 1;
        if matches!(reason, ConnectionError::ApplicationClosed(_)) {
            self.closed_by_peer += 1;
        }
        self.streams.remove(&conn);
        self.echo_of.remove(&conn);
    }

    fn counters(&self, out: &mut Vec<(&'static str, u64)>) {
        out.extend([
            ("quic_echo_connected", self.connected),
            ("quic_echo_closed", self.closed),
            ("quic_echo_closed_by_peer", self.closed_by_peer),
            ("quic_echo_stream_bytes", self.stream_bytes),
            ("quic_echo_streams", self.streams_echoed),
            ("quic_echo_streams_refused", self.streams_refused),
            ("quic_echo_datagrams", self.datagrams),
            ("quic_echo_datagrams_refused", self.datagrams_refused),
        ]);
    }
}
