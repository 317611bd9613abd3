//! Drops, logged at a bounded rate. Once per turn the shard compares its drop counters with
//! what its last line said; when they moved and a second has passed since that line, it logs
//! one line with what moved since, by reason (structured fields). A burst of a million drops
//! therefore costs one line a second, and the lines add up to the counters: the rest is
//! logged when the shard stops.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use crate::counters::Counters;

/// At most one line per this interval per shard.
const INTERVAL: Duration = Duration::from_secs(1);

/// The drop counters, as of one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Drops {
    send_queue_full: u64,
    send_too_large: u64,
    send_errors: u64,
    recv_truncated: u64,
    recv_bad_address: u64,
    recv_errors: u64,
    rejected: u64,
    kernel_drops: u64,
}

impl Drops {
    fn of(c: &Counters) -> Self {
        Self {
            send_queue_full: c.send_queue_full,
            send_too_large: c.send_too_large,
            send_errors: c.send_errors_total,
            recv_truncated: c.recv_truncated,
            recv_bad_address: c.recv_bad_address,
            recv_errors: c.recv_errors,
            rejected: c.rejected,
            kernel_drops: c.kernel_drops,
        }
    }
}

/// One shard's drop log.
#[derive(Debug, Default)]
pub(super) struct DropLog {
    /// The counters as of the last line.
    logged: Drops,
    last_line: Option<Instant>,
}

impl DropLog {
    /// Once per turn: logs what was dropped since the last line, if anything was and a line is
    /// due.
    pub(super) fn check(&mut self, shard: usize, counters: &Counters, now: Instant) {
        let now_drops = Drops::of(counters);
        if now_drops == self.logged
            || self
                .last_line
                .is_some_and(|t| now.saturating_duration_since(t) < INTERVAL)
        {
            return;
        }
        self.line(shard, now_drops);
        self.last_line = Some(now);
    }

    /// When the shard stops: logs what no line has said yet.
    pub(super) fn flush(&mut self, shard: usize, counters: &Counters) {
        let now_drops = Drops::of(counters);
        if now_drops != self.logged {
            self.line(shard, now_drops);
        }
    }

    fn line(&mut self, shard: usize, now: Drops) {
        let was = self.logged;
        let d = |f: fn(&Drops) -> u64| f(&now) - f(&was);
        tracing::warn!(
            shard,
            send_queue_full = d(|x| x.send_queue_full),
            send_too_large = d(|x| x.send_too_large),
            send_errors = d(|x| x.send_errors),
            recv_truncated = d(|x| x.recv_truncated),
            recv_bad_address = d(|x| x.recv_bad_address),
            recv_errors = d(|x| x.recv_errors),
            rejected = d(|x| x.rejected),
            kernel_drops = d(|x| x.kernel_drops),
            "datagrams dropped since the last drop line (at most one line a second per shard)"
        );
        self.logged = now;
    }
}
