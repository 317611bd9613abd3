//! What the closed- and open-loop workers share: the clock, the peer
//! rotation, counted sends and receives over a [`Transport`], and live
//! counters.

use super::payload::Probe;
use super::stats::WorkerStats;
use super::transport::{Sink, Transport, ns_since};
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
    /// Block in epoll_wait until shortly before the next send is due (open loop; 1 ms at most
    /// otherwise): leaves the core idle when it can.
    Block,
}

/// One probe that came back to a peer.
#[derive(Debug, Clone, Copy)]
pub struct Reply {
    /// The peer that sent it (for echo: the socket it arrived on).
    pub peer: usize,
    /// What it carried.
    pub probe: Probe,
    /// When it was read (session modes: decrypted), ns since the epoch.
    pub recv_ns: u64,
    /// When it entered the kernel's receive path, ns since the epoch (session modes, on
    /// sockets with receive timestamps: fan-out).
    pub kernel_ns: Option<u64>,
}

/// The timing of one worker's run, ns since its epoch.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Start of the measured window.
    pub measure_start_ns: u64,
    /// End of sending.
    pub end_ns: u64,
    /// How long to wait for an echo before calling it lost.
    pub timeout_ns: u64,
}

/// The state every worker loop has.
pub struct Worker<T> {
    /// This worker's peers and their traffic.
    pub io: T,
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
    /// Peers `0..active` carry the traffic.
    active: usize,
}

impl<T: Transport> Worker<T> {
    /// A worker over `io`, whose clock starts now.
    #[must_use]
    pub fn new(
        io: T,
        payload_len: usize,
        window: Window,
        poll: PollMode,
        live: Arc<LiveCounters>,
    ) -> Self {
        let n = io.peer_count();
        Self {
            io,
            payload_len,
            epoch: Instant::now(),
            measure_start_ns: window.measure_start_ns,
            end_ns: window.end_ns,
            timeout_ns: window.timeout_ns,
            poll,
            live,
            stats: WorkerStats::new(n),
            next_peer: 0,
            active: n.max(1),
        }
    }

    /// Sends on the first `active` peers only (`None`: every peer); the rest stay idle.
    #[must_use]
    pub fn with_active(mut self, active: Option<usize>) -> Self {
        let n = self.io.peer_count().max(1);
        self.active = active.map_or(n, |a| a.clamp(1, n));
        self
    }

    /// ns since the epoch.
    #[must_use]
    pub fn now_ns(&self) -> u64 {
        ns_since(self.epoch)
    }

    /// The peer the next send batch goes out on (round robin over the active peers, so
    /// every one is used even when the window is smaller than their count).
    pub fn next_peer(&mut self) -> usize {
        let p = self.next_peer;
        self.next_peer = (p + 1) % self.active;
        p
    }

    /// Writes `probe` into staging slot `j`, padded to the payload length.
    pub fn stage(&mut self, j: usize, probe: &Probe) {
        let len = self.payload_len;
        let written = probe.encode(self.io.slot_mut(j), len).unwrap_or(0);
        self.io.set_len(j, written);
    }

    /// Sends staging slots `0..n` from `peer`; returns how many went. Slots
    /// from `first_measured` on belong to the measured window and are
    /// counted. Errors return 0 (and are counted).
    pub fn send_batch(&mut self, peer: usize, n: usize, first_measured: usize) -> usize {
        match self.io.send(peer, n) {
            Ok(k) => {
                let measured = k.saturating_sub(first_measured) as u64 * self.io.copies();
                self.stats.sent += measured;
                self.live.sent.fetch_add(measured, Ordering::Relaxed);
                k
            }
            Err(_) => {
                self.stats.errors += 1;
                0
            }
        }
    }

    /// Waits for replies (`wait_ms`: 0 polls; spin mode always polls) and
    /// appends them to `out`.
    pub fn poll_replies(&mut self, wait_ms: i32, out: &mut Vec<Reply>) -> io::Result<()> {
        let timeout = match self.poll {
            PollMode::Spin => 0,
            PollMode::Block => wait_ms,
        };
        let mut sink = Sink {
            epoch: self.epoch,
            out,
            stats: &mut self.stats,
        };
        self.io.poll(timeout, &mut sink)
    }

    /// Records a matched echo if it belongs to the measured window.
    pub fn record(&mut self, reply: &Reply, sent_ns: u64) {
        if sent_ns >= self.measure_start_ns {
            self.stats
                .record(reply.peer, reply.recv_ns.saturating_sub(sent_ns));
            if let Some(f) = &mut self.stats.fanout {
                f.copy(reply.probe.seq, reply.kernel_ns, reply.recv_ns);
            }
            self.live.received.fetch_add(1, Ordering::Relaxed);
        }
    }
}
