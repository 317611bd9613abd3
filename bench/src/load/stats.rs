//! What one worker counted, and merging workers into one total.

use hdrhistogram::Histogram;

/// Highest latency the histogram tracks: 60 s, in ns.
const MAX_TRACKED_NS: u64 = 60_000_000_000;

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
    /// Open loop: largest delay between a datagram's intended and actual
    /// send time, ns (the client's own lag, included in its latency).
    pub max_send_lag_ns: u64,
    /// Open loop: datagrams sent more than 1 ms after their intended time.
    pub sent_late: u64,
    /// Round-trip latency, ns.
    pub latency_ns: Histogram<u64>,
    /// Which peers got at least one echo back.
    pub responded: Vec<bool>,
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
            max_send_lag_ns: 0,
            sent_late: 0,
            latency_ns: Histogram::new_with_bounds(1, MAX_TRACKED_NS, 3)
                .expect("constant histogram bounds are valid"),
            responded: vec![false; peers],
        }
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
    /// Sum of [`WorkerStats::sent`].
    pub sent: u64,
    /// Sum of [`WorkerStats::received`].
    pub received: u64,
    /// Sum of [`WorkerStats::timeouts`].
    pub timeouts: u64,
    /// Sum of [`WorkerStats::late`].
    pub late: u64,
    /// Sum of [`WorkerStats::errors`].
    pub errors: u64,
    /// Sum of [`WorkerStats::misrouted`].
    pub misrouted: u64,
    /// Largest [`WorkerStats::max_send_lag_ns`].
    pub max_send_lag_ns: u64,
    /// Sum of [`WorkerStats::sent_late`].
    pub sent_late: u64,
    /// Merged histogram, ns.
    pub latency_ns: Histogram<u64>,
    /// Peers (over all workers) that got at least one echo.
    pub peers_responded: usize,
}

impl Totals {
    /// Adds up `workers`.
    #[must_use]
    pub fn merge(workers: &[WorkerStats]) -> Self {
        let mut latency_ns = WorkerStats::new(0).latency_ns;
        let mut t = Totals {
            sent: 0,
            received: 0,
            timeouts: 0,
            late: 0,
            errors: 0,
            misrouted: 0,
            max_send_lag_ns: 0,
            sent_late: 0,
            latency_ns: latency_ns.clone(),
            peers_responded: 0,
        };
        for w in workers {
            t.sent += w.sent;
            t.received += w.received;
            t.timeouts += w.timeouts;
            t.late += w.late;
            t.errors += w.errors;
            t.misrouted += w.misrouted;
            t.max_send_lag_ns = t.max_send_lag_ns.max(w.max_send_lag_ns);
            t.sent_late += w.sent_late;
            // Same bounds on both sides, so adding cannot fail.
            let _ = latency_ns.add(&w.latency_ns);
            t.peers_responded += w.responded.iter().filter(|&&r| r).count();
        }
        t.latency_ns = latency_ns;
        t
    }
}
