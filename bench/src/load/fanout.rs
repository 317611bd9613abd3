//! Fan-out timing per publish: when each copy left the server and when the client had it.
//!
//! Every copy of one publish carries the same probe (its `seq`). The client's peer sockets have
//! `SO_TIMESTAMPNS` on, so each copy comes with the time it entered the kernel's receive path,
//! which on loopback is inside the server's `sendmsg` for that copy: when the copy left the
//! server. With the publish's actual send time (just before the client's `sendmmsg`) that splits
//! a delivery's latency into the client's lag behind its schedule, the server's time to the
//! first and to the last copy of the publish, and the client's own delay from a copy's arrival
//! in its socket to its decryption (a single-threaded client reads N copies one after another).
//!
//! Per publish: *first copy* and *last copy* (from the publish's send to the first and the last
//! copy's kernel time), *per copy* (last minus first over copies − 1: the server's spacing of
//! consecutive copies); per delivery: *client delay* (decrypted minus kernel time).

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use super::report::LagUs;

/// One publish's copies as they arrive.
#[derive(Debug, Clone, Copy)]
struct Publish {
    /// The client's clock just before the `sendmmsg` that carried it, ns since the epoch.
    sent_ns: Option<u64>,
    copies: u64,
    first_kernel_ns: u64,
    last_kernel_ns: u64,
}

/// The histograms of a fan-out run (ns), merged over workers like the other stats.
#[derive(Debug, Clone)]
pub struct FanoutStats {
    /// Publishes whose copies were timed (measured window, sent and at least one copy back).
    pub publishes: u64,
    /// Copies that came without a kernel timestamp (not in the histograms).
    pub untimed: u64,
    /// Per publish: its send to its first copy's kernel time.
    pub first_copy_ns: Histogram<u64>,
    /// Per publish: its send to its last copy's kernel time.
    pub last_copy_ns: Histogram<u64>,
    /// Per publish with two copies or more: (last − first) / (copies − 1).
    pub per_copy_ns: Histogram<u64>,
    /// Per delivery: decrypted by the client minus the kernel time.
    pub client_delay_ns: Histogram<u64>,
    /// Publishes being timed, by probe sequence number.
    open: HashMap<u32, Publish>,
}

impl Default for FanoutStats {
    fn default() -> Self {
        Self {
            publishes: 0,
            untimed: 0,
            first_copy_ns: super::stats::histogram(),
            last_copy_ns: super::stats::histogram(),
            per_copy_ns: super::stats::histogram(),
            client_delay_ns: super::stats::histogram(),
            open: HashMap::new(),
        }
    }
}

impl FanoutStats {
    /// Publish `seq` (measured) left the client at `sent_ns`.
    pub fn sent(&mut self, seq: u32, sent_ns: u64) {
        self.open
            .entry(seq)
            .or_insert(Publish {
                sent_ns: None,
                copies: 0,
                first_kernel_ns: u64::MAX,
                last_kernel_ns: 0,
            })
            .sent_ns = Some(sent_ns);
    }

    /// A copy of publish `seq` (measured) arrived: in the kernel at `kernel_ns`, decrypted at
    /// `recv_ns` (ns since the epoch).
    pub fn copy(&mut self, seq: u32, kernel_ns: Option<u64>, recv_ns: u64) {
        let Some(k) = kernel_ns else {
            self.untimed += 1;
            return;
        };
        self.client_delay_ns
            .saturating_record(recv_ns.saturating_sub(k).max(1));
        let p = self.open.entry(seq).or_insert(Publish {
            sent_ns: None,
            copies: 0,
            first_kernel_ns: u64::MAX,
            last_kernel_ns: 0,
        });
        p.copies += 1;
        p.first_kernel_ns = p.first_kernel_ns.min(k);
        p.last_kernel_ns = p.last_kernel_ns.max(k);
    }

