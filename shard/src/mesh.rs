//! The shard mesh: for N shards, one bounded SPSC ring per ordered pair of shards and per lane.
//!
//! ```text
//!            shard 0                         shard 1
//!   links[1].control  ── ring (64) ──►  inbound[0].control   drained first, at most 64 per turn
//!   links[1].data     ── ring (1024) ─► inbound[0].data      at most `data_batch` per turn
//!   inbound[1].control ◄── ring ──────  links[0].control
//!   inbound[1].data    ◄── ring ──────  links[0].data
//! ```
//!
//! Two lanes so that control never waits behind data: each lane is its own ring with its own
//! capacity, a full data lane cannot take a control slot, and a consumer drains every control
//! lane before any data lane. Every send returns at once with the ring's outcome (sent, full
//! with the item handed back, closed with the item handed back) and moves a counter.
//!
//! Work per turn is bounded on both lanes: at most one ring's worth (`control_capacity`) of
//! control items and `data_batch` data items per peer. A producer that keeps refilling its
//! control ring while we drain cannot hold this shard in the drain; what is left waits for the
//! next turn, and [`MeshEnd::take_inbound`] says so, so the loop does not sleep on it.
//!
//! Waking: a sender marks the target *dirty*; once per loop turn, before the shard may sleep,
//! [`MeshEnd::flush_wakes`] runs the park/wake protocol ([`crate::ring::park`]) for each dirty
//! target, so a parked target is woken once per turn and a running one never.
#![forbid(unsafe_code)]

use std::fmt;
use std::os::fd::RawFd;
use std::sync::Arc;

use crate::ratelimit::LogLimiter;
use crate::ring::{
    Consumer, Notifier, Parker, Producer, TryRecvError, TrySendError, Wake, channel,
};

/// One of the two rings between an ordered pair of shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// Small, drained first on every turn (at most one ring's worth per peer); never shares
    /// capacity with data.
    Control,
    /// Bulk; drained in batches of at most [`MeshConfig::data_batch`] per peer per turn.
    Data,
}

impl fmt::Display for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lane::Control => "control",
            Lane::Data => "data",
        })
    }
}

/// Ring sizes and the per-turn data batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MeshConfig {
    /// Capacity of each control ring.
    pub control_capacity: usize,
    /// Capacity of each data ring.
    pub data_capacity: usize,
    /// Most data items taken from one peer's data ring in one loop turn.
    pub data_batch: usize,
}

impl Default for MeshConfig {
    fn default() -> Self {
        Self {
            control_capacity: 64,
            data_capacity: 1024,
            data_batch: 256,
        }
    }
}

/// Why [`MeshEnd::send`] did not send; every case hands the item back.
#[derive(PartialEq, Eq)]
#[non_exhaustive]
pub enum MeshSendError<T> {
    /// The lane is full (counted).
    Full(T),
    /// The target shard has stopped (counted).
    Closed(T),
    /// No such shard, or the sending shard itself.
    NoSuchShard(T),
}

impl<T> MeshSendError<T> {
    /// The item that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            MeshSendError::Full(t) | MeshSendError::Closed(t) | MeshSendError::NoSuchShard(t) => t,
        }
    }
}

impl<T> fmt::Debug for MeshSendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MeshSendError::Full(_) => "Full(..)",
            MeshSendError::Closed(_) => "Closed(..)",
            MeshSendError::NoSuchShard(_) => "NoSuchShard(..)",
        })
    }
}

/// Counters of one outbound lane (this shard to `to`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LaneStats {
    /// Sending shard.
    pub from: usize,
    /// Receiving shard.
    pub to: usize,
    /// 0 for control, 1 for data.
    pub lane: u8,
    /// Items sent.
    pub sent: u64,
    /// Sends refused because the lane was full.
    pub full: u64,
    /// Sends refused because the target had stopped.
    pub closed: u64,
    /// Highest depth seen right after a send.
    pub max_depth: u64,
    /// Wakes this shard sent to `to` (counted on the data lane's row; 0 on control rows).
    pub wakes: u64,
}

/// A type-erased waker for one target shard.
pub type SharedWake = Arc<dyn Wake + Send + Sync>;

struct Link<T> {
    to: usize,
    lanes: [Producer<T>; 2],
    stats: [LaneStats; 2],
    notifier: Notifier<SharedWake>,
    dirty: bool,
}

struct Inbound<T> {
    from: usize,
    lanes: [Consumer<T>; 2],
}

/// One shard's end of the mesh: its outbound links, its inbound rings, and its parker.
pub struct MeshEnd<T> {
    index: usize,
    links: Vec<Option<Link<T>>>,
    inbound: Vec<Inbound<T>>,
    parker: Parker,
    control_batch: usize,
    data_batch: usize,
    wake_log: LogLimiter,
    /// Reused by [`MeshEnd::take_inbound`], so a turn allocates nothing.
    scratch: Vec<T>,
}

