//! What one worker counted, and merging workers into one total.

use hdrhistogram::Histogram;

/// Highest latency the histogram tracks: 60 s, in ns.
const MAX_TRACKED_NS: u64 = 60_000_000_000;

/// An empty histogram of ns from 1 ns to 60 s, 3 significant digits.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKED_NS, 3).expect("constant histogram bounds are valid")
}

/// Counters and the latency histogram (ns) of one worker, for the measured
/// window only (after warm-up).
#[derive(Debug, Clone)]
pub struct WorkerStats {
    /// Datagrams sent.
    pub sent: u64,
    /// Echoes received and matched.
    pub received: u64,
    /// Closed loop: window slots that timed out (each counted once).
    pub timeouts: u64,
    /// Closed loop: echoes that arrived after their slot timed out.
    pub late: u64,
    /// Send/receive errors (e.g. ECONNREFUSED when nothing listens).
    pub errors: u64,
    /// Echoes that arrived on another peer's socket or did not decode.
    pub misrouted: u64,
    /// Open loop: measured datagrams the schedule held that never went out: sending stops a
    /// timeout after the end even when the client could not send them (its sessions down).
    pub unsent: u64,
    /// Relay modes: `Unreachable` replies (the relay knew no session by the destination ID;
    /// the probe is lost).
    pub unreachable: u64,
    /// Session modes: sessions that ended during the traffic phase (closed by the server,
    /// timed out); each is opened again (until it is ready, when it counts in
    /// `sessions_reopened`, its failed attempts are not counted again).
    pub sessions_lost: u64,
    /// Session modes: sessions opened again after one ended, and ready for traffic.
    pub sessions_reopened: u64,
    /// Session modes: datagrams the client's endpoint dropped, all reasons (e.g. for a
    /// session it had already closed).
    pub endpoint_drops: u64,
    /// Session modes: datagrams a send call refused (e.g. `ECONNREFUSED` while no server
    /// listened); the messages in them are lost.
    pub send_failed: u64,
    /// Open loop: largest delay between a datagram's intended and actual
    /// send time, ns (the client's own lag, included in its latency).
    pub max_send_lag_ns: u64,
    /// Open loop: datagrams sent more than 1 ms after their intended time.
    pub sent_late: u64,
    /// The client's lag behind its schedule per measured datagram, ns:
    /// open loop, actual minus intended send time; closed loop, a window
    /// slot's re-send after the echo (or timeout) that freed it.
    pub send_lag_ns: Histogram<u64>,
    /// Involuntary context switches of the worker thread over its loop
    /// (warm-up and drain included).
    pub involuntary_switches: u64,
    /// Round-trip latency, ns.
    pub latency_ns: Histogram<u64>,
    /// Which peers got at least one echo back.
    pub responded: Vec<bool>,
    /// Fan-out mode: when the copies of each publish left the server and reached the client.
    pub fanout: Option<super::fanout::FanoutStats>,
}

impl WorkerStats {
    /// Empty stats for a worker with `peers` peers.
    #[must_use]
    pub fn new(peers: usize) -> Self {
        Self {
            sent: 0,
            received: 0,
            timeouts: 0,
            late: 0,
            errors: 0,
            misrouted: 0,
            unsent: 0,
            unreachable: 0,
            sessions_lost: 0,
            sessions_reopened: 0,
            endpoint_drops: 0,
            send_failed: 0,
            max_send_lag_ns: 0,
            sent_late: 0,
            send_lag_ns: histogram(),
            involuntary_switches: 0,
            latency_ns: histogram(),
            responded: vec![false; peers],
            fanout: None,
        }
    }

    /// Records how far behind its schedule one measured datagram went out.
    pub fn record_lag(&mut self, lag_ns: u64) {
        self.send_lag_ns.saturating_record(lag_ns.max(1));
    }

    /// Records one matched echo.
    pub fn record(&mut self, peer: usize, latency_ns: u64) {
        self.received += 1;
        self.latency_ns.saturating_record(latency_ns.max(1));
        if let Some(r) = self.responded.get_mut(peer) {
            *r = true;
        }
    }
}

/// All workers' stats added up.
#[derive(Debug, Clone)]
pub struct Totals {
    /// Counters summed over the workers (the max lag is the largest), histograms merged; its
    /// `responded` is empty: see `peers_responded`.
    pub stats: WorkerStats,
    /// Peers (over all workers) that got at least one echo.
    pub peers_responded: usize,
}

impl WorkerStats {
    /// Adds `other`'s counters and latencies to these.
    fn absorb(&mut self, other: &WorkerStats) {
        self.sent += other.sent;
        self.received += other.received;
        self.timeouts += other.timeouts;
        self.late += other.late;
        self.errors += other.errors;
        self.misrouted += other.misrouted;
        self.unsent += other.unsent;
        self.unreachable += other.unreachable;
        self.sessions_lost += other.sessions_lost;
        self.sessions_reopened += other.sessions_reopened;
        self.endpoint_drops += other.endpoint_drops;
        self.send_failed += other.send_failed;
        self.max_send_lag_ns = self.max_send_lag_ns.max(other.max_send_lag_ns);
        self.sent_late += other.sent_late;
        self.involuntary_switches += other.involuntary_switches;
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency_ns.add(&other.latency_ns);
        let _ = self.send_lag_ns.add(&other.send_lag_ns);
        if let Some(o) = &other.fanout {
            self.fanout.get_or_insert_default().absorb(o);
        }
    }
}

impl Totals {
    /// Adds up `workers`.
    #[must_use]
    pub fn merge(workers: &[WorkerStats]) -> Self {
        let mut stats = WorkerStats::new(0);
        let mut peers_responded = 0;
        for w in workers {
            stats.absorb(w);
            peers_responded += w.responded.iter().filter(|&&r| r).count();
        }
        Totals {
            stats,
            peers_responded,
        }
    }
}
