//! Per-shard counters: plain integers on the shard's own thread, published to atomics once per
//! loop turn so other threads can read a recent snapshot without ever touching the data path.
//!
//! The shard is the only writer of its [`PublishedStats`]; readers load with `Relaxed` and may see
//! a snapshot whose fields come from adjacent loop turns, which is fine for monitoring. Counters
//! only grow, so a reader never sees a value go backwards.
#![forbid(unsafe_code)]

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::mesh::LaneStats;

/// Highest errno tracked individually; larger values are counted under `OTHER_ERRNO`.
pub const MAX_ERRNO: usize = 133;
const ERRNO_SLOTS: usize = MAX_ERRNO + 2;
const OTHER_ERRNO: usize = MAX_ERRNO + 1;

macro_rules! counters {
    ($( $(#[$doc:meta])* $name:ident ),* $(,)?) => {
        /// A shard's counters at one moment. Every field counts events since the shard started.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct ShardStats {
            /// Which shard these counters belong to.
            pub shard: usize,
            $( $(#[$doc])* pub $name: u64, )*
            /// Datagrams whose send failed, by errno (`(errno, count)`, count > 0, ascending errno;
            /// a failed GSO send counts each datagram it carried).
            pub send_errors: Vec<(i32, u64)>,
            /// Counters of this shard's outbound mesh lanes (two per other shard).
            pub lanes: Vec<LaneStats>,
        }

        /// The shard-local, non-atomic counters. Only the shard's thread touches these.
        #[derive(Debug)]
        pub(crate) struct Counters {
            $( pub(crate) $name: u64, )*
            pub(crate) send_errors: [u64; ERRNO_SLOTS],
            /// The sum of `send_errors` (for the drop log; not published).
            pub(crate) send_errors_total: u64,
            send_errors_dirty: bool,
        }

        impl Default for Counters {
            fn default() -> Self {
                Self {
                    $( $name: 0, )*
                    send_errors: [0; ERRNO_SLOTS],
                    send_errors_total: 0,
                    send_errors_dirty: false,
                }
            }
        }

        /// Counters published by a shard for other threads to read.
        #[derive(Debug)]
        pub struct PublishedStats {
            shard: usize,
            $( $name: AtomicU64, )*
            send_errors: Vec<AtomicU64>,
            lanes: Vec<[AtomicU64; 5]>,
            lane_ids: Vec<(usize, u8)>,
        }

        impl PublishedStats {
            /// Zeroed counters for shard `shard` of `shards`.
            pub fn new(shard: usize, shards: usize) -> Self {
                let lane_ids: Vec<(usize, u8)> = (0..shards)
                    .filter(|to| *to != shard)
                    .flat_map(|to| [(to, 0), (to, 1)])
                    .collect();
                Self {
                    shard,
                    $( $name: AtomicU64::new(0), )*
                    send_errors: (0..ERRNO_SLOTS).map(|_| AtomicU64::new(0)).collect(),
                    lanes: lane_ids.iter().map(|_| Default::default()).collect(),
                    lane_ids,
                }
            }

            /// Publishes the mesh lane counters (in the order [`crate::mesh::MeshEnd::lane_stats`]
            /// returns them).
            pub(crate) fn publish_lanes(&self, lanes: impl Iterator<Item = LaneStats>) {
                for (slot, l) in self.lanes.iter().zip(lanes) {
                    for (a, v) in slot.iter().zip([l.sent, l.full, l.closed, l.max_depth, l.wakes]) {
                        a.store(v, Ordering::Relaxed);
                    }
                }
            }

            /// A snapshot of the most recently published counters.
            pub fn snapshot(&self) -> ShardStats {
                ShardStats {
                    shard: self.shard,
                    $( $name: self.$name.load(Ordering::Relaxed), )*
                    send_errors: errno_pairs(self.send_errors.iter().map(|a| a.load(Ordering::Relaxed))),
                    lanes: self.lane_ids.iter().zip(&self.lanes).map(|(&(to, lane), a)| {
                        let v = |i: usize| a[i].load(Ordering::Relaxed);
                        LaneStats { from: self.shard, to, lane, sent: v(0), full: v(1), closed: v(2), max_depth: v(3), wakes: v(4) }
                    }).collect(),
                }
            }

            pub(crate) fn publish(&self, c: &mut Counters) {
                $( self.$name.store(c.$name, Ordering::Relaxed); )*
                if c.send_errors_dirty {
                    for (slot, v) in self.send_errors.iter().zip(c.send_errors.iter()) {
                        slot.store(*v, Ordering::Relaxed);
                    }
                    c.send_errors_dirty = false;
                }
            }
        }

        impl ShardStats {
            fn add(&mut self, o: &ShardStats) {
                $( self.$name += o.$name; )*
            }

            /// Every plain counter as `(name, value)`, in declaration order (the names are the
            /// field names; `send_errors` and `lanes` are not included).
            pub fn counters(&self) -> [(&'static str, u64); COUNTERS] {
                [ $( (stringify!($name), self.$name), )* ]
            }

            /// The doc line of each plain counter, by name, for metric help texts.
            pub fn describe(name: &str) -> Option<&'static str> {
                match name {
                    $( stringify!($name) => Some(first_doc_line(concat!($( stringify!($doc), )*))), )*
                    _ => None,
                }
            }
        }

        /// How many plain counters [`ShardStats::counters`] returns.
        pub const COUNTERS: usize = [$( stringify!($name), )*].len();

        impl Counters {
            pub(crate) fn snapshot(&self, shard: usize) -> ShardStats {
                ShardStats {
                    shard,
                    $( $name: self.$name, )*
                    send_errors: errno_pairs(self.send_errors.iter().copied()),
                    lanes: Vec::new(),
                }
            }
        }

        impl fmt::Display for ShardStats {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "shard {}:", self.shard)?;
                $( write!(f, " {}={}", stringify!($name), self.$name)?; )*
                if self.send_errors.is_empty() {
                    write!(f, " send_errors=none")?;
                } else {
                    write!(f, " send_errors=")?;
                    for (i, (errno, n)) in self.send_errors.iter().enumerate() {
                        let sep = if i == 0 { "" } else { "," };
                        write!(f, "{sep}{}:{n}", errno_name(*errno))?;
                    }
                }
                for l in self.lanes.iter().filter(|l| l.sent + l.full + l.closed > 0) {
                    let lane = if l.lane == 0 { "control" } else { "data" };
                    write!(f, " lane[{}->{} {lane}]=sent:{},full:{},closed:{},max_depth:{},wakes:{}",
                        l.from, l.to, l.sent, l.full, l.closed, l.max_depth, l.wakes)?;
                }
                Ok(())
            }
        }
    };
}

counters! {
    /// Datagrams received and handed to the handler.
    datagrams_in,
    /// Payload bytes received and handed to the handler.
    bytes_in,
    /// Datagrams whose send completed successfully (a GSO send counts each datagram it
    /// carried).
    datagrams_out,
    /// Payload bytes whose send completed successfully.
    bytes_out,
    /// Sends the handler asked for that were refused because every send slot was in flight.
    send_queue_full,
    /// Sends the handler asked for that were larger than the configured maximum datagram.
    send_too_large,
    /// Send completions that named no in-flight send slot of their generation (duplicate,
    /// stale or foreign): ignored, nothing freed twice.
    send_unknown_completions,
    /// Received datagrams dropped because they did not fit a receive buffer (MSG_TRUNC).
    recv_truncated,
    /// Received datagrams dropped because the source address could not be parsed.
    recv_bad_address,
    /// Receive completions that failed with an error other than ENOBUFS.
    recv_errors,
    /// Zero-length datagrams received (also in `datagrams_in`). Each one ends the multishot
    /// receive in the kernel; the shard re-arms it within the same completion pass.
    recv_empty,
    /// Datagrams that arrived while a shard whose handler had panicked drained its operations:
    /// dropped without a handler to give them to.
    recv_discarded,
    /// Times the multishot receive stopped because the buffer ring was empty (ENOBUFS).
    enobufs,
    /// Times the multishot receive was armed again after it ended.
    recv_rearms,
    /// Iterations of the shard loop.
    loop_turns,
    /// Calls to `io_uring_enter`.
    enter_calls,
    /// Extra `io_uring_enter` calls made because the submission queue filled mid-turn.
    sq_full_flushes,
    /// `io_uring_enter` calls a handler's callback made to start a run of 256 staged sends
    /// before the end of the turn (also in `enter_calls`): a large fan-out's first copies
    /// leave while the rest are still being prepared.
    send_early_submits,
    /// Completion queue entries processed.
    completions,
    /// Timers that fired.
    timers_fired,
    /// Wake-ups received through the eventfd (stop and report requests, peers' wakes).
    wakes,
    /// Wake-ups received from peers through `IORING_OP_MSG_RING`.
    ring_wakes,
    /// `MSG_RING` wakes that failed in the kernel and were sent through the eventfd instead.
    msg_ring_fallbacks,
    /// Futex waits on the parked word that completed (`shard.wake = "futex"`): woken by a
    /// peer, or the word had changed before the wait was armed.
    futex_wakes,
    /// Mesh messages delivered to the handler.
    mesh_received,
    /// Datagrams the handler rejected as malformed ([`Ctx::reject`](crate::Ctx::reject)).
    rejected,
    /// 1 once the shard has freed its receive buffers and send slots after every kernel
    /// operation on them completed (summed over shards: how many did).
    pools_drained,
    /// 1 when the shard ended with operations still in the kernel and leaked its receive
    /// buffers and send slots rather than free memory the kernel might use.
    pools_leaked,
    /// Datagrams the kernel dropped at this shard's socket before they could be read (a full
    /// receive buffer), from `SO_RXQ_OVFL`; seen when the next datagram is read.
    kernel_drops,
    /// 1 when the shard started with GRO on its socket (`shard.gro`; summed over shards: how
    /// many did).
    gro_enabled,
    /// Receive buffers in which the kernel had coalesced several datagrams (GRO); each of
    /// their datagrams is also in `datagrams_in`.
    recv_coalesced,
    /// 1 when the shard started with GSO on its socket (`shard.gso`; summed over shards: how
    /// many did).
    gso_enabled,
    /// Sends that carried several datagrams (GSO); each of their datagrams is also in
    /// `datagrams_out`, or under its errno in `send_errors`.
    send_coalesced,
    /// Of `send_coalesced`, the sends whose datagrams the kernel read through a gather list
    /// (one vector per datagram) because every group buffer was in use; the others were copied
    /// end to end into one.
    send_gathered,
    /// 1 when the socket refused a GSO send (`EIO` or `EINVAL`) and the shard went on sending
    /// every datagram alone; the datagrams of the refused sends are in `send_errors`.
    gso_fallbacks,
    /// Datagrams a handler sent back out of their receive buffer without a copy
    /// ([`Ctx::send_received`](crate::Ctx::send_received)); also in `datagrams_out` or
    /// `send_errors`. Their buffers go back to the kernel when the sends complete.
    send_in_place,
    /// Sends [`Ctx::send_received`](crate::Ctx::send_received) copied because half the receive
    /// buffers were already held for sends in place: the bound that keeps the rest for
    /// receiving.
    send_in_place_over_cap,
    /// Receive buffers kept from the kernel after their datagrams were handled, because sends
    /// in place read them.
    recv_lent,
    /// Of `recv_lent`, the buffers whose last send in place completed, back with the kernel's
    /// spares: `recv_lent - recv_lent_returned` are held now (at most half the buffers).
    recv_lent_returned,
}

/// The text of a `#[doc = "..."]` attribute list as `stringify!` renders it: the first line.
fn first_doc_line(attrs: &'static str) -> &'static str {
    let text = attrs
        .split_once('"')
        .map_or(attrs, |(_, rest)| rest)
        .trim_start();
    text.split_once('"').map_or(text, |(line, _)| line).trim()
}

impl Counters {
    /// Counts one failed send by its errno.
    pub(crate) fn send_error(&mut self, errno: i32) {
        self.send_errors_n(errno, 1);
    }

    /// Counts `n` datagrams whose send failed with `errno` (a GSO send carries several).
    pub(crate) fn send_errors_n(&mut self, errno: i32, n: u64) {
        let slot = usize::try_from(errno)
            .ok()
            .filter(|e| *e <= MAX_ERRNO)
            .unwrap_or(OTHER_ERRNO);
        self.send_errors[slot] += n;
        self.send_errors_total += n;
        self.send_errors_dirty = true;
    }
}

impl ShardStats {
    /// Total failed sends over all errnos.
    pub fn send_errors_total(&self) -> u64 {
        self.send_errors.iter().map(|(_, n)| n).sum()
    }

    /// Field-wise sum of several shards' counters (the `shard` field of the result is 0).
    pub fn sum<'a>(all: impl IntoIterator<Item = &'a ShardStats>) -> ShardStats {
        let mut total = ShardStats::default();
        let mut errs = std::collections::BTreeMap::new();
        for s in all {
            total.add(s);
            total.lanes.extend(s.lanes.iter().copied());
            for (e, n) in &s.send_errors {
                *errs.entry(*e).or_insert(0) += n;
            }
        }
        total.send_errors = errs.into_iter().collect();
        total
    }
}

fn errno_pairs(values: impl Iterator<Item = u64>) -> Vec<(i32, u64)> {
    values
        .enumerate()
        .filter(|(_, n)| *n > 0)
        .map(|(e, n)| {
            let errno = if e == OTHER_ERRNO { -1 } else { e as i32 };
            (errno, n)
        })
        .collect()
}

/// A short name for an errno, as printed in stats (`-1` stands for "errno above 133").
pub fn errno_name(errno: i32) -> String {
    match errno {
        -1 => "other".to_string(),
        libc::EAGAIN => "EAGAIN".to_string(),
        libc::ENOBUFS => "ENOBUFS".to_string(),
        libc::ECONNREFUSED => "ECONNREFUSED".to_string(),
        libc::EHOSTUNREACH => "EHOSTUNREACH".to_string(),
        libc::ENETUNREACH => "ENETUNREACH".to_string(),
        libc::EMSGSIZE => "EMSGSIZE".to_string(),
        libc::EPERM => "EPERM".to_string(),
        libc::EINVAL => "EINVAL".to_string(),
        libc::ECANCELED => "ECANCELED".to_string(),
        libc::EACCES => "EACCES".to_string(),
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL".to_string(),
        other => format!("errno{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_and_snapshot_carry_every_counter() {
        let published = PublishedStats::new(3, 4);
        let mut c = Counters {
            datagrams_in: 5,
            wakes: 2,
            ..Counters::default()
        };
        c.send_error(libc::ECONNREFUSED);
        c.send_error(libc::ECONNREFUSED);
        c.send_error(100_000);
        published.publish(&mut c);
        let s = published.snapshot();
        assert_eq!(s.shard, 3);
        assert_eq!(s.datagrams_in, 5);
        assert_eq!(s.wakes, 2);
        assert_eq!(s.send_errors, vec![(libc::ECONNREFUSED, 2), (-1, 1)]);
        assert_eq!(s.send_errors_total(), 3);
        assert!(s.to_string().contains("ECONNREFUSED:2"));
        let total = ShardStats::sum([&s, &s]);
        assert_eq!(total.datagrams_in, 10);
        assert_eq!(total.send_errors, vec![(-1, 2), (libc::ECONNREFUSED, 4)]);
    }
}