impl<T> fmt::Debug for MeshEnd<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshEnd")
            .field("index", &self.index)
            .field("peers", &self.inbound.len())
            .finish()
    }
}

fn lane_index(lane: Lane) -> usize {
    match lane {
        Lane::Control => 0,
        Lane::Data => 1,
    }
}

impl<T: Send> MeshEnd<T> {
    /// The end of a shard with no peers (a one-shard engine).
    pub fn solo(index: usize) -> Self {
        Self {
            index,
            links: Vec::new(),
            inbound: Vec::new(),
            parker: Parker::new(),
            control_batch: MeshConfig::default().control_capacity,
            data_batch: MeshConfig::default().data_batch,
            wake_log: LogLimiter::default(),
            scratch: Vec::new(),
        }
    }

    /// Builds the full mesh for `wakers.len()` shards; `wakers[i]` wakes shard `i` when parked.
    /// Returns each shard's end, in shard order, to be moved onto its thread.
    pub fn build(config: MeshConfig, wakers: &[SharedWake]) -> Vec<MeshEnd<T>> {
        let n = wakers.len();
        let mut ends: Vec<MeshEnd<T>> = (0..n)
            .map(|i| MeshEnd {
                index: i,
                links: (0..n).map(|_| None).collect(),
                inbound: Vec::with_capacity(n.saturating_sub(1)),
                parker: Parker::new(),
                control_batch: config.control_capacity.max(1),
                data_batch: config.data_batch.max(1),
                wake_log: LogLimiter::default(),
                scratch: Vec::new(),
            })
            .collect();
        for to in 0..n {
            for from in 0..n {
                if from == to {
                    continue;
                }
                let (cp, cc) = channel(config.control_capacity.max(1));
                let (dp, dc) = channel(config.data_capacity.max(1));
                let notifier = ends[to].parker.notifier(Arc::clone(&wakers[to]));
                let stat = |lane| LaneStats {
                    from,
                    to,
                    lane,
                    ..LaneStats::default()
                };
                ends[from].links[to] = Some(Link {
                    to,
                    lanes: [cp, dp],
                    stats: [stat(0), stat(1)],
                    notifier,
                    dirty: false,
                });
                ends[to].inbound.push(Inbound {
                    from,
                    lanes: [cc, dc],
                });
            }
        }
        ends
    }

    /// This shard's index.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Number of shards in the mesh (1 for a solo end).
    pub fn shards(&self) -> usize {
        self.links.len().max(1)
    }

    /// Sends `item` to shard `to` on `lane`. Returns at once; never blocks or spins.
    pub fn send(&mut self, to: usize, lane: Lane, item: T) -> Result<(), MeshSendError<T>> {
        let Some(link) = self.links.get_mut(to).and_then(Option::as_mut) else {
            return Err(MeshSendError::NoSuchShard(item));
        };
        let li = lane_index(lane);
        let stats = &mut link.stats[li];
        match link.lanes[li].try_send(item) {
            Ok(()) => {
                stats.sent += 1;
                stats.max_depth = stats.max_depth.max(link.lanes[li].len() as u64);
                link.dirty = true;
                Ok(())
            }
            Err(TrySendError::Full(item)) => {
                stats.full += 1;
                Err(MeshSendError::Full(item))
            }
            Err(TrySendError::Closed(item)) => {
                stats.closed += 1;
                Err(MeshSendError::Closed(item))
            }
        }
    }

    /// Wakes every target this shard sent to since the last call, if (and only if) it is
    /// parked, through its waker (an eventfd). Call once per loop turn, before this shard may
    /// sleep. Returns wakes sent.
    pub fn flush_wakes(&mut self) -> usize {
        self.flush_wakes_with(|_, _| false)
    }

    /// Like [`MeshEnd::flush_wakes`], offering each wake first to `via_ring(target, ring_fd)`
    /// when the target's waker names its io_uring fd: the shard loop queues an
    /// `IORING_OP_MSG_RING` there and returns true. A false return, or no ring fd, wakes
    /// through the waker instead.
    pub fn flush_wakes_with(&mut self, mut via_ring: impl FnMut(usize, RawFd) -> bool) -> usize {
        let mut woken = 0;
        for link in self.links.iter_mut().flatten() {
            if !link.dirty {
                continue;
            }
            link.dirty = false;
            if !link.notifier.should_wake() {
                continue;
            }
            let waker = link.notifier.waker();
            // A target sleeping on its parked word is woken there; its eventfd poll would
            // also end the sleep, at the cost of a read to drain it.
            let delivered = if link.notifier.consumer_sleeps_on_futex() {
                match link.notifier.wake_futex() {
                    Ok(()) => true,
                    Err(e) => {
                        if let Some(suppressed) = self.wake_log.allow(std::time::Instant::now()) {
                            tracing::warn!(to = link.to, suppressed, "cannot wake shard: {e}");
                        }
                        false
                    }
                }
            } else {
                waker.ring_fd().is_some_and(|fd| via_ring(link.to, fd))
                    || match waker.wake() {
                        Ok(()) => true,
                        Err(e) => {
                            if let Some(suppressed) = self.wake_log.allow(std::time::Instant::now())
                            {
                                tracing::warn!(to = link.to, suppressed, "cannot wake shard: {e}");
                            }
                            false
                        }
                    }
            };
            if delivered {
                link.stats[1].wakes += 1;
                woken += 1;
            } else {
                // Retry next turn: the claim goes back, the link stays dirty.
                link.notifier.give_back();
                link.dirty = true;
            }
        }
        woken
    }

