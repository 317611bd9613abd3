//! The load run's result: a human table on stdout and the same numbers as
//! JSON (`--json FILE`).

use super::session::HandshakeStats;
use super::stats::Totals;
use crate::sys::loadavg::LoadAvg;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencyUs {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest seen.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
}

/// How far behind its schedule the client sent, in microseconds, over the
/// measured datagrams (see [`LoadReport::client_lag_us`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LagUs {
    /// Median.
    pub p50: f64,
    /// 99th percentile: what the validity rule looks at.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl LagUs {
    /// The percentiles of a lag histogram in ns (`None` if it is empty).
    #[must_use]
    pub fn from_histogram(h: &Histogram<u64>) -> Option<Self> {
        (!h.is_empty()).then(|| Self {
            p50: us(h.value_at_quantile(0.5)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
        })
    }
}

/// Everything a load run reports; serialised as the `--json` file.
///
/// Fields added after the first reports were written are optional, so old
/// reports still parse: without `client_lag_us` an open-loop cell has
/// unknown lateness (see [`crate::validity`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// Traffic kind (`echo`).
    pub mode: String,
    /// `closed` or `open`.
    #[serde(rename = "loop")]
    pub loop_kind: String,
    /// Server address.
    pub target: String,
    /// Peer sockets opened.
    pub peers: usize,
    /// Session modes: sessions opened over those sockets (absent: one per peer, or echo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<usize>,
    /// Distinct source addresses (IP and port) among them.
    pub distinct_source_ports: usize,
    /// `--active`: the peers (sessions) that carried traffic; the rest stayed idle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<usize>,
    /// Peers that got at least one echo back in the measured window.
    pub peers_responded: usize,
    /// Worker threads.
    pub threads: usize,
    /// Datagram size, bytes.
    pub payload_bytes: usize,
    /// Closed loop: outstanding datagrams per worker.
    pub window: Option<usize>,
    /// Open loop: target datagrams/s (all workers).
    pub rate: Option<f64>,
    /// Measured window, seconds.
    pub duration_s: f64,
    /// Warm-up before it, seconds.
    pub warmup_s: f64,
    /// Loss timeout, milliseconds.
    pub timeout_ms: u64,
    /// Datagrams sent in the measured window.
    pub sent: u64,
    /// Of those, echoes received back.
    pub received: u64,
    /// `sent - received`.
    pub lost: u64,
    /// Closed loop: window slots that timed out.
    pub timeouts: u64,
    /// Closed loop: echoes that came after their timeout.
    pub late: u64,
    /// Socket errors (e.g. ECONNREFUSED).
    pub errors: u64,
    /// Echoes on the wrong socket or undecodable.
    pub misrouted: u64,
    /// Open loop: measured datagrams never sent (sending stops a timeout after the end, e.g.
    /// while the sessions are down); not in `sent`. 0 in older reports.
    #[serde(default)]
    pub unsent: u64,
    /// Relay modes: `Unreachable` replies (no session by that ID at the relay). 0 in older
    /// reports.
    #[serde(default)]
    pub unreachable: u64,
    /// Session modes: sessions that ended during the traffic phase (each opened again). 0 in
    /// older reports.
    #[serde(default)]
    pub sessions_lost: u64,
    /// Session modes: of those, sessions opened again and ready. 0 in older reports.
    #[serde(default)]
    pub sessions_reopened: u64,
    /// Session modes: datagrams the client's own endpoint dropped (all reasons). 0 in older
    /// reports.
    #[serde(default)]
    pub endpoint_drops: u64,
    /// Session modes: datagrams a send call refused (their messages lost). 0 in older reports.
    #[serde(default)]
    pub send_failed: u64,
    /// Open loop: the client's largest lag behind its schedule, us (0 in
    /// closed loop). Large values mean the client, not only the server, was
    /// slow: its lag is part of the measured latency.
    pub client_max_send_lag_us: f64,
    /// Open loop: datagrams the client sent over 1 ms behind schedule.
    pub client_sent_late: u64,
    /// The client's lag behind its schedule over the measured datagrams:
    /// open loop, the time just before the `sendmmsg` that carried a
    /// datagram minus its intended send time (this lag is inside the
    /// latency figures); closed loop, a window slot's re-send after the echo
    /// or timeout that freed it (the client's turnaround; it is not inside
    /// the latency, which counts from the actual send). Absent in reports
    /// written before it was measured, and when nothing was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_lag_us: Option<LagUs>,
    /// Involuntary context switches of the client's worker threads over
    /// the run (warm-up and drain included): how often the kernel took a
    /// core away from a client that wanted it. A pinned, busy-polling client
    /// on a quiet machine stays near zero. Absent in older reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_involuntary_switches: Option<u64>,
    /// `/proc/loadavg` just before the run (before any traffic). Absent in
    /// older reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loadavg_before: Option<LoadAvg>,
    /// `/proc/loadavg` once every worker finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loadavg_after: Option<LoadAvg>,
    /// Share of the machine's CPU time (all CPUs) the hypervisor took during the measured
    /// window (from the end of the warm-up, after any handshakes, to the end of the run), %
    /// (`/proc/stat` steal, [`crate::sys::steal`]). Absent in older reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steal_pct: Option<f64>,
    /// Echoes received per second of the measured window.
    pub achieved_rps: f64,
    /// Round-trip latency.
    pub latency_us: LatencyUs,
    /// Session modes: sessions ready for traffic after the handshake phase
    /// (relay: also welcomed with their relay ID). Absent in echo mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions_established: Option<usize>,
    /// Session modes: sessions that failed to open (or were not ready when
    /// the handshake phase gave up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake_failures: Option<usize>,
    /// Session modes: wall time of the handshake phase (slowest worker), ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake_ms: Option<f64>,
    /// Bulk mode (`--bulk`): GSO sends and GRO receives at the peers. False
    /// in older reports.
    #[serde(default)]
    pub bulk: bool,
    /// Fan-out mode: when the copies of each publish left the server and when the client had
    /// them ([`super::fanout`]). Absent in other modes and older reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fanout: Option<super::fanout::FanoutUs>,
}

