//! `ringwire-bench rings`: the cross-core SPSC ring and the wake paths, side by side with
//! `rtrb`, `crossbeam_queue::ArrayQueue` and `tokio::sync::mpsc` (bounded, `try_send` /
//! `try_recv`), in one run.
//!
//! Producer and consumer are pinned to two different cores (`--cores A,B`). Throughput and
//! ping-pong loops busy-poll (that is what is being measured: the cost of the ring, not of a
//! sleep); the wake measurements sleep for real, in `poll(2)` on an eventfd or in
//! `io_uring_enter` waiting for an eventfd poll, an `IORING_OP_MSG_RING` or an
//! `IORING_OP_FUTEX_WAIT` completion, and also report the CPU time both sides spend per wake.
//!
//! Every figure is the median of `--runs` runs. Throughput ratios are ringwire / other
//! (above 1: ringwire moves more); cost and latency ratios are ringwire / other too (below 1:
//! ringwire is cheaper).

use crate::report::{Caption, RunHeader};
use crate::sys::cpu_time;
use crate::sys::loadavg::{self, LoadAvg};
use crate::sys::steal;
use crate::validity::{self, Machine};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use ringwire_shard::ring::{self as rw, EventFd, ParkDecision, Parker, WakingProducer};
use serde::Serialize;

/// Arguments of `ringwire-bench rings`.
#[derive(clap::Args, Debug, Clone)]
pub struct RingsArgs {
    /// Items moved per single-item throughput run (batched runs move ten times as many), and
    /// `try_send` calls per full-ring run.
    #[arg(long, default_value_t = 10_000_000)]
    pub items: u64,
    /// Producer core and consumer core, e.g. `0,1`.
    #[arg(long, value_delimiter = ',', default_values_t = [0, 1])]
    pub cores: Vec<usize>,
    /// Ring capacity for every implementation.
    #[arg(long, default_value_t = 1024)]
    pub capacity: usize,
    /// Items per batch in the batched runs.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Round trips per ping-pong run.
    #[arg(long, default_value_t = 200_000)]
    pub round_trips: u64,
    /// Wake-ups per wake-latency run (each waits for the consumer to be asleep).
    #[arg(long, default_value_t = 2_000)]
    pub wakes: u64,
    /// Runs per measurement; the median is reported.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Fresh processes for ringwire's and rtrb's figures in the sections where they meet
    /// (single items, iterators, buffers, round trip, `try_send` on a full ring): each runs
    /// both rings `--process-runs` times, and the page gives the median of the processes'
    /// medians and their spread. A process's heap placement can decide its single-item rate
    /// (D78), so one process's median cannot decide the ratio. 1: measured in this process,
    /// like the other rings.
    #[arg(long, default_value_t = 5)]
    pub processes: usize,
    /// Runs of each ring per fresh process (see `--processes`).
    #[arg(long, default_value_t = 3)]
    pub process_runs: usize,
    /// Internal: run as one of `--processes`' children, measure only ringwire and rtrb in the
    /// sections they share and write the rows as JSON here.
    #[arg(long, hide = true)]
    pub child_json: Option<PathBuf>,
    /// Internal: start every section's rounds with the last ring (a child of `--processes`
    /// alternates which ring runs first).
    #[arg(long, hide = true)]
    pub reverse_order: bool,
    /// Only the sections whose name contains this (e.g. `full`), to run one under `strace`.
    #[arg(long)]
    pub only: Option<String>,
    /// Only these implementations (names as in the table, comma-separated, e.g.
    /// `ringwire,rtrb`), to keep a run on a busy machine short; default: all.
    #[arg(long, value_delimiter = ',')]
    pub rings: Vec<String>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also write the page (`docs/BENCHMARKS-rings.md`) to this file.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// A `machine.txt` (as `scripts/bench.sh` writes it) to quote on the
    /// page: its `git:` and `kernel:` lines head the tables.
    #[arg(long)]
    pub machine: Option<PathBuf>,
}

/// One measured figure.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// What was measured.
    pub section: &'static str,
    /// Which implementation.
    pub ring: &'static str,
    /// The median.
    pub value: f64,
    /// Unit of `value`.
    pub unit: &'static str,
    /// Every run's figure, or (when `processes` > 1) every process's median.
    pub runs: Vec<f64>,
    /// Fresh processes the figure comes from (1: runs in the process that wrote the page).
    pub processes: usize,
}

impl Row {
    /// The row of `runs` (one figure per run, or per fresh process when `processes` > 1): their
    /// median, also printed to stderr as the benchmark goes.
    fn from_runs(
        section: &'static str,
        ring: &'static str,
        unit: &'static str,
        runs: Vec<f64>,
        processes: usize,
    ) -> Row {
        let value = median(runs.clone());
        if processes > 1 {
            eprintln!(
                "{section:<32} {ring:<12} {value:>14.1} {unit} (median of {} processes)",
                runs.len()
            );
        } else {
            eprintln!("{section:<32} {ring:<12} {value:>14.1} {unit}");
        }
        Row {
            section,
            ring,
            value,
            unit,
            runs,
            processes,
        }
    }
}

/// A [`Row`] as a child process of `--processes` writes it.
#[derive(Debug, serde::Deserialize)]
struct ChildRow {
    section: String,
    ring: String,
    value: f64,
}

/// The sections where ringwire meets rtrb like for like, with their units: measured over
/// `--processes` fresh processes.
const HEAD_TO_HEAD: [(&str, &str); 5] = [
    ("throughput single", "items/s"),
    ("throughput batched, iterators", "items/s"),
    ("throughput batched, buffers", "items/s"),
    ("round trip (ping-pong)", "ns"),
    ("try_send on full ring", "ns/call"),
];

/// Everything `rings` measured, plus the setting.
#[derive(Debug, Clone, Serialize)]
pub struct RingsReport {
    /// `nproc` as seen by the process.
    pub nproc: usize,
    /// CPU model from `/proc/cpuinfo`.
    pub cpu: String,
    /// Producer and consumer cores.
    pub cores: [usize; 2],
    /// Ring capacity.
    pub capacity: usize,
    /// Batch size.
    pub batch: usize,
    /// Items per throughput run.
    pub items: u64,
    /// Fresh processes behind ringwire's and rtrb's head-to-head figures (1: this process).
    pub processes: usize,
    /// Runs of each ring per fresh process.
    pub process_runs: usize,
    /// Every figure.
    pub rows: Vec<Row>,
    /// `/proc/loadavg` before the first measurement.
    pub loadavg_before: Option<LoadAvg>,
    /// `/proc/loadavg` after the last one.
    pub loadavg_after: Option<LoadAvg>,
    /// Hypervisor steal from the first measurement to the last, % of the machine's CPU time
    /// ([`crate::sys::steal`]). Absent in older reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steal_pct: Option<f64>,
}

