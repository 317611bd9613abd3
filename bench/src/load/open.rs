//! Open loop: datagrams leave at fixed intervals whatever the server does,
//! and each datagram's latency is measured from its *intended* send time, so
//! a stalled server or client shows up in the tail (no coordinated omission).
//!
//! Worker `i` of `n` sends at `offset_i + k * interval` with
//! `interval = threads / rate` and `offset_i = i * interval / n`, so the
//! workers together emit an evenly spaced stream at `rate`. When the client
//! falls behind it sends the overdue datagrams in batches and their latency
//! includes the delay. Every measured datagram's lag (actual minus intended
//! send time) goes into a histogram, so the report can say how late the
//! client itself was at p50, p99 and worst, and a reader can tell a slow
//! server from a late client.

use super::payload::Probe;
use super::stats::WorkerStats;
use super::transport::Transport;
use super::worker::{BATCH, Reply, Worker};
use std::io;

/// The open-loop schedule of one worker.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// ns between this worker's datagrams.
    pub interval_ns: f64,
    /// ns after the epoch of this worker's first datagram.
    pub offset_ns: f64,
}

impl Schedule {
    /// Worker `index` of `threads` sharing `rate` datagrams/s.
    #[must_use]
    pub fn new(rate: f64, threads: usize, index: usize) -> Self {
        let interval_ns = 1e9 * threads as f64 / rate;
        Self {
            interval_ns,
            offset_ns: interval_ns * index as f64 / threads as f64,
        }
    }

    /// Intended send time of datagram `k`, ns since the epoch.
    #[must_use]
    pub fn intended_ns(&self, k: u64) -> u64 {
        (self.offset_ns + k as f64 * self.interval_ns) as u64
    }
}

/// Runs the open loop until every datagram intended before `w.end_ns` went out, then waits up
/// to the timeout for the datagrams still in flight. Sending stops a timeout after the end at
/// the latest: what the schedule still holds then (a client that could not send, its sessions
/// down) is counted as unsent, so the run always ends.
pub fn run<T: Transport>(mut w: Worker<T>, schedule: Schedule) -> io::Result<WorkerStats> {
    let mut next: u64 = 0;
    let mut sent_total: u64 = 0;
    let mut received_total: u64 = 0;
    let mut replies: Vec<Reply> = Vec::with_capacity(BATCH * 4);
    let send_deadline = w.end_ns.saturating_add(w.timeout_ns);
    let mut stopped_ns = None;
    let mut last_sent_ns: Option<u64> = None;
    loop {
        let now = w.now_ns();
        // Keep sending until every datagram intended before the end went out, even if the
        // client runs late, but not past the deadline.
        let sending = schedule.intended_ns(next) < w.end_ns && now < send_deadline;
        if !sending {
            let stopped = *stopped_ns.get_or_insert(now);
            if received_total >= sent_total || now >= stopped.saturating_add(w.timeout_ns) {
                break;
            }
        }
        let mut wait_ms = 1;
        if sending {
            let due = send_due(&mut w, &schedule, next);
            next = due.next;
            sent_total += due.sent;
            if due.sent > 0 {
                last_sent_ns = Some(w.now_ns());
            }
            // Nothing went although something was due (every peer tried is down or full):
            // wait a millisecond rather than spin. Otherwise sleep until just before the next
            // intended time. The verdict is send_due's own: judged here against a later
            // clock, a datagram that fell due in between looked refused and cost the client a
            // millisecond's sleep (D75).
            if !due.refused {
                wait_ms = sleep_ms_before(schedule.intended_ns(next).saturating_sub(w.now_ns()));
            }
        }
        // Fan-out: while copies of a publish are still to come (up to the loss timeout after
        // the last send), poll without sleeping. A client asleep in `epoll_wait` between two
        // copies is woken by the next one, and on loopback the server's `sendmsg` pays for
        // that wake-up (an interprocessor interrupt to an idle core, in a VM an exit): the
        // server's CPU per copy would count the client's sleeps (D80).
        if w.stats.fanout.is_some()
            && received_total < sent_total
            && last_sent_ns.is_some_and(|t| w.now_ns() < t.saturating_add(w.timeout_ns))
        {
            wait_ms = 0;
        }
        replies.clear();
        w.poll_replies(wait_ms, &mut replies)?;
        for r in &replies {
            if r.probe.peer as usize != r.peer {
                w.stats.misrouted += 1;
                continue;
            }
            received_total += 1;
            w.record(r, r.probe.sent_ns);
        }
    }
    w.stats.unsent = unsent(&schedule, next, w.measure_start_ns, w.end_ns);
    if let Some(f) = &mut w.stats.fanout {
        f.finish();
    }
    w.io.finish(&mut w.stats);
    Ok(w.stats)
}