/// The handshake phase over all workers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HandshakeSummary {
    /// Sessions ready.
    pub established: usize,
    /// Sessions that failed.
    pub failed: usize,
    /// Slowest worker's handshake phase, ms.
    pub ms: f64,
}

impl HandshakeSummary {
    /// Adds up the workers' handshake phases.
    #[must_use]
    pub fn merge(workers: &[HandshakeStats]) -> Self {
        Self {
            established: workers.iter().map(|h| h.established).sum(),
            failed: workers.iter().map(|h| h.failed).sum(),
            ms: workers
                .iter()
                .map(|h| h.elapsed.as_secs_f64() * 1e3)
                .fold(0.0, f64::max),
        }
    }
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// Run parameters the report repeats.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// See [`LoadReport::mode`].
    pub mode: String,
    /// See [`LoadReport::target`].
    pub target: String,
    /// See [`LoadReport::peers`].
    pub peers: usize,
    /// See [`LoadReport::sessions`].
    pub sessions: Option<usize>,
    /// See [`LoadReport::distinct_source_ports`].
    pub distinct_source_ports: usize,
    /// See [`LoadReport::threads`].
    pub threads: usize,
    /// See [`LoadReport::payload_bytes`].
    pub payload_bytes: usize,
    /// See [`LoadReport::window`].
    pub window: Option<usize>,
    /// See [`LoadReport::rate`].
    pub rate: Option<f64>,
    /// See [`LoadReport::duration_s`].
    pub duration_s: f64,
    /// See [`LoadReport::warmup_s`].
    pub warmup_s: f64,
    /// See [`LoadReport::timeout_ms`].
    pub timeout_ms: u64,
    /// Session modes: the handshake phase.
    pub handshake: Option<HandshakeSummary>,
    /// See [`LoadReport::bulk`].
    pub bulk: bool,
    /// See [`LoadReport::active`].
    pub active: Option<usize>,
    /// See [`LoadReport::loadavg_before`].
    pub loadavg_before: Option<LoadAvg>,
    /// See [`LoadReport::loadavg_after`].
    pub loadavg_after: Option<LoadAvg>,
    /// See [`LoadReport::steal_pct`].
    pub steal_pct: Option<f64>,
}