/// Errors of the `rings` benchmark.
#[derive(Debug, thiserror::Error)]
pub enum RingsError {
    /// `--cores` did not name two cores this process may run on.
    #[error("--cores needs two distinct usable core ids, got {0:?}")]
    Cores(Vec<usize>),
    /// An I/O error (eventfd, io_uring, the JSON file).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A child process of `--processes` failed or wrote no figures.
    #[error("rings child process {index}: {reason}")]
    Child {
        /// Which child (0-based).
        index: usize,
        /// What went wrong.
        reason: String,
    },
    /// Serialising the JSON report.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// The four rings under test, behind one busy-polling interface.
trait Ring {
    const NAME: &'static str;
    type Tx: Send;
    type Rx: Send;
    fn pair(capacity: usize) -> (Self::Tx, Self::Rx);
    /// `Err(item)` when full.
    fn push(tx: &mut Self::Tx, item: u64) -> Result<(), u64>;
    fn pop(rx: &mut Self::Rx) -> Option<u64>;
}

struct Ringwire;
impl Ring for Ringwire {
    const NAME: &'static str = "ringwire";
    type Tx = rw::Producer<u64>;
    type Rx = rw::Consumer<u64>;
    fn pair(capacity: usize) -> (Self::Tx, Self::Rx) {
        rw::channel(capacity)
    }
    #[inline]
    fn push(tx: &mut Self::Tx, item: u64) -> Result<(), u64> {
        tx.try_send(item).map_err(rw::TrySendError::into_inner)
    }
    #[inline]
    fn pop(rx: &mut Self::Rx) -> Option<u64> {
        rx.try_recv().ok()
    }
}

struct Rtrb;
impl Ring for Rtrb {
    const NAME: &'static str = "rtrb";
    type Tx = rtrb::Producer<u64>;
    type Rx = rtrb::Consumer<u64>;
    fn pair(capacity: usize) -> (Self::Tx, Self::Rx) {
        rtrb::RingBuffer::new(capacity)
    }
    #[inline]
    fn push(tx: &mut Self::Tx, item: u64) -> Result<(), u64> {
        tx.push(item).map_err(|rtrb::PushError::Full(item)| item)
    }
    #[inline]
    fn pop(rx: &mut Self::Rx) -> Option<u64> {
        rx.pop().ok()
    }
}

struct ArrayQueue;
impl Ring for ArrayQueue {
    const NAME: &'static str = "ArrayQueue";
    type Tx = Arc<crossbeam_queue::ArrayQueue<u64>>;
    type Rx = Arc<crossbeam_queue::ArrayQueue<u64>>;
    fn pair(capacity: usize) -> (Self::Tx, Self::Rx) {
        let q = Arc::new(crossbeam_queue::ArrayQueue::new(capacity));
        (Arc::clone(&q), q)
    }
    #[inline]
    fn push(tx: &mut Self::Tx, item: u64) -> Result<(), u64> {
        tx.push(item)
    }
    #[inline]
    fn pop(rx: &mut Self::Rx) -> Option<u64> {
        rx.pop()
    }
}

struct TokioMpsc;
impl Ring for TokioMpsc {
    const NAME: &'static str = "tokio mpsc";
    type Tx = tokio::sync::mpsc::Sender<u64>;
    type Rx = tokio::sync::mpsc::Receiver<u64>;
    fn pair(capacity: usize) -> (Self::Tx, Self::Rx) {
        tokio::sync::mpsc::channel(capacity)
    }
    #[inline]
    fn push(tx: &mut Self::Tx, item: u64) -> Result<(), u64> {
        tx.try_send(item).map_err(|e| match e {
            tokio::sync::mpsc::error::TrySendError::Full(item)
            | tokio::sync::mpsc::error::TrySendError::Closed(item) => item,
        })
    }
    #[inline]
    fn pop(rx: &mut Self::Rx) -> Option<u64> {
        rx.try_recv().ok()
    }
}

/// A ring's name and one run of a measurement.
type Measured<'a> = (&'static str, &'a mut dyn FnMut() -> f64);

const NAMES: [&str; 4] = [
    Ringwire::NAME,
    Rtrb::NAME,
    ArrayQueue::NAME,
    TokioMpsc::NAME,
];

#[derive(Clone, Copy)]
struct Cores {
    producer: core_affinity::CoreId,
    consumer: core_affinity::CoreId,
}

fn pin(core: core_affinity::CoreId) {
    if !core_affinity::set_for_current(core) {
        eprintln!("warning: could not pin a thread to core {}", core.id);
    }
}

/// Runs `producer` and `consumer` on their cores, released together; returns the time from
/// the release (taken on the producer's core) to the consumer's end (the consumer returns
/// its `Instant` of completion). The unpinned main thread takes no timestamp: on a loaded
/// two-core machine it may not run for milliseconds.
fn run_pair<P, C>(cores: Cores, producer: P, consumer: C) -> Duration
where
    P: FnOnce() + Send,
    C: FnOnce() -> Instant + Send,
{
    let barrier = Barrier::new(2);
    let (start, end) = thread::scope(|s| {
        let c = s.spawn(|| {
            pin(cores.consumer);
            barrier.wait();
            consumer()
        });
        let p = s.spawn(|| {
            pin(cores.producer);
            barrier.wait();
            let start = Instant::now();
            producer();
            start
        });
        let start = p.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        let end = c.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        (start, end)
    });
    end.saturating_duration_since(start)
}

/// Runs `f` on a fresh thread pinned to `core` (the main thread stays unpinned).
fn on_core<R: Send>(core: core_affinity::CoreId, f: impl FnOnce() -> R + Send) -> R {
    thread::scope(|s| {
        s.spawn(|| {
            pin(core);
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

fn check_sum(n: u64, sum: u64) {
    assert_eq!(sum, n * (n - 1) / 2, "items lost or duplicated");
}

/// Items per second, one item at a time.
fn throughput<R: Ring>(cores: Cores, capacity: usize, items: u64) -> f64 {
    let (mut tx, mut rx) = R::pair(capacity);
    let elapsed = run_pair(
        cores,
        move || {
            for i in 0..items {
                let mut item = i;
                while let Err(back) = R::push(&mut tx, item) {
                    item = back;
                    std::hint::spin_loop();
                }
            }
        },
        move || {
            let (mut n, mut sum) = (0, 0u64);
            while n < items {
                if let Some(v) = R::pop(&mut rx) {
                    sum = sum.wrapping_add(v);
                    n += 1;
                } else {
                    std::hint::spin_loop();
                }
            }
            let end = Instant::now();
            check_sum(items, sum);
            end
        },
    );
    items as f64 / elapsed.as_secs_f64()
}

/// Items per second with `send_batch` / `recv_batch`.
fn throughput_ringwire_batched(cores: Cores, capacity: usize, items: u64, batch: usize) -> f64 {
    let (mut tx, mut rx) = rw::channel::<u64>(capacity);
    let elapsed = run_pair(
        cores,
        move || {
            let mut pending = VecDeque::with_capacity(batch);
            let mut next = 0;
            while next < items || !pending.is_empty() {
                // Top the deque up from the range in one `extend` (a reserve and a copy), as
                // rtrb's side fills its slice.
                let end = (next + (batch - pending.len()) as u64).min(items);
                pending.extend(next..end);
                next = end;
                match tx.send_batch(&mut pending) {
                    Ok(0) => std::hint::spin_loop(),
                    Ok(_) => {}
                    Err(rw::ClosedError) => return,
                }
            }
        },
        move || {
            let mut out = Vec::with_capacity(batch);
            let (mut n, mut sum) = (0, 0u64);
            while n < items {
                out.clear();
                match rx.recv_batch(&mut out, batch) {
                    Ok(k) => {
                        n += k as u64;
                        sum = out.iter().fold(sum, |s, &v| s.wrapping_add(v));
                    }
                    Err(_) => std::hint::spin_loop(),
                }
            }
            let end = Instant::now();
            check_sum(items, sum);
            end
        },
    );
    items as f64 / elapsed.as_secs_f64()
}

/// Items per second with `send_iter` / `recv_with`: no buffer on either side.
fn throughput_ringwire_iter(cores: Cores, capacity: usize, items: u64, batch: usize) -> f64 {
    let (mut tx, mut rx) = rw::channel::<u64>(capacity);
    let elapsed = run_pair(
        cores,
        move || {
            let mut source = 0..items;
            while !source.is_empty() {
                let end = source.start.saturating_add(batch as u64).min(items);
                let mut chunk = source.start..end;
                match tx.send_iter(&mut chunk) {
                    Ok(0) => std::hint::spin_loop(),
                    Ok(_) => {}
                    Err(rw::ClosedError) => return,
                }
                source.start = chunk.start;
            }
        },
        move || {
            let (mut n, mut sum) = (0, 0u64);
            while n < items {
                match rx.recv_with(batch, |v| sum = sum.wrapping_add(v)) {
                    Ok(k) => n += k as u64,
                    Err(_) => std::hint::spin_loop(),
                }
            }
            let end = Instant::now();
            check_sum(items, sum);
            end
        },
    );
    items as f64 / elapsed.as_secs_f64()
}

/// Items per second with rtrb's slice chunks (`push_partial_slice` / `pop_partial_slice`).
fn throughput_rtrb_batched(cores: Cores, capacity: usize, items: u64, batch: usize) -> f64 {
    let (mut tx, mut rx) = rtrb::RingBuffer::<u64>::new(capacity);
    let elapsed = run_pair(
        cores,
        move || {
            let mut buf = vec![0u64; batch];
            let (mut next, mut filled, mut start) = (0, 0, 0);
            while next < items || start < filled {
                if start == filled {
                    filled = batch.min((items - next) as usize);
                    for slot in &mut buf[..filled] {
                        *slot = next;
                        next += 1;
                    }
                    start = 0;
                }
                let (pushed, _) = tx.push_partial_slice(&buf[start..filled]);
                if pushed.is_empty() {
                    std::hint::spin_loop();
                }
                start += pushed.len();
            }
        },
        move || {
            let mut buf = vec![0u64; batch];
            let (mut n, mut sum) = (0, 0u64);
            while n < items {
                let (popped, _) = rx.pop_partial_slice(&mut buf);
                if popped.is_empty() {
                    std::hint::spin_loop();
                }
                n += popped.len() as u64;
                sum = popped.iter().fold(sum, |s, &v| s.wrapping_add(v));
            }
            let end = Instant::now();
            check_sum(items, sum);
            end
        },
    );
    items as f64 / elapsed.as_secs_f64()
}

/// Items per second with rtrb's move-based chunks (`write_chunk_uninit` + `fill_from_iter`,
/// `read_chunk` + `into_iter`): the generic-`T` batch path, like ringwire's.
fn throughput_rtrb_chunk_iter(cores: Cores, capacity: usize, items: u64, batch: usize) -> f64 {
    let (mut tx, mut rx) = rtrb::RingBuffer::<u64>::new(capacity);
    let elapsed = run_pair(
        cores,
        move || {
            let mut next = 0;
            while next < items {
                let want = batch.min((items - next) as usize).min(tx.slots());
                if want == 0 {
                    std::hint::spin_loop();
                    continue;
                }
                if let Ok(chunk) = tx.write_chunk_uninit(want) {
                    next += chunk.fill_from_iter(next..) as u64;
                }
            }
        },
        move || {
            let (mut n, mut sum) = (0, 0u64);
            while n < items {
                let have = rx.slots().min(batch);
                if have == 0 {
                    std::hint::spin_loop();
                    continue;
                }
                if let Ok(chunk) = rx.read_chunk(have) {
                    n += have as u64;
                    sum = chunk.into_iter().fold(sum, u64::wrapping_add);
                }
            }
            let end = Instant::now();
            check_sum(items, sum);
            end
        },
    );
    items as f64 / elapsed.as_secs_f64()
}

/// Mean round-trip time in ns: one item to the other core and back over two rings.
fn ping_pong<R: Ring>(cores: Cores, capacity: usize, round_trips: u64) -> f64 {
    let (mut ping_tx, mut ping_rx) = R::pair(capacity);
    let (mut pong_tx, mut pong_rx) = R::pair(capacity);
    let elapsed = run_pair(
        cores,
        move || {
            for i in 0..round_trips {
                while R::pop(&mut ping_rx).is_none() {
                    std::hint::spin_loop();
                }
                while R::push(&mut pong_tx, i).is_err() {
                    std::hint::spin_loop();
                }
            }
        },
        move || {
            for i in 0..round_trips {
                while R::push(&mut ping_tx, i).is_err() {
                    std::hint::spin_loop();
                }
                loop {
                    if let Some(v) = R::pop(&mut pong_rx) {
                        assert_eq!(v, i);
                        break;
                    }
                    std::hint::spin_loop();
                }
            }
            Instant::now()
        },
    );
    elapsed.as_nanos() as f64 / round_trips as f64
}

/// ns per `try_send` on a full ring, single thread on the producer core.
fn full_ring_try_send<R: Ring>(cores: Cores, capacity: usize, calls: u64) -> f64 {
    on_core(cores.producer, || {
        full_ring_try_send_here::<R>(capacity, calls)
    })
}

fn full_ring_try_send_here<R: Ring>(capacity: usize, calls: u64) -> f64 {
    let (mut tx, rx) = R::pair(capacity);
    let mut i = 0;
    while R::push(&mut tx, i).is_ok() {
        i += 1;
    }
    assert_eq!(
        i as usize,
        capacity,
        "{} holds {i}, not {capacity}",
        R::NAME
    );
    let start = Instant::now();
    let mut refused = 0u64;
    for i in 0..calls {
        if R::push(&mut tx, black_box(i)).is_err() {
            refused += 1;
        }
    }
    let elapsed = start.elapsed();
    assert_eq!(refused, calls);
    drop(black_box(rx));
    elapsed.as_nanos() as f64 / calls as f64
}

/// ns per `try_send` + `try_recv` pair on one thread (no second core, so no cache-line
/// transfer): the instruction cost of the two operations. Keeps 16 items in flight.
fn same_thread_pair<R: Ring>(cores: Cores, capacity: usize, pairs: u64) -> f64 {
    on_core(cores.producer, || {
        let (mut tx, mut rx) = R::pair(capacity);
        for i in 0..16 {
            assert!(R::push(&mut tx, i).is_ok());
        }
        let start = Instant::now();
        let mut sum = 0u64;
        for i in 0..pairs {
            assert!(R::push(&mut tx, black_box(i)).is_ok());
            sum = sum.wrapping_add(R::pop(&mut rx).unwrap_or(0));
        }
        let elapsed = start.elapsed();
        black_box(sum);
        elapsed.as_nanos() as f64 / pairs as f64
    })
}

/// One wake-latency run: latency percentiles and CPU per wake.
#[derive(Clone, Copy)]
struct WakeRun {
    p50: f64,
    p99: f64,
    /// CPU time (ns) the producer spent in `notify` (the wake itself), per wake.
    waker_cpu: f64,
    /// CPU time (ns) of the consumer thread, per wake: parking, the re-check, going to sleep,
    /// waking, taking the item. It does nothing else.
    sleeper_cpu: f64,
}

/// Wake latency (ns, median and 99th percentile) from the producer's `try_send` + `notify`
/// to the consumer holding the item, the consumer having been asleep each time, and the CPU
/// both sides spent per wake.
///
/// `make_waker` runs on the producer thread; `sleep` is the consumer's blocking wait. With
/// `futex`, the consumer sleeps on its parked word ([`Parker::sleep_on_futex`]) and the
/// producer's `notify` wakes it with `FUTEX_WAKE`.
fn wake_latency<W, M, S>(cores: Cores, wakes: u64, futex: bool, make_waker: M, sleep: S) -> WakeRun
where
    W: rw::Wake,
    M: FnOnce() -> W + Send,
    S: FnMut(&Parker) + Send,
{
    let (tx, mut rx) = rw::channel::<u64>(16);
    let parker = Parker::new();
    parker.sleep_on_futex(futex);
    let base = Instant::now();
    let mut samples = Vec::with_capacity(wakes as usize);
    let mut sleep = sleep;
    let parker_ref = &parker;
    let mut waker_ns = 0u64;
    let mut sleeper_ns = 0u64;
    let (waker_ref, sleeper_ref) = (&mut waker_ns, &mut sleeper_ns);
    run_pair(
        cores,
        move || {
            let mut tx = WakingProducer::new(tx, parker_ref.notifier(make_waker()));
            for _ in 0..wakes {
                while !tx.notifier().consumer_parked() {
                    std::hint::spin_loop();
                }
                // Let the consumer get from "parked" into the kernel's sleep.
                thread::sleep(Duration::from_micros(200));
                let t0 = base.elapsed().as_nanos() as u64;
                if tx.try_send(t0).is_err() {
                    return;
                }
                let cpu0 = cpu_time::current_thread_ns();
                let woken = tx.notify();
                *waker_ref += cpu_time::current_thread_ns().saturating_sub(cpu0);
                if let Err(e) = woken {
                    eprintln!("wake failed: {e}");
                    return;
                }
            }
        },
        || {
            let cpu0 = cpu_time::current_thread_ns();
            for _ in 0..wakes {
                let t0 = loop {
                    match rx.try_recv() {
                        Ok(t0) => break t0,
                        Err(rw::TryRecvError::Closed) => return Instant::now(),
                        Err(rw::TryRecvError::Empty) => {}
                    }
                    if parker_ref.park(|| rx.has_work()) == ParkDecision::Sleep {
                        sleep(parker_ref);
                        parker_ref.unparked();
                    }
                };
                samples.push(base.elapsed().as_nanos() as u64 - t0);
            }
            *sleeper_ref = cpu_time::current_thread_ns().saturating_sub(cpu0);
            Instant::now()
        },
    );
    samples.sort_unstable();
    let pct = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize] as f64;
    WakeRun {
        p50: pct(0.5),
        p99: pct(0.99),
        waker_cpu: waker_ns as f64 / wakes as f64,
        sleeper_cpu: sleeper_ns as f64 / wakes as f64,
    }
}

/// The consumer's sleep in `io_uring_enter` with one wait armed on its ring: an
/// `IORING_OP_FUTEX_WAIT` on the parked word, or an `IORING_OP_POLL_ADD` on an eventfd (then
/// drained with `read(2)`, as a shard does). Re-armed after its completion.
mod uring_sleep {
    #![allow(unsafe_code)]

    use std::io;
    use std::os::fd::AsRawFd;

    use io_uring::{IoUring, opcode, types};
    use ringwire_shard::ring::{EventFd, Parker, futex};

    /// A consumer ring and whether its wait is armed.
    pub struct Sleeper {
        ring: IoUring,
        armed: bool,
    }

    impl Sleeper {
        pub fn new() -> io::Result<Self> {
            Ok(Self {
                ring: IoUring::new(8)?,
                armed: false,
            })
        }

        /// Whether the kernel has `IORING_OP_FUTEX_WAIT` (6.7+).
        pub fn has_futex_wait(&self) -> bool {
            let mut probe = io_uring::Probe::new();
            self.ring.submitter().register_probe(&mut probe).is_ok()
                && probe.is_supported(opcode::FutexWait::CODE)
        }

        /// Sleeps on the parked word until a futex wake (or at once if it is no longer
        /// parked).
        pub fn futex(&mut self, parker: &Parker) {
            if !self.armed {
                let word = parker.futex_word().as_ptr().cast_const();
                let sqe = opcode::FutexWait::new(
                    word,
                    u64::from(Parker::FUTEX_PARKED),
                    futex::FUTEX_BITSET_MATCH_ANY,
                    futex::FUTEX2_SIZE_U32 | futex::FUTEX2_PRIVATE,
                )
                .build();
                // SAFETY: the word is the parker's, which outlives this sleeper's use of it
                // (the run joins the consumer before dropping the parker); the kernel only
                // reads it.
                unsafe { self.ring.submission().push(&sqe) }.expect("consumer SQ full");
                self.armed = true;
            }
            self.enter();
        }

        /// Sleeps until `efd` is readable, then drains it.
        pub fn eventfd(&mut self, efd: &EventFd) {
            if !self.armed {
                let sqe =
                    opcode::PollAdd::new(types::Fd(efd.as_raw_fd()), libc::POLLIN as u32).build();
                // SAFETY: a poll SQE carries no pointer; the eventfd stays open for the run.
                unsafe { self.ring.submission().push(&sqe) }.expect("consumer SQ full");
                self.armed = true;
            }
            self.enter();
            if !self.armed {
                efd.try_drain().expect("eventfd read");
            }
        }

        fn enter(&mut self) {
            loop {
                match self.ring.submit_and_wait(1) {
                    Ok(_) => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => panic!("io_uring_enter: {e}"),
                }
            }
            // The one armed wait is the only operation: any completion is it.
            if self.ring.completion().count() > 0 {
                self.armed = false;
            }
        }
    }
}

/// `IORING_OP_MSG_RING` as a [`rw::Wake`]: the producer's own ring posts a CQE into the
/// consumer's ring (kernel 5.18+).
mod msg_ring {
    #![allow(unsafe_code)]

    use std::cell::RefCell;
    use std::io;
    use std::os::fd::RawFd;

    use io_uring::{IoUring, opcode, types};

    /// Wakes a consumer blocked in `io_uring_enter` on the ring `target`.
    pub struct MsgRingWaker {
        ring: RefCell<IoUring>,
        target: RawFd,
    }

    impl MsgRingWaker {
        pub fn new(target: RawFd) -> io::Result<Self> {
            Ok(Self {
                ring: RefCell::new(IoUring::new(8)?),
                target,
            })
        }
    }

    impl ringwire_shard::ring::Wake for MsgRingWaker {
        fn wake(&self) -> io::Result<()> {
            let mut ring = self.ring.borrow_mut();
            let sqe = opcode::MsgRingData::new(types::Fd(self.target), 0, 1, None).build();
            // SAFETY: a MSG_RING data SQE carries no pointer into our memory; the target fd is
            // an io_uring kept open by the consumer for as long as this waker is used.
            unsafe { ring.submission().push(&sqe) }
                .map_err(|_| io::Error::other("producer SQ full"))?;
            // Wait for our own CQE so the SQ and CQ never fill up.
            ring.submit_and_wait(1)?;
            for cqe in ring.completion() {
                if cqe.result() < 0 {
                    return Err(io::Error::from_raw_os_error(-cqe.result()));
                }
            }
            Ok(())
        }
    }

    /// Blocks in `io_uring_enter` until a CQE arrives, then reaps them all.
    pub fn sleep(ring: &mut IoUring) {
        loop {
            match ring.submit_and_wait(1) {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => panic!("io_uring_enter: {e}"),
            }
        }
        ring.completion().for_each(drop);
    }
}

/// A wake row: its section, its unit, and the figure it takes from a run.
type WakeSection = (&'static str, &'static str, fn(&WakeRun) -> f64);

/// The wake mechanisms, interleaved run by run, each a [`WakeRun`]: eventfd with the
/// consumer in `poll(2)`; eventfd, `MSG_RING` and futex with the consumer in `io_uring_enter`
/// (the futex one only where the kernel has `IORING_OP_FUTEX_WAIT`). Rows: latency p50 and
/// p99, and CPU per wake of the waker and of the sleeper.
fn measure_wakes(cores: Cores, wakes: u64, runs: usize, rows: &mut Vec<Row>) {
    let mut names: Vec<&'static str> = vec!["eventfd (poll)"];
    let uring = uring_sleep::Sleeper::new();
    let futex = match &uring {
        Ok(s) => s.has_futex_wait(),
        Err(e) => {
            eprintln!("io_uring wakes skipped: io_uring unavailable: {e}");
            false
        }
    };
    if uring.is_ok() {
        names.extend(["eventfd (uring)", "MSG_RING"]);
    }
    if futex {
        names.push("futex");
    } else if uring.is_ok() {
        eprintln!("futex skipped: the kernel has no IORING_OP_FUTEX_WAIT (6.7+)");
    }
    let mut results: Vec<Vec<WakeRun>> = vec![Vec::new(); names.len()];
    let eventfd = || Arc::new(EventFd::new().unwrap_or_else(|e| panic!("eventfd: {e}")));
    for _ in 0..runs {
        for (i, name) in names.iter().enumerate() {
            let run = match *name {
                "eventfd (poll)" => {
                    let efd = eventfd();
                    let waker = Arc::clone(&efd);
                    wake_latency(
                        cores,
                        wakes,
                        false,
                        move || waker,
                        |_: &Parker| {
                            efd.wait().unwrap_or_else(|e| panic!("eventfd wait: {e}"));
                        },
                    )
                }
                "eventfd (uring)" => {
                    let efd = eventfd();
                    let waker = Arc::clone(&efd);
                    let mut sleeper = uring_sleep::Sleeper::new()
                        .unwrap_or_else(|e| panic!("consumer io_uring: {e}"));
                    wake_latency(
                        cores,
                        wakes,
                        false,
                        move || waker,
                        move |_: &Parker| {
                            sleeper.eventfd(&efd);
                        },
                    )
                }
                "MSG_RING" => {
                    let mut ring = io_uring::IoUring::new(8)
                        .unwrap_or_else(|e| panic!("consumer io_uring: {e}"));
                    let target = std::os::fd::AsRawFd::as_raw_fd(&ring);
                    let make = move || {
                        msg_ring::MsgRingWaker::new(target)
                            .unwrap_or_else(|e| panic!("producer io_uring: {e}"))
                    };
                    wake_latency(cores, wakes, false, make, |_: &Parker| {
                        msg_ring::sleep(&mut ring);
                    })
                }
                _ => {
                    let mut sleeper = uring_sleep::Sleeper::new()
                        .unwrap_or_else(|e| panic!("consumer io_uring: {e}"));
                    // The futex wake needs no waker of its own: `notify` wakes the word.
                    let unused = eventfd();
                    wake_latency(
                        cores,
                        wakes,
                        true,
                        move || unused,
                        move |p: &Parker| {
                            sleeper.futex(p);
                        },
                    )
                }
            };
            results[i].push(run);
        }
    }
    let sections: [WakeSection; 4] = [
        ("wake latency p50", "ns", |r| r.p50),
        ("wake latency p99", "ns", |r| r.p99),
        ("wake CPU per wake, waker", "ns", |r| r.waker_cpu),
        ("wake CPU per wake, sleeper", "ns", |r| r.sleeper_cpu),
    ];
    for (section, unit, get) in sections {
        for (name, runs) in names.iter().zip(&results) {
            let figures: Vec<f64> = runs.iter().map(get).collect();
            let value = median(figures.clone());
            eprintln!("{section:<32} {name:<16} {value:>14.1} {unit}");
            rows.push(Row {
                section,
                ring: name,
                value,
                unit,
                runs: figures,
                processes: 1,
            });
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Runs the benchmark, prints the table and returns the report.
pub fn run(args: RingsArgs) -> Result<RingsReport, RingsError> {
    let loadavg_before = loadavg::now();
    let ticks_before = steal::now();
    let nproc = thread::available_parallelism().map_or(0, usize::from);
    let ids = core_affinity::get_core_ids().unwrap_or_default();
    let find = |id: usize| ids.iter().copied().find(|c| c.id == id);
    let cores = match (
        args.cores.as_slice(),
        args.cores.first().copied().and_then(find),
    ) {
        ([a, b], Some(producer)) if a != b => match find(*b) {
            Some(consumer) => Cores { producer, consumer },
            None => return Err(RingsError::Cores(args.cores.clone())),
        },
        _ => return Err(RingsError::Cores(args.cores.clone())),
    };
    let child = args.child_json.is_some();
    // A section's name, or the start of several (`wants("throughput batched")` stands for
    // both batched sections).
    let head_to_head = |section: &str| HEAD_TO_HEAD.iter().any(|(s, _)| s.starts_with(section));
    let wants = |section: &str| {
        args.only.as_deref().is_none_or(|o| section.contains(o))
            && (!child || head_to_head(section))
    };
    // Ringwire's and rtrb's head-to-head figures come from fresh processes first (their rows
    // lead each section); this process then measures the other rings.
    let across = !child && args.processes > 1;
    let mut rows = if across {
        across_processes(&args, &cores, &wants)?
    } else {
        Vec::new()
    };
    let (cap, items, batch) = (args.capacity, args.items, args.batch);
    // One section at a time; runs interleave the rings (run 1 of each, then run 2 of each,
    // ...) so load from other processes drifts across all of them alike, in an order that
    // reverses every round (A B, B A, A B, ...) so no ring always runs first, after one
    // untimed warm-up run of each (thread start, first touch of the allocator's pages, the
    // clock's ramp) whose figure is dropped.
    let runs = args.runs.max(1);
    let mut measure = |section: &'static str, unit, rings: &mut [Measured<'_>]| {
        let chosen = |ring: &str| {
            (args.rings.is_empty() || args.rings.iter().any(|r| r == ring))
                && !(across && head_to_head(section) && [NAMES[0], NAMES[1]].contains(&ring))
        };
        let mut figures = vec![Vec::with_capacity(runs); rings.len()];
        for (_, f) in rings.iter_mut().filter(|(ring, _)| chosen(ring)) {
            black_box(f());
        }
        for round in 0..runs {
            let mut order: Vec<usize> = (0..rings.len()).collect();
            if (round % 2 == 1) != args.reverse_order {
                order.reverse();
            }
            for i in order {
                let (ring, f) = &mut rings[i];
                if chosen(ring) {
                    figures[i].push(f());
                }
            }
        }
        for ((ring, _), runs) in rings.iter().zip(figures) {
            if runs.is_empty() {
                continue;
            }
            rows.push(Row::from_runs(section, ring, unit, runs, 1));
        }
    };

    if wants("throughput single") {
        measure(
            "throughput single",
            "items/s",
            &mut [
                (NAMES[0], &mut || throughput::<Ringwire>(cores, cap, items)),
                (NAMES[1], &mut || throughput::<Rtrb>(cores, cap, items)),
                (NAMES[2], &mut || {
                    throughput::<ArrayQueue>(cores, cap, items)
                }),
                (NAMES[3], &mut || throughput::<TokioMpsc>(cores, cap, items)),
            ],
        );
    }
    if wants("throughput batched") {
        // Ten times the items: a batched run of `--items` is over in milliseconds, too short
        // to rise above scheduling noise on a shared machine.
        let items = items * 10;
        // Like for like, twice. Iterators: ringwire `send_iter` / `recv_with` against rtrb's
        // move-based chunks (`fill_from_iter` / `read_chunk().into_iter()`). Owned buffers:
        // ringwire `send_batch` (VecDeque) / `recv_batch` (Vec), any `T`, against rtrb's
        // `Copy`-only slice copies (`push_partial_slice` / `pop_partial_slice`).
        measure(
            "throughput batched, iterators",
            "items/s",
            &mut [
                (NAMES[0], &mut || {
                    throughput_ringwire_iter(cores, cap, items, batch)
                }),
                (NAMES[1], &mut || {
                    throughput_rtrb_chunk_iter(cores, cap, items, batch)
                }),
            ],
        );
        measure(
            "throughput batched, buffers",
            "items/s",
            &mut [
                (NAMES[0], &mut || {
                    throughput_ringwire_batched(cores, cap, items, batch)
                }),
                (NAMES[1], &mut || {
                    throughput_rtrb_batched(cores, cap, items, batch)
                }),
            ],
        );
    }
    if wants("round trip") {
        let n = args.round_trips;
        measure(
            "round trip (ping-pong)",
            "ns",
            &mut [
                (NAMES[0], &mut || ping_pong::<Ringwire>(cores, cap, n)),
                (NAMES[1], &mut || ping_pong::<Rtrb>(cores, cap, n)),
                (NAMES[2], &mut || ping_pong::<ArrayQueue>(cores, cap, n)),
                (NAMES[3], &mut || ping_pong::<TokioMpsc>(cores, cap, n)),
            ],
        );
    }
    if wants("push+pop same thread") {
        measure(
            "push+pop same thread",
            "ns/pair",
            &mut [
                (NAMES[0], &mut || {
                    same_thread_pair::<Ringwire>(cores, cap, items)
                }),
                (NAMES[1], &mut || {
                    same_thread_pair::<Rtrb>(cores, cap, items)
                }),
                (NAMES[2], &mut || {
                    same_thread_pair::<ArrayQueue>(cores, cap, items)
                }),
                (NAMES[3], &mut || {
                    same_thread_pair::<TokioMpsc>(cores, cap, items)
                }),
            ],
        );
    }
    if wants("try_send on full ring") {
        measure(
            "try_send on full ring",
            "ns/call",
            &mut [
                (NAMES[0], &mut || {
                    full_ring_try_send::<Ringwire>(cores, cap, items)
                }),
                (NAMES[1], &mut || {
                    full_ring_try_send::<Rtrb>(cores, cap, items)
                }),
                (NAMES[2], &mut || {
                    full_ring_try_send::<ArrayQueue>(cores, cap, items)
                }),
                (NAMES[3], &mut || {
                    full_ring_try_send::<TokioMpsc>(cores, cap, items)
                }),
            ],
        );
    }
    if wants("wake") {
        measure_wakes(cores, args.wakes, runs, &mut rows);
    }

    let report = RingsReport {
        nproc,
        cpu: cpu_model(),
        cores: [cores.producer.id, cores.consumer.id],
        capacity: cap,
        batch,
        items,
        processes: if across { args.processes } else { 1 },
        process_runs: args.process_runs.max(1),
        rows,
        loadavg_before,
        loadavg_after: loadavg::now(),
        steal_pct: steal::percent(ticks_before, steal::now()),
    };
    if let Some(path) = &args.child_json {
        std::fs::write(path, serde_json::to_string(&report)?)?;
        return Ok(report);
    }
    println!("{}", table(&report));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    if let Some(path) = &args.markdown {
        let machine = match &args.machine {
            Some(m) => std::fs::read_to_string(m)?,
            None => String::new(),
        };
        std::fs::write(path, page(&report, &machine, &rings_command(&args)))?;
    }
    Ok(report)
}

/// Ringwire's and rtrb's rows for the [`HEAD_TO_HEAD`] sections that `wants`, each from
/// `--processes` fresh processes of this binary (`rings --child-json`, `--process-runs` runs
/// of each ring, the first ring alternating between processes): the value is the median of
/// the processes' medians, `runs` holds every process's median.
fn across_processes(
    args: &RingsArgs,
    cores: &Cores,
    wants: &dyn Fn(&str) -> bool,
) -> Result<Vec<Row>, RingsError> {
    let sections: Vec<(&'static str, &'static str)> = HEAD_TO_HEAD
        .into_iter()
        .filter(|(section, _)| wants(section))
        .collect();
    let rings: Vec<&'static str> = [NAMES[0], NAMES[1]]
        .into_iter()
        .filter(|r| args.rings.is_empty() || args.rings.iter().any(|x| x == r))
        .collect();
    if sections.is_empty() || rings.is_empty() {
        return Ok(Vec::new());
    }
    let exe = std::env::current_exe()?;
    // medians[section][ring]: one figure per process.
    let mut medians = vec![vec![Vec::new(); rings.len()]; sections.len()];
    for index in 0..args.processes {
        let path = std::env::temp_dir().join(format!(
            "ringwire-rings-{}-{index}.json",
            std::process::id()
        ));
        let mut cmd = std::process::Command::new(&exe);
        cmd.arg("rings")
            .arg(format!("--items={}", args.items))
            .arg(format!(
                "--cores={},{}",
                cores.producer.id, cores.consumer.id
            ))
            .arg(format!("--capacity={}", args.capacity))
            .arg(format!("--batch={}", args.batch))
            .arg(format!("--round-trips={}", args.round_trips))
            .arg(format!("--runs={}", args.process_runs.max(1)))
            .arg(format!("--rings={}", rings.join(",")))
            .arg("--processes=1")
            .arg("--child-json")
            .arg(&path)
            .stdout(std::process::Stdio::null());
        if let Some(only) = &args.only {
            cmd.arg(format!("--only={only}"));
        }
        if index % 2 == 1 {
            cmd.arg("--reverse-order");
        }
        eprintln!("rings: process {} of {}", index + 1, args.processes);
        let status = cmd.status()?;
        let child_failed = |reason: String| RingsError::Child { index, reason };
        if !status.success() {
            return Err(child_failed(format!("exited with {status}")));
        }
        let text = std::fs::read_to_string(&path)?;
        std::fs::remove_file(&path)?;
        #[derive(serde::Deserialize)]
        struct ChildReport {
            rows: Vec<ChildRow>,
        }
        let report: ChildReport = serde_json::from_str(&text)?;
        for (s, (section, _)) in sections.iter().enumerate() {
            for (r, ring) in rings.iter().enumerate() {
                let row = report
                    .rows
                    .iter()
                    .find(|row| row.section == *section && row.ring == *ring)
                    .ok_or_else(|| child_failed(format!("no {ring} figure for {section}")))?;
                medians[s][r].push(row.value);
            }
        }
    }
    let mut rows = Vec::new();
    for ((section, unit), per_ring) in sections.into_iter().zip(medians) {
        for (ring, runs) in rings.iter().zip(per_ring) {
            rows.push(Row::from_runs(section, ring, unit, runs, args.processes));
        }
    }
    Ok(rows)
}

/// The spread table's heading (the page puts the caption under it).
const SPREAD: &str = "Spread (median, min, max) over one process's runs, or over fresh processes' \
                      medians:";

/// The report as a Markdown table: one line per section, one column per ring, then
/// ringwire / other ratios.
pub fn table(report: &RingsReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "nproc {}, {}, producer core {}, consumer core {}, capacity {}, batch {}, items {}",
        report.nproc,
        report.cpu,
        report.cores[0],
        report.cores[1],
        report.capacity,
        report.batch,
        report.items
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| measure | unit | ringwire | rtrb | ArrayQueue | tokio mpsc | rw/rtrb | rw/ArrayQueue | rw/tokio |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut sections: Vec<&str> = Vec::new();
    for row in &report.rows {
        if !sections.contains(&row.section) {
            sections.push(row.section);
        }
    }
    let fmt = |v: Option<f64>| match v {
        Some(v) if v >= 1e6 => format!("{:.1}M", v / 1e6),
        Some(v) if v.is_finite() => format!("{v:.1}"),
        _ => "-".to_owned(),
    };
    for section in sections {
        let get = |ring: &str| {
            report
                .rows
                .iter()
                .find(|r| r.section == section && r.ring == ring)
                .map(|r| r.value)
        };
        if section.starts_with("wake") {
            let wakes: Vec<&Row> = report
                .rows
                .iter()
                .filter(|r| r.section == section)
                .collect();
            let names: Vec<&str> = wakes.iter().map(|r| r.ring).collect();
            let values: Vec<String> = wakes.iter().map(|r| fmt(Some(r.value))).collect();
            let _ = writeln!(
                out,
                "| {section}: {} | ns | {} | | | | | | |",
                names.join(" / "),
                values.join(" / ")
            );
            continue;
        }
        let unit = report
            .rows
            .iter()
            .find(|r| r.section == section)
            .map_or("", |r| r.unit);
        let ours = get(NAMES[0]);
        let ratio = |other: Option<f64>| match (ours, other) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
            _ => "-".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {section} | {unit} | {} | {} | {} | {} | {} | {} | {} |",
            fmt(ours),
            fmt(get(NAMES[1])),
            fmt(get(NAMES[2])),
            fmt(get(NAMES[3])),
            ratio(get(NAMES[1])),
            ratio(get(NAMES[2])),
            ratio(get(NAMES[3])),
        );
    }
    if report.processes > 1 {
        let _ = writeln!(
            out,
            "\nringwire and rtrb where they meet (single items, iterators, buffers, round trip, \
             `try_send` on a full ring): median of {} fresh processes' medians ({} runs of each \
             ring per process); everything else: median of this process's runs.",
            report.processes, report.process_runs
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "{SPREAD}");
    let _ = writeln!(out);
    let _ = writeln!(out, "| measure | ring | unit | median | min | max | over |");
    let _ = writeln!(out, "|---|---|---|---:|---:|---:|---|");
    for row in &report.rows {
        let min = row.runs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = row.runs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let over = if row.processes > 1 {
            format!("{} processes' medians", row.runs.len())
        } else if row.runs.len() == 1 {
            "1 run".to_owned()
        } else {
            format!("{} runs", row.runs.len())
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {over} |",
            row.section,
            row.ring,
            row.unit,
            fmt(Some(row.value)),
            fmt(Some(min)),
            fmt(Some(max))
        );
    }
    out
}

/// The command line that reproduces this run's figures.
fn rings_command(args: &RingsArgs) -> String {
    format!(
        "target/release/ringwire-bench rings --items {} --cores {} --capacity {} --batch {} \
         --round-trips {} --wakes {} --runs {} --processes {} --process-runs {}{}",
        args.items,
        args.cores
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        args.capacity,
        args.batch,
        args.round_trips,
        args.wakes,
        args.runs,
        args.processes,
        args.process_runs,
        if args.rings.is_empty() {
            String::new()
        } else {
            format!(" --rings {}", args.rings.join(","))
        }
    )
}

/// `docs/BENCHMARKS-rings.md`: whether the run can be trusted, the command
/// and machine, and the tables, each headed by its [`Caption`]. `machine`
/// is a `machine.txt` (may be empty: commit and kernel then read unknown).
#[must_use]
pub fn page(report: &RingsReport, machine: &str, command: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Benchmarks: cross-core rings and wake paths (`ringwire-bench rings`)\n"
    );
    let _ = writeln!(
        md,
        "Generated by `scripts/bench.sh --rings` (`ringwire-bench rings --markdown`); do not edit \
         by hand. Linked from `docs/BENCHMARKS.md`. Code: `bench/src/rings.rs`.\n"
    );
    let verdict = validity::machine(report.loadavg_before);
    let _ = writeln!(md, "## Can these figures be trusted?\n");
    let _ = writeln!(md, "- **Machine: {verdict}.**");
    if !matches!(verdict, Machine::Quiet(_)) {
        let _ = writeln!(
            md,
            "  Busy-polling producer and consumer threads are preempted whenever another \
             process gets their core; re-run on a quiet machine before quoting."
        );
    }
    let _ = crate::report::steal_bullet(&mut md, report.steal_pct, 0, false);
    let _ = writeln!(
        md,
        "- No load generator here: the producer and consumer are the measurement, so there is \
         no client lateness to judge; the spread table shows how much single runs disagreed.\n"
    );
    // Only the lines that describe the machine and the run: bench.sh's
    // machine.txt also logs the server phases, which are not this page's.
    let _ = writeln!(md, "## Command and machine\n\n```text\n{command}");
    for line in machine.lines().filter(|l| {
        ["date:", "git:", "nproc:", "cpu:", "kernel:", "command:"]
            .iter()
            .any(|k| l.starts_with(k))
    }) {
        let _ = writeln!(md, "{line}");
    }
    let _ = writeln!(md, "```\n");
    let caption = Caption {
        header: RunHeader::parse(machine),
        start: report.loadavg_before,
        end: report.loadavg_after,
        lateness: "client lateness: not applicable (no load generator)".to_string(),
        steal_pct: report.steal_pct,
    };
    let _ = writeln!(md, "## Results\n\n{caption}\n");
    // The table's own setting line, then the tables; the spread table gets
    // the caption again, so that every table states it.
    let text = table(report);
    match text.split_once(SPREAD) {
        Some((main, rest)) => {
            let _ = write!(md, "{main}{SPREAD}\n\n{caption}{rest}");
        }
        None => md.push_str(&text),
    }
    let _ = writeln!(md, "\n## How to read this\n");
    for line in [
        "- Ratios are ringwire / other: for items/s above 1 means ringwire moves more; for ns \
         below 1 means ringwire is cheaper.",
        "- Every figure is the median of the runs; runs interleave the implementations (run 1 \
         of each, then run 2 of each, ...) in an order reversed every round, after one untimed \
         warm-up run of each, so load drifts over all of them alike and none always runs first.",
        "- Ringwire's and rtrb's figures in the sections where they meet (single items, \
         iterators, buffers, round trip, `try_send` on a full ring) come from `--processes` \
         fresh processes, each running both rings `--process-runs` times as above (which ring \
         starts alternates between processes): the figure is the median of the processes' \
         medians, and the spread table gives the lowest and highest process. Single-item \
         throughput settles per process (where the heap and the pages put the ring; \
         docs/DECISIONS.md D78), so one process's median can land anywhere in that spread; \
         the ratio to quote is this one.",
        "- Wake latency sleeps for real (`poll(2)` on an eventfd, or `io_uring_enter` waiting \
         for an eventfd poll, an `IORING_OP_MSG_RING` or an `IORING_OP_FUTEX_WAIT` \
         completion): it includes the scheduler's wake-up, which a busy machine stretches \
         most. CPU per wake is thread CPU time: the waker's inside `notify`, the sleeper's per \
         wake.",
    ] {
        let _ = writeln!(md, "{line}");
    }
    md
}

/// [`run`] for the command line: the table is printed (and written with `--json`); the report
/// itself is not needed.
pub fn run_cli(args: RingsArgs) -> Result<(), RingsError> {
    run(args).map(drop)
}