/// Measured datagrams (intended in `measure_start_ns..end_ns`) from index `next` on.
fn unsent(schedule: &Schedule, mut next: u64, measure_start_ns: u64, end_ns: u64) -> u64 {
    let mut n = 0;
    while schedule.intended_ns(next) < end_ns {
        n += u64::from(schedule.intended_ns(next) >= measure_start_ns);
        next += 1;
    }
    n
}

/// How early a worker wakes before its next intended send time: it sleeps in whole
/// milliseconds (`epoll_wait`), a sleep may overrun by its timer slack (0.1% of it, at least
/// 50 us) and by the wake-up of an idle virtual CPU, so it sleeps until this long before the
/// time and polls without sleeping from there.
const WAKE_MARGIN_NS: u64 = 2_000_000;

/// Whole milliseconds a worker may sleep when its next datagram is due in `until_ns`.
fn sleep_ms_before(until_ns: u64) -> i32 {
    i32::try_from(until_ns.saturating_sub(WAKE_MARGIN_NS) / 1_000_000).unwrap_or(i32::MAX)
}

/// What one [`send_due`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Due {
    /// Datagrams sent (fan-out: times the copies each one becomes).
    sent: u64,
    /// Index of the next datagram to send.
    next: u64,
    /// Something was due but no peer tried took any of it (down, or its queue full).
    refused: bool,
}

/// At most this many send batches between two receive polls, so a client
/// that fell behind keeps draining its sockets while it catches up.
const MAX_BATCHES_PER_POLL: usize = 4;

/// Datagrams sent later than this after their intended time are counted.
const LATE_SEND_NS: u64 = 1_000_000;

/// Sends the datagrams whose intended time has come (before the end), in
/// batches from successive peers (at most [`MAX_BATCHES_PER_POLL`]; a peer that
/// sends none is passed over).
///
/// Each batch reads the clock afresh, and each measured datagram's lag is
/// the time just before the `sendmmsg` that carried it minus its intended
/// time, so the lag is what the client added to the datagram's latency.
fn send_due<T: Transport>(w: &mut Worker<T>, schedule: &Schedule, mut next: u64) -> Due {
    let mut sent_total = 0;
    let mut taken = 0;
    let mut refused = false;
    for _ in 0..MAX_BATCHES_PER_POLL {
        let now = w.now_ns();
        let mut n = 0;
        let peer = w.next_peer();
        let peer_tag = u32::try_from(peer).unwrap_or(u32::MAX);
        while n < BATCH {
            let at = schedule.intended_ns(next + n as u64);
            if at > now || at >= w.end_ns {
                break;
            }
            let probe = Probe {
                sent_ns: at,
                peer: peer_tag,
                seq: (next + n as u64) as u32,
            };
            w.stage(n, &probe);
            n += 1;
        }
        if n == 0 {
            break;
        }
        // Datagrams intended before the measured window are warm-up.
        let first_measured = (0..n)
            .find(|&j| schedule.intended_ns(next + j as u64) >= w.measure_start_ns)
            .unwrap_or(n);
        let send_ns = w.now_ns();
        let sent = w.send_batch(peer, n, first_measured);
        for j in first_measured..sent {
            if let Some(f) = &mut w.stats.fanout {
                f.sent((next + j as u64) as u32, send_ns);
            }
            let lag = send_ns.saturating_sub(schedule.intended_ns(next + j as u64));
            w.stats.max_send_lag_ns = w.stats.max_send_lag_ns.max(lag);
            w.stats.record_lag(lag);
            if lag > LATE_SEND_NS {
                w.stats.sent_late += 1;
            }
        }
        next += sent as u64;
        sent_total += sent as u64 * w.io.copies();
        taken += sent;
        refused = taken == 0;
        // Nothing went from this peer (its session is down, or its queue full): the next
        // batch tries the next peer. Some went: the rest waits for the next poll.
        if sent > 0 && sent < n {
            break;
        }
    }
    Due {
        sent: sent_total,
        next,
        refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeps_only_to_the_wake_margin_before_the_next_send() {
        // Due within the margin: poll without sleeping.
        assert_eq!(sleep_ms_before(0), 0);
        assert_eq!(sleep_ms_before(WAKE_MARGIN_NS), 0);
        assert_eq!(sleep_ms_before(WAKE_MARGIN_NS + 999_999), 0);
        // Further away: whole milliseconds, waking at least the margin early.
        assert_eq!(sleep_ms_before(WAKE_MARGIN_NS + 1_000_000), 1);
        assert_eq!(sleep_ms_before(200_000_000), 198);
        assert_eq!(sleep_ms_before(u64::MAX), i32::MAX);
    }
}