impl LoadReport {
    /// Builds the report from the run's parameters and merged counters.
    #[must_use]
    pub fn new(info: RunInfo, totals: &Totals) -> Self {
        let t = &totals.stats;
        let h = &t.latency_ns;
        let empty = h.is_empty();
        let q = |x: f64| {
            if empty {
                0.0
            } else {
                us(h.value_at_quantile(x))
            }
        };
        Self {
            mode: info.mode,
            loop_kind: if info.rate.is_some() {
                "open"
            } else {
                "closed"
            }
            .to_string(),
            target: info.target,
            peers: info.peers,
            sessions: info.sessions,
            distinct_source_ports: info.distinct_source_ports,
            active: info.active,
            peers_responded: totals.peers_responded,
            threads: info.threads,
            payload_bytes: info.payload_bytes,
            window: info.window,
            rate: info.rate,
            duration_s: info.duration_s,
            warmup_s: info.warmup_s,
            timeout_ms: info.timeout_ms,
            sent: t.sent,
            received: t.received,
            lost: t.sent.saturating_sub(t.received),
            timeouts: t.timeouts,
            late: t.late,
            errors: t.errors,
            misrouted: t.misrouted,
            unsent: t.unsent,
            unreachable: t.unreachable,
            sessions_lost: t.sessions_lost,
            sessions_reopened: t.sessions_reopened,
            endpoint_drops: t.endpoint_drops,
            send_failed: t.send_failed,
            client_max_send_lag_us: us(t.max_send_lag_ns),
            client_sent_late: t.sent_late,
            client_lag_us: LagUs::from_histogram(&t.send_lag_ns),
            client_involuntary_switches: Some(t.involuntary_switches),
            loadavg_before: info.loadavg_before,
            loadavg_after: info.loadavg_after,
            steal_pct: info.steal_pct,
            achieved_rps: if info.duration_s > 0.0 {
                t.received as f64 / info.duration_s
            } else {
                0.0
            },
            latency_us: LatencyUs {
                p50: q(0.5),
                p90: q(0.9),
                p99: q(0.99),
                p999: q(0.999),
                max: if empty { 0.0 } else { us(h.max()) },
                mean: if empty { 0.0 } else { h.mean() / 1000.0 },
            },
            sessions_established: info.handshake.map(|h| h.established),
            handshake_failures: info.handshake.map(|h| h.failed),
            handshake_ms: info.handshake.map(|h| h.ms),
            bulk: info.bulk,
            fanout: t
                .fanout
                .as_ref()
                .and_then(super::fanout::FanoutUs::from_stats),
        }
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shape = match (self.window, self.rate) {
            (_, Some(r)) => format!("open loop at {r:.0} datagrams/s"),
            (Some(w), None) => format!("closed loop, window {w} per thread"),
            (None, None) => "closed loop".to_string(),
        };
        writeln!(
            f,
            "{}{} -> {}: {shape}, {}{} peers ({} source ports), {} threads, {} B payload, {} s (+{} s warm-up)",
            self.mode,
            if self.bulk {
                " (bulk: GSO/GRO peers)"
            } else {
                ""
            },
            self.target,
            match (self.sessions, self.active) {
                (Some(s), Some(a)) => format!("{s} sessions ({a} active) over "),
                (Some(s), None) => format!("{s} sessions over "),
                (None, Some(a)) => format!("{a} active of "),
                (None, None) => String::new(),
            },
            self.peers,
            self.distinct_source_ports,
            self.threads,
            self.payload_bytes,
            self.duration_s,
            self.warmup_s
        )?;
        writeln!(
            f,
            "{:>12} {:>12} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "sent",
            "received",
            "resp/s",
            "lost",
            "p50 us",
            "p90 us",
            "p99 us",
            "p99.9 us",
            "max us"
        )?;
        let l = &self.latency_us;
        writeln!(
            f,
            "{:>12} {:>12} {:>12.0} {:>9} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            self.sent,
            self.received,
            self.achieved_rps,
            self.lost,
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max
        )?;
        if let (Some(ok), Some(failed), Some(ms)) = (
            self.sessions_established,
            self.handshake_failures,
            self.handshake_ms,
        ) {
            writeln!(
                f,
                "sessions established {ok}  failed {failed}  handshake phase {ms:.1} ms"
            )?;
        }
        if self.timeouts + self.late + self.errors + self.misrouted > 0 {
            writeln!(
                f,
                "timeouts {}  late {}  errors {}  misrouted {}",
                self.timeouts, self.late, self.errors, self.misrouted
            )?;
        }
        if self.unsent + self.unreachable + self.sessions_lost + self.send_failed > 0 {
            writeln!(
                f,
                "unsent {}  unreachable {}  sessions lost {}  reopened {}  send failed {}  \
                 client endpoint drops {}",
                self.unsent,
                self.unreachable,
                self.sessions_lost,
                self.sessions_reopened,
                self.send_failed,
                self.endpoint_drops
            )?;
        }
        if let Some(lag) = &self.client_lag_us {
            let what = if self.rate.is_some() {
                "behind schedule"
            } else {
                "re-send after a freed slot"
            };
            write!(
                f,
                "client lag ({what}) us: p50 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
                lag.p50, lag.p99, lag.p999, lag.max
            )?;
            if self.rate.is_some() {
                write!(f, "; {} datagrams over 1 ms late", self.client_sent_late)?;
            }
            writeln!(f)?;
        }
        if let Some(fan) = &self.fanout {
            let per_copy = fan
                .per_copy
                .map_or("-".to_string(), |p| format!("{:.2}", p.p50));
            writeln!(
                f,
                "fan-out, {} publishes ({} copies untimed), us at p50 / p99: first copy out {:.1} / {:.1}, \
                 last copy out {:.1} / {:.1}, per copy {per_copy}, client delay {:.1} / {:.1}",
                fan.publishes,
                fan.untimed,
                fan.first_copy.p50,
                fan.first_copy.p99,
                fan.last_copy.p50,
                fan.last_copy.p99,
                fan.client_delay.p50,
                fan.client_delay.p99
            )?;
        }
        if let Some(v) = self.client_involuntary_switches {
            writeln!(
                f,
                "client preempted {v} times (involuntary context switches)"
            )?;
        }
        if let (Some(b), Some(a)) = (self.loadavg_before, self.loadavg_after) {
            writeln!(f, "load average before {b}, after {a}")?;
        }
        if let Some(s) = self.steal_pct {
            writeln!(
                f,
                "hypervisor steal {s:.1}% of the machine's CPU time during the run"
            )?;
        }
        match crate::validity::verdict(self) {
            crate::validity::Verdict::Valid => {}
            v => writeln!(f, "NOT VALID: {v}")?,
        }
        Ok(())
    }
}