    /// At the end of the run: every publish sent and answered goes into the per-publish
    /// histograms.
    pub fn finish(&mut self) {
        for (_, p) in self.open.drain() {
            let Some(sent) = p.sent_ns.filter(|_| p.copies > 0) else {
                continue;
            };
            self.publishes += 1;
            self.first_copy_ns
                .saturating_record(p.first_kernel_ns.saturating_sub(sent).max(1));
            self.last_copy_ns
                .saturating_record(p.last_kernel_ns.saturating_sub(sent).max(1));
            if p.copies > 1 {
                let spread = p.last_kernel_ns.saturating_sub(p.first_kernel_ns);
                self.per_copy_ns
                    .saturating_record((spread / (p.copies - 1)).max(1));
            }
        }
    }

    /// Adds `other`'s finished figures to these.
    pub fn absorb(&mut self, other: &FanoutStats) {
        self.publishes += other.publishes;
        self.untimed += other.untimed;
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.first_copy_ns.add(&other.first_copy_ns);
        let _ = self.last_copy_ns.add(&other.last_copy_ns);
        let _ = self.per_copy_ns.add(&other.per_copy_ns);
        let _ = self.client_delay_ns.add(&other.client_delay_ns);
    }
}

/// The fan-out split of a run, in microseconds (p50, p99, p99.9 and max of each; with 25
/// publishes a row's per-publish p99 is its largest publish but one).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FanoutUs {
    /// Publishes timed.
    pub publishes: u64,
    /// Copies without a kernel timestamp (not timed).
    pub untimed: u64,
    /// Per publish: from its send to its first copy leaving the server.
    pub first_copy: LagUs,
    /// Per publish: from its send to its last copy leaving the server.
    pub last_copy: LagUs,
    /// Per publish: the server's time between consecutive copies.
    pub per_copy: Option<LagUs>,
    /// Per delivery: from the copy's arrival in the client's socket to its decryption.
    pub client_delay: LagUs,
}

impl FanoutUs {
    /// The figures of `s` (`None` if nothing was timed).
    #[must_use]
    pub fn from_stats(s: &FanoutStats) -> Option<Self> {
        Some(Self {
            publishes: s.publishes,
            untimed: s.untimed,
            first_copy: LagUs::from_histogram(&s.first_copy_ns)?,
            last_copy: LagUs::from_histogram(&s.last_copy_ns)?,
            per_copy: LagUs::from_histogram(&s.per_copy_ns),
            client_delay: LagUs::from_histogram(&s.client_delay_ns)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publish_splits_into_first_last_and_per_copy() {
        let mut f = FanoutStats::default();
        f.sent(7, 1_000);
        // Three copies, out of order: kernel times 5,000 / 9,000 / 7,000 ns.
        f.copy(7, Some(9_000), 20_000);
        f.copy(7, Some(5_000), 21_000);
        f.copy(7, Some(7_000), 22_000);
        f.copy(7, None, 23_000);
        // A copy of a publish never sent in the measured window is not a publish.
        f.copy(8, Some(4_000), 4_500);
        f.finish();
        assert_eq!(f.publishes, 1);
        assert_eq!(f.untimed, 1);
        let about = |h: &Histogram<u64>, v: u64| h.equivalent(h.max(), v);
        assert!(about(&f.first_copy_ns, 4_000));
        assert!(about(&f.last_copy_ns, 8_000));
        // (9,000 - 5,000) / 2.
        assert!(about(&f.per_copy_ns, 2_000));
        assert_eq!(f.client_delay_ns.len(), 4);
        let us = FanoutUs::from_stats(&f).expect("timed");
        assert_eq!(us.publishes, 1);
        assert!(us.per_copy.is_some());
    }

    #[test]
    fn nothing_timed_reports_nothing() {
        let mut f = FanoutStats::default();
        f.sent(1, 10);
        f.finish();
        assert_eq!(f.publishes, 0);
        assert!(FanoutUs::from_stats(&f).is_none());
    }
}
