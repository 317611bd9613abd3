//! Raw UDP echo: each peer's probes go out as they are with `sendmmsg`, and
//! the echoes are read with `recvmmsg` from the sockets epoll reports ready.

use super::payload::{MIN_LEN, Probe};
use super::peers::PeerSet;
use super::transport::{Sink, Transport, ns_since};
use super::worker::{BATCH, Reply};
use crate::sys::mmsg::MmsgBatch;
use std::io;

/// Peer sockets plus one receive and one send batch.
pub struct EchoIo {
    peers: PeerSet,
    rx: MmsgBatch,
    tx: MmsgBatch,
}

impl EchoIo {
    /// Echo traffic of `payload_len`-byte datagrams over `peers` (batches
    /// are allocated here: call on the worker's own thread).
    #[must_use]
    pub fn new(peers: PeerSet, payload_len: usize) -> Self {
        Self {
            peers,
            rx: MmsgBatch::new(BATCH, payload_len.max(MIN_LEN), false),
            tx: MmsgBatch::new(BATCH, payload_len, false),
        }
    }
}

impl Transport for EchoIo {
    fn peer_count(&self) -> usize {
        self.peers.len()
    }

    fn slot_mut(&mut self, j: usize) -> &mut [u8] {
        self.tx.slot_mut(j)
    }

    fn set_len(&mut self, j: usize, len: usize) {
        self.tx.set_len(j, len);
    }

    fn send(&mut self, peer: usize, n: usize) -> io::Result<usize> {
        match self.tx.send(self.peers.fd(peer), 0, n, 0) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            r => r,
        }
    }

    fn poll(&mut self, timeout_ms: i32, sink: &mut Sink<'_>) -> io::Result<()> {
        let Sink { epoch, out, stats } = sink;
        let rx = &mut self.rx;
        self.peers
            .for_each_ready(timeout_ms, rx, |peer, rx, n| {
                let recv_ns = ns_since(*epoch);
                for i in 0..n {
                    match Probe::decode(rx.received(i)) {
                        Some(probe) => out.push(Reply {
                            peer,
                            probe,
                            recv_ns,
                        }),
                        None => stats.misrouted += 1,
                    }
                }
            })
            .map(|errors| stats.errors += errors)
    }
}
