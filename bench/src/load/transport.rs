//! What the closed and open loops need from the traffic underneath: staging
//! datagrams for a peer, sending them, and collecting the probes that come
//! back. Raw UDP echo ([`super::echo_io`]) and sessions
//! ([`super::session`]) implement it, so both loops serve every mode.

use super::stats::WorkerStats;
use super::worker::Reply;
use std::io;
use std::time::Instant;

/// One worker's peers and how datagrams reach the server and come back.
pub trait Transport {
    /// Number of peers (indices `0..peer_count()`).
    fn peer_count(&self) -> usize;

    /// Staging slot `j` (of [`super::worker::BATCH`]): the probe datagram is
    /// written here before [`Transport::send`].
    fn slot_mut(&mut self, j: usize) -> &mut [u8];

    /// How many bytes of staging slot `j` the next send carries.
    fn set_len(&mut self, j: usize, len: usize);

    /// Sends staging slots `0..n` from `peer`; returns how many went (a
    /// short count means "try again later"). Would-block is `Ok(0)`.
    fn send(&mut self, peer: usize, n: usize) -> io::Result<usize>;

    /// Replies each sent probe brings back: 1, except in fan-out, where every subscriber
    /// receives each published probe.
    fn copies(&self) -> u64 {
        1
    }

    /// At the end of a run: adds what the transport counted itself to `stats`.
    fn finish(&mut self, stats: &mut WorkerStats) {
        let _ = stats;
    }

    /// Waits up to `timeout_ms` (0: poll) for readable peers and hands
    /// every probe that came back to `sink`.
    fn poll(&mut self, timeout_ms: i32, sink: &mut Sink<'_>) -> io::Result<()>;
}

/// Where [`Transport::poll`] puts what it read.
pub struct Sink<'a> {
    /// Reply times are ns since this.
    pub epoch: Instant,
    /// Probes that came back.
    pub out: &'a mut Vec<Reply>,
    /// Errors and undecodable datagrams are counted here.
    pub stats: &'a mut WorkerStats,
}

/// ns since `epoch`.
#[must_use]
pub fn ns_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}
