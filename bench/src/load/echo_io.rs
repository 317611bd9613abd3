//! Raw UDP echo: each peer's probes go out as they are with `sendmmsg`, and
//! the echoes are read with `recvmmsg` from the sockets epoll reports ready.
//!
//! Bulk mode: a peer's batch of probes (all of one size) goes out as
//! `UDP_SEGMENT` sends of up to 64 datagrams (GSO), as a bulk sender would
//! (on loopback the server's socket then gets them coalesced, as a NIC's GRO
//! would hand them over), and the peers read with `UDP_GRO`, splitting each
//! buffer into its datagrams.

use super::payload::{MIN_LEN, Probe};
use super::peers::PeerSet;
use super::transport::{Sink, Transport, ns_since};
use super::worker::{BATCH, Reply};
use crate::sys::gso::{self, GroBatch};
use crate::sys::mmsg::MmsgBatch;
use std::io;

/// Coalesced buffers per `recvmmsg` in bulk mode (64 KiB each).
const GRO_BATCH: usize = 8;

/// How echoes are read.
enum Rx {
    /// One datagram per buffer.
    Plain(MmsgBatch),
    /// Coalesced buffers (bulk mode).
    Gro(GroBatch),
}

/// Peer sockets plus one receive and one send batch.
pub struct EchoIo {
    peers: PeerSet,
    rx: Rx,
    tx: MmsgBatch,
    payload_len: usize,
}

impl EchoIo {
    /// Echo traffic of `payload_len`-byte datagrams over `peers`, in bulk
    /// mode with `bulk` (the peers opened for it). Batches are allocated
    /// here: call on the worker's own thread.
    #[must_use]
    pub fn new(peers: PeerSet, payload_len: usize, bulk: bool) -> Self {
        let rx = if bulk {
            Rx::Gro(GroBatch::new(GRO_BATCH, false))
        } else {
            Rx::Plain(MmsgBatch::new(BATCH, payload_len.max(MIN_LEN), false))
        };
        Self {
            peers,
            rx,
            tx: MmsgBatch::new(BATCH, payload_len, false),
            payload_len,
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
        let fd = self.peers.fd(peer);
        let result = match self.rx {
            // Every probe is `payload_len` bytes, so slots 0..n lie back to back.
            Rx::Gro(_) => gso::send_segmented(fd, self.tx.filled(n), self.payload_len),
            Rx::Plain(_) => self.tx.send(fd, 0, n, 0),
        };
        match result {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            r => r,
        }
    }

    fn poll(&mut self, timeout_ms: i32, sink: &mut Sink<'_>) -> io::Result<()> {
        let Sink { epoch, out, stats } = sink;
        let mut push = |peer: usize, bytes: &[u8], recv_ns: u64| match Probe::decode(bytes) {
            Some(probe) => out.push(Reply {
                peer,
                probe,
                recv_ns,
                kernel_ns: None,
            }),
            None => stats.misrouted += 1,
        };
        let errors = match &mut self.rx {
            Rx::Plain(rx) => self.peers.for_each_ready(timeout_ms, rx, |peer, rx, n| {
                let recv_ns = ns_since(*epoch);
                for i in 0..n {
                    push(peer, rx.received(i), recv_ns);
                }
            }),
            Rx::Gro(rx) => self.peers.for_each_ready(timeout_ms, rx, |peer, rx, n| {
                let recv_ns = ns_since(*epoch);
                for i in 0..n {
                    for datagram in rx.datagrams(i) {
                        push(peer, datagram, recv_ns);
                    }
                }
            }),
        }?;
        stats.errors += errors;
        Ok(())
    }
}