    /// Wakes `target` through its waker (the eventfd), for a `MSG_RING` wake that failed in
    /// the kernel after it was queued.
    pub fn wake_directly(&mut self, target: usize) {
        if let Some(link) = self.links.get(target).and_then(Option::as_ref)
            && let Err(e) = link.notifier.waker().wake()
            && let Some(suppressed) = self.wake_log.allow(std::time::Instant::now())
        {
            tracing::warn!(to = target, suppressed, "cannot wake shard: {e}");
        }
    }

    /// Whether any send still waits for its wake (a failed wake to retry).
    pub fn wakes_pending(&self) -> bool {
        self.links.iter().flatten().any(|l| l.dirty)
    }

    /// Moves waiting items into `out` as `(from, lane, item)`: the control items of every peer
    /// first (at most `control_capacity` per peer), then at most `data_batch` data items per
    /// peer. Returns whether anything was left behind on either lane (the caller must not sleep
    /// before the next call).
    pub fn take_inbound(&mut self, out: &mut Vec<(usize, Lane, T)>) -> bool {
        let mut more = false;
        for (li, lane, batch) in [
            (0, Lane::Control, self.control_batch),
            (1, Lane::Data, self.data_batch),
        ] {
            for inbound in &mut self.inbound {
                let ring = &mut inbound.lanes[li];
                match ring.recv_batch(&mut self.scratch, batch) {
                    Ok(_) => more |= !ring.is_empty(),
                    Err(TryRecvError::Empty | TryRecvError::Closed) => {}
                }
                out.extend(self.scratch.drain(..).map(|t| (inbound.from, lane, t)));
            }
        }
        more
    }

    /// Whether an inbound ring holds an item. Fresh loads: the re-check after
    /// [`MeshEnd::prepare_park`].
    pub fn has_work(&self) -> bool {
        self.inbound
            .iter()
            .any(|i| !i.lanes[0].is_empty() || !i.lanes[1].is_empty())
    }

    /// Publishes "about to sleep"; the caller must then re-check with [`MeshEnd::has_work`]
    /// and either sleep or call [`MeshEnd::cancel_park`].
    pub fn prepare_park(&self) {
        self.parker.prepare_park();
    }

    /// Withdraws a park because work arrived.
    pub fn cancel_park(&self) {
        let _ = self.parker.cancel_park();
    }

    /// Call after every sleep returns.
    pub fn unparked(&self) {
        let _ = self.parker.unparked();
    }

    /// Tells peers whether this shard sleeps on its parked word with a futex wait (see
    /// [`Parker::sleep_on_futex`]).
    pub fn sleep_on_futex(&self, on: bool) {
        self.parker.sleep_on_futex(on);
    }

    /// The parked word's address, for `IORING_OP_FUTEX_WAIT` ([`Parker::futex_addr`]).
    pub fn futex_addr(&self) -> *const u32 {
        self.parker.futex_addr()
    }

    /// Whether this end has any peer (only then is parking protocol needed).
    pub fn has_peers(&self) -> bool {
        !self.inbound.is_empty()
    }

    /// Counters of every outbound lane, by target then lane.
    pub fn lane_stats(&self) -> Vec<LaneStats> {
        self.lanes().collect()
    }

