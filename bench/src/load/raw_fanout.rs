//! Plain-UDP fan-out against the fan-out floor (`ringwire-bench server --kind mmsg-fanout`):
//! the same schedule, probes and timing as the relay's fan-out mode ([`super::fanout`]), with
//! no sessions and no cryptography.
//!
//! Session `i` lives on peer socket `i % sockets`, as in the session modes: session 0 publishes
//! (its probes go out from socket 0 as they are), every other session subscribes with its own
//! number ([`crate::server::mmsg_fanout::subscribe_msg`]), so a socket receives as many copies
//! of each publish as it holds subscribers, as against the relay. Every copy is timed by its
//! kernel receive timestamp (`SO_TIMESTAMPNS`).

use super::payload::{MIN_LEN, Probe};
use super::peers::PeerSet;
use super::transport::{Sink, Transport, ns_since};
use super::worker::{BATCH, Reply};
use crate::server::mmsg_fanout::{parse_subscribe, subscribe_msg};
use crate::sys::mmsg::{self, MmsgBatch};
use std::io;
use std::time::{Duration, Instant, SystemTime};

/// How long a subscription waits for its acknowledgement before it is sent again.
const RESUBSCRIBE: Duration = Duration::from_millis(200);

/// The publisher and its subscribers over one worker's peer sockets.
pub struct RawFanoutIo {
    peers: PeerSet,
    sessions: usize,
    subscribed: Vec<bool>,
    subscribers: usize,
    rx: MmsgBatch,
    tx: MmsgBatch,
}

impl RawFanoutIo {
    /// `sessions` (at least 2: the publisher and a subscriber) over `peers`, probes of up to
    /// `payload_len` bytes; turns receive timestamps on. Call on the worker thread.
    pub fn new(peers: PeerSet, sessions: usize, payload_len: usize) -> io::Result<Self> {
        for i in 0..peers.len() {
            mmsg::enable_timestamps(peers.fd(i))?;
        }
        Ok(Self {
            peers,
            sessions,
            subscribed: vec![false; sessions],
            subscribers: 0,
            rx: MmsgBatch::new(BATCH, payload_len.max(MIN_LEN), false).with_timestamps(),
            tx: MmsgBatch::new(BATCH, payload_len.max(MIN_LEN), false),
        })
    }

    /// Subscribes every session but the publisher and waits for every acknowledgement (sent
    /// again every 200 ms); fails after `stall` without progress.
    pub fn subscribe_all(&mut self, stall: Duration) -> io::Result<()> {
        let mut last_progress = Instant::now();
        let mut resend = Instant::now();
        let mut first = true;
        while self.subscribers + 1 < self.sessions {
            if first || resend.elapsed() >= RESUBSCRIBE {
                for i in 1..self.sessions {
                    if !self.subscribed[i] {
                        let id = u32::try_from(i).unwrap_or(u32::MAX);
                        let m = subscribe_msg(id);
                        self.tx.slot_mut(0)[..m.len()].copy_from_slice(&m);
                        self.tx.set_len(0, m.len());
                        let fd = self.peers.fd(i % self.peers.len());
                        // A full buffer or a refusal: the next round sends it again.
                        let _ = self.tx.send(fd, 0, 1, 0);
                    }
                }
                first = false;
                resend = Instant::now();
            }
            let before = self.subscribers;
            let mut sink_stats = super::stats::WorkerStats::new(0);
            let mut out = Vec::new();
            let mut sink = Sink {
                epoch: Instant::now(),
                out: &mut out,
                stats: &mut sink_stats,
            };
            self.poll(10, &mut sink)?;
            if self.subscribers > before {
                last_progress = Instant::now();
            } else if last_progress.elapsed() > stall {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{} of {} subscriptions acknowledged",
                        self.subscribers,
                        self.sessions - 1
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl Transport for RawFanoutIo {
    fn peer_count(&self) -> usize {
        self.sessions
    }

    fn copies(&self) -> u64 {
        self.subscribers as u64
    }

    fn slot_mut(&mut self, j: usize) -> &mut [u8] {
        self.tx.slot_mut(j)
    }

    fn set_len(&mut self, j: usize, len: usize) {
        self.tx.set_len(j, len);
    }

    fn send(&mut self, _peer: usize, n: usize) -> io::Result<usize> {
        // The publisher (session 0, socket 0) sends every probe, whichever peer the loop
        // picked; the probe names that peer, and every copy comes back as its reply.
        match self.tx.send(self.peers.fd(0), 0, n, 0) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            r => r,
        }
    }

    fn poll(&mut self, timeout_ms: i32, sink: &mut Sink<'_>) -> io::Result<()> {
        let Sink { epoch, out, stats } = sink;
        let epoch = *epoch;
        // The wall clock at the epoch, to place the kernel's receive times on the run's clock.
        let wall_epoch = SystemTime::now().checked_sub(epoch.elapsed());
        let (subscribed, subscribers) = (&mut self.subscribed, &mut self.subscribers);
        let mut misrouted = 0;
        let errors = self
            .peers
            .for_each_ready(timeout_ms, &mut self.rx, |_, rx, n| {
                for i in 0..n {
                    let bytes = rx.received(i);
                    if let Some(id) = parse_subscribe(bytes) {
                        if let Some(s) = subscribed.get_mut(id as usize)
                            && !std::mem::replace(s, true)
                        {
                            *subscribers += 1;
                        }
                        continue;
                    }
                    let recv_ns = ns_since(epoch);
                    let kernel_ns = rx.kernel_ns_since(i, wall_epoch);
                    match Probe::decode(bytes) {
                        Some(probe) => out.push(Reply {
                            peer: probe.peer as usize,
                            probe,
                            recv_ns,
                            kernel_ns,
                        }),
                        None => misrouted += 1,
                    }
                }
            })?;
        stats.errors += errors;
        stats.misrouted += misrouted;
        Ok(())
    }
}
