//! What the closed- and open-loop workers share: the clock, the peer
//! rotation, batched receive into [`Reply`]s, and live counters.

use super::payload::Probe;
use super::peers::PeerSet;
use super::stats::WorkerStats;
use crate::sys::mmsg::MmsgBatch;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Datagrams per `recvmmsg` / `sendmmsg`.
pub const BATCH: usize = 64;

/// Counters the progress line reads while workers run (measured window only).
#[derive(Debug, Default)]
pub struct LiveCounters {
    /// Datagrams sent.
    pub sent: AtomicU64,
    /// Echoes matched.
    pub received: AtomicU64,
}

/// How a worker waits for echoes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum PollMode {
    /// Busy-poll epoll (timeout 0): lowest added latency, burns the core.
    Spin,
    /// Block in epoll_wait (1 ms at most): leaves the core idle when it can.
    Block,
}

/// One echo read back from a peer socket.
#[derive(Debug, Clone, Copy)]
pub struct Reply {
    /// The socket it arrived on.
    pub peer: usize,
    /// What it carried.
    pub probe: Probe,
    /// When the batch it came in was read, ns since the epoch.
    pub recv_ns: u64,
}

/// The state every worker loop has.
pub struct Worker {
    /// This worker's peers.
    pub peers: PeerSet,
    /// Receive batch.
    pub rx: MmsgBatch,
    /// Send batch.
    pub tx: MmsgBatch,
    /// Datagram length.
    pub payload_len: usize,
    /// The run's clock epoch; probe times are ns since it.
    pub epoch: Instant,
    /// Start of the measured window, ns since the epoch.
    pub measure_start_ns: u64,
    /// End of sending, ns since the epoch.
    pub end_ns: u64,
    /// How long to wait for an echo before calling it lost, ns.
    pub timeout_ns: u64,
    /// How to wait.
    pub poll: PollMode,
    /// Counters for the progress line.
    pub live: Arc<LiveCounters>,
    /// Final counters.
    pub stats: WorkerStats,
    next_peer: usize,
}

impl Worker {
    /// A worker over `peers` (batches are allocated here, on the worker's
    /// own thread).
    #[allow(clippy::too_many_arguments)]
    #[must_use]
    pub fn new(
        peers: PeerSet,
        payload_len: usize,
        epoch: Instant,
        measure_start_ns: u64,
        end_ns: u64,
        timeout_ns: u64,
        poll: PollMode,
        live: Arc<LiveCounters>,
    ) -> Self {
        let n = peers.len();
        Self {
            peers,
            rx: MmsgBatch::new(BATCH, payload_len.max(super::payload::MIN_LEN), false),
            tx: MmsgBatch::new(BATCH, payload_len, false),
            payload_len,
            epoch,
            measure_start_ns,
            end_ns,
            timeout_ns,
            poll,
            live,
            stats: WorkerStats::new(n),
            next_peer: 0,
        }
    }

    /// ns since the epoch.
    #[must_use]
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The peer the next send batch goes out on (round robin, so every peer
    /// is used even when the window is smaller than the peer count).
    pub fn next_peer(&mut self) -> usize {
        let p = self.next_peer;
        self.next_peer = (p + 1) % self.peers.len().max(1);
        p
    }

    /// Sends `tx` slots `0..n` from `peer`; returns how many went. Slots from
    /// `first_measured` on belong to the measured window and are counted.
    /// Would-block and errors return 0 (errors are counted).
    pub fn send_batch(&mut self, peer: usize, n: usize, first_measured: usize) -> usize {
        let fd = self.peers.fd(peer);
        match self.tx.send(fd, 0, n, 0) {
            Ok(k) => {
                let measured = k.saturating_sub(first_measured) as u64;
                self.stats.sent += measured;
                self.live.sent.fetch_add(measured, Ordering::Relaxed);
                k
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(_) => {
                self.stats.errors += 1;
                0
            }
        }
    }

    /// Waits for readable peers (`wait_ms`: 0 polls) and appends every echo
    /// they hold to `out`.
    pub fn poll_replies(&mut self, wait_ms: i32, out: &mut Vec<Reply>) -> io::Result<()> {
        let timeout = match self.poll {
            PollMode::Spin => 0,
            PollMode::Block => wait_ms,
        };
        let ready = self.peers.epoll_mut().wait(timeout)?;
        for r in 0..ready {
            let peer = usize::try_from(self.peers.epoll_mut().token(r)).unwrap_or(usize::MAX);
            if peer >= self.peers.len() {
                continue;
            }
            let fd = self.peers.fd(peer);
            loop {
                let n = match self.rx.recv(fd, BATCH, libc::MSG_DONTWAIT) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        self.stats.errors += 1;
                        break;
                    }
                };
                let recv_ns = self.now_ns();
                for i in 0..n {
                    match Probe::decode(self.rx.received(i)) {
                        Some(probe) => out.push(Reply {
                            peer,
                            probe,
                            recv_ns,
                        }),
                        None => self.stats.misrouted += 1,
                    }
                }
                if n < BATCH {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Records a matched echo if it belongs to the measured window.
    pub fn record(&mut self, reply: &Reply, sent_ns: u64) {
        if sent_ns >= self.measure_start_ns {
            self.stats
                .record(reply.peer, reply.recv_ns.saturating_sub(sent_ns));
            self.live.received.fetch_add(1, Ordering::Relaxed);
        }
    }
}