    /// The same counters without collecting them (the shard publishes them every turn).
    pub fn lanes(&self) -> impl Iterator<Item = LaneStats> + '_ {
        self.links
            .iter()
            .flatten()
            .flat_map(|l| l.stats.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct CountWake(AtomicUsize);
    impl Wake for CountWake {
        fn wake(&self) -> io::Result<()> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    }

    fn mesh(n: usize, config: MeshConfig) -> (Vec<MeshEnd<u32>>, Vec<Arc<CountWake>>) {
        let counters: Vec<Arc<CountWake>> = (0..n).map(|_| Arc::default()).collect();
        let wakers: Vec<SharedWake> = counters
            .iter()
            .map(|c| Arc::clone(c) as SharedWake)
            .collect();
        (MeshEnd::build(config, &wakers), counters)
    }

    #[test]
    fn control_is_taken_before_data_and_data_is_batched() {
        let config = MeshConfig {
            control_capacity: 4,
            data_capacity: 8,
            data_batch: 3,
        };
        let (mut ends, _) = mesh(2, config);
        for i in 0..8 {
            ends[0].send(1, Lane::Data, i).unwrap();
        }
        assert_eq!(
            ends[0].send(1, Lane::Data, 99),
            Err(MeshSendError::Full(99))
        );
        // A full data lane leaves the control lane untouched.
        ends[0].send(1, Lane::Control, 100).unwrap();
        let mut out = Vec::new();
        assert!(ends[1].take_inbound(&mut out), "data left behind");
        let got: Vec<(usize, Lane, u32)> = out.clone();
        assert_eq!(
            got,
            vec![
                (0, Lane::Control, 100),
                (0, Lane::Data, 0),
                (0, Lane::Data, 1),
                (0, Lane::Data, 2)
            ]
        );
        let stats = ends[0].lane_stats();
        assert_eq!(stats[1].sent, 8);
        assert_eq!(stats[1].full, 1);
        assert_eq!(stats[1].max_depth, 8);
        assert_eq!(stats[0].sent, 1);
    }

    #[test]
    fn control_drain_is_bounded_per_turn_and_carries_over() {
        let config = MeshConfig {
            control_capacity: 4,
            data_capacity: 8,
            data_batch: 8,
        };
        let (mut ends, _) = mesh(3, config);
        // In production the bound is one ring's worth, which a single-threaded test cannot
        // exceed (only a producer refilling the ring during the drain can); a smaller bound
        // shows the carry-over the same way.
        ends[1].control_batch = 3;
        for from in [0, 2] {
            for i in 0..4 {
                ends[from]
                    .send(1, Lane::Control, 10 * from as u32 + i)
                    .unwrap();
            }
        }
        ends[0].send(1, Lane::Data, 99).unwrap();
        let mut out = Vec::new();
        assert!(
            ends[1].take_inbound(&mut out),
            "control left behind is reported"
        );
        assert_eq!(
            out,
            vec![
                (0, Lane::Control, 0),
                (0, Lane::Control, 1),
                (0, Lane::Control, 2),
                (2, Lane::Control, 20),
                (2, Lane::Control, 21),
                (2, Lane::Control, 22),
                (0, Lane::Data, 99),
            ]
        );
        // The producer refills meanwhile; the next turn resumes in order.
        ends[0].send(1, Lane::Control, 4).unwrap();
        out.clear();
        assert!(!ends[1].take_inbound(&mut out), "everything taken");
        assert_eq!(
            out,
            vec![
                (0, Lane::Control, 3),
                (0, Lane::Control, 4),
                (2, Lane::Control, 23),
            ]
        );
    }

    #[test]
    fn wakes_only_a_parked_target_once() {
        let (mut ends, wakes) = mesh(2, MeshConfig::default());
        // Running target: no wake.
        ends[0].send(1, Lane::Data, 1).unwrap();
        assert_eq!(ends[0].flush_wakes(), 0);
        let mut out = Vec::new();
        ends[1].take_inbound(&mut out);
        // Parked target: exactly one wake however many sends.
        ends[1].prepare_park();
        assert!(!ends[1].has_work());
        ends[0].send(1, Lane::Data, 2).unwrap();
        ends[0].send(1, Lane::Control, 3).unwrap();
        assert_eq!(ends[0].flush_wakes(), 1);
        assert_eq!(ends[0].flush_wakes(), 0);
        assert_eq!(wakes[1].0.load(Ordering::Relaxed), 1);
        ends[1].unparked();
        assert_eq!(ends[0].lane_stats()[1].wakes, 1);
    }

    #[test]
    fn closed_and_unknown_targets_hand_the_item_back() {
        let (mut ends, _) = mesh(2, MeshConfig::default());
        assert_eq!(
            ends[0].send(0, Lane::Data, 5),
            Err(MeshSendError::NoSuchShard(5))
        );
        assert_eq!(
            ends[0].send(7, Lane::Data, 6),
            Err(MeshSendError::NoSuchShard(6))
        );
        let dead = ends.pop().unwrap();
        drop(dead);
        assert_eq!(
            ends[0].send(1, Lane::Control, 7),
            Err(MeshSendError::Closed(7))
        );
        assert_eq!(ends[0].lane_stats()[0].closed, 1);
        let mut solo = MeshEnd::<u8>::solo(0);
        assert_eq!(
            solo.send(1, Lane::Data, 1),
            Err(MeshSendError::NoSuchShard(1))
        );
        assert!(!solo.has_peers());
    }
}
