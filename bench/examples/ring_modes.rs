//! Diagnostic: which regime a single-item cross-core run of a ring settles in.
//!
//! `cargo run --release -p ringwire-bench --example ring_modes -- [runs] [items] [ring]`
//!
//! Environment: `CW` / `PW` (0 to 3, one of them 0) add that many dependent multiplies per
//! item to the consumer / producer, to change the ends' relative speed; `PAD` allocates that
//! many bytes before any ring, to move the rings' heap addresses; `KEEP=1` leaks every run's
//! ring, so that each run gets a ring at a fresh address; `POOL=k` allocates `k` rings of each
//! kind up front, each at its own address, and runs every one of them each round (an address-
//! decided rate shows as one ring always faster than its neighbours in the same process);
//! `SEG=1` takes the rate of the quickest tenth of the consumer's 8192-item segments and
//! counts every run (a busy machine's stand-in for clean runs).
//!
//! For ringwire and rtrb alternately (order reversed every round), one producer pinned to
//! core 0 and one consumer pinned to core 1 move `items` `u64`s one at a time, busy-polling as
//! `ringwire-bench rings` does. Besides the rate, each run counts how often the producer's
//! push found the ring full and how often the consumer's pop found it empty (per item): a run
//! whose consumer keeps finding the ring empty runs right behind the producer, a run whose
//! producer keeps finding it full runs with the ring full and the consumer far behind.
//!
//! On a busy machine most runs are cut up by the scheduler. A run counts only if it is
//! *clean*: both threads start together (they spin, not sleep, until both are there) and
//! each spends at least 98% of the run's wall time on its CPU (thread CPU time against wall
//! time), with no involuntary context switch; the tool keeps trying until it has `runs` clean
//! runs of each ring (or 200 tries of each), and reports how many tries it took.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Instant;

use ringwire_bench::sys::cpu_time::{current_thread_ns, involuntary_switches};
use ringwire_shard::ring as rw;

struct Counts {
    rate: f64,
    fulls: u64,
    empties: u64,
    clean: bool,
}

/// Items per timed segment of the consumer (see `SEG`).
const SEG: u64 = 8192;

/// Spins until both threads arrive, so that they start together when both are on a CPU.
fn arrive(count: &AtomicUsize) {
    count.fetch_add(1, Ordering::AcqRel);
    while count.load(Ordering::Acquire) < 2 {
        std::hint::spin_loop();
    }
}

/// (CPU ns, involuntary switches) of the calling thread.
fn usage() -> (u64, u64) {
    (
        current_thread_ns(),
        involuntary_switches().unwrap_or(u64::MAX),
    )
}

/// `name`: a count from the environment (0 if unset).
fn knob(name: &str) -> usize {
    std::env::var(name).map_or(0, |v| v.parse().expect(name))
}

/// Runs with `CW` dependent multiplies per item added to the consumer and `PW` to the
/// producer (env `CW`, `PW`, 0 to 3), to change the two ends' relative speed.
macro_rules! dispatch {
    ($items:expr, $pair:expr, $push:expr, $pop:expr) => {
        match (knob("CW"), knob("PW")) {
            (0, 0) => run::<0, 0, _, _>($items, $pair, $push, $pop),
            (1, 0) => run::<1, 0, _, _>($items, $pair, $push, $pop),
            (2, 0) => run::<2, 0, _, _>($items, $pair, $push, $pop),
            (3, 0) => run::<3, 0, _, _>($items, $pair, $push, $pop),
            (0, 1) => run::<0, 1, _, _>($items, $pair, $push, $pop),
            (0, 2) => run::<0, 2, _, _>($items, $pair, $push, $pop),
            (0, 3) => run::<0, 3, _, _>($items, $pair, $push, $pop),
            other => panic!("CW, PW {other:?}: one of them 0, the other at most 3"),
        }
    };
}

fn pin(core: usize) {
    assert!(
        core_affinity::set_for_current(core_affinity::CoreId { id: core }),
        "could not pin to core {core}"
    );
}

fn run<const CW: usize, const PW: usize, Tx: Send, Rx: Send>(
    items: u64,
    (tx, rx): &mut (Tx, Rx),
    push: impl Fn(&mut Tx, u64) -> Result<(), u64> + Send + Sync,
    pop: impl Fn(&mut Rx) -> Option<u64> + Send + Sync,
) -> Counts {
    let barrier = AtomicUsize::new(0);
    thread::scope(|s| {
        let c = s.spawn(|| {
            pin(1);
            arrive(&barrier);
            let u0 = usage();
            let (mut n, mut sum, mut empties) = (0, 0u64, 0u64);
            let mut acc = 1u64;
            let mut marks = Vec::with_capacity((items / SEG + 2) as usize);
            marks.push(Instant::now());
            while n < items {
                if let Some(v) = pop(rx) {
                    sum = sum.wrapping_add(v);
                    for _ in 0..CW {
                        acc = acc.wrapping_mul(v | 1);
                    }
                    n += 1;
                    if n % SEG == 0 {
                        marks.push(Instant::now());
                    }
                } else {
                    empties += 1;
                    std::hint::spin_loop();
                }
            }
            let end = Instant::now();
            let u1 = usage();
            assert_eq!(sum, items * (items - 1) / 2);
            std::hint::black_box(acc);
            (end, empties, u1.0 - u0.0, u1.1 - u0.1, marks)
        });
        let p = s.spawn(|| {
            pin(0);
            arrive(&barrier);
            let u0 = usage();
            let start = Instant::now();
            let mut fulls = 0u64;
            let mut acc = 1u64;
            for i in 0..items {
                for _ in 0..PW {
                    acc = acc.wrapping_mul(i | 1);
                }
                let mut item = i;
                while let Err(back) = push(tx, item) {
                    item = back;
                    fulls += 1;
                    std::hint::spin_loop();
                }
            }
            std::hint::black_box(acc);
            let u1 = usage();
            (start, fulls, u1.0 - u0.0, u1.1 - u0.1)
        });
        let (start, fulls, p_cpu, p_sw) = p.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        let (end, empties, c_cpu, c_sw, marks) =
            c.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        let wall = end.duration_since(start);
        let wall_ns = wall.as_nanos() as f64;
        // `SEG=1` in the environment: the rate of the quickest tenth of the consumer's
        // segments of `SEG` items, every run counted, for a machine too busy for clean runs.
        if knob("SEG") == 1 {
            let mut segs: Vec<f64> = marks
                .windows(2)
                .map(|w| (w[1] - w[0]).as_secs_f64())
                .collect();
            segs.sort_by(f64::total_cmp);
            return Counts {
                rate: SEG as f64 / segs.get(segs.len() / 10).copied().unwrap_or(f64::INFINITY),
                fulls,
                empties,
                clean: segs.len() >= 20,
            };
        }
        Counts {
            rate: items as f64 / wall.as_secs_f64(),
            fulls,
            empties,
            // The producer stops first: hold it to the time it ran, the consumer to the whole.
            clean: p_sw == 0 && c_sw == 0 && c_cpu as f64 >= 0.98 * wall_ns && p_cpu > 0,
        }
    })
}

/// `KEEP=1`: leak every run's ring, so that each run gets a fresh heap address.
fn keep<P>(pair: P) {
    if knob("KEEP") == 1 {
        std::mem::forget(pair);
    }
}

fn ringwire(items: u64) -> Counts {
    let mut pair = rw::channel::<u64>(1024);
    let c = dispatch!(
        items,
        &mut pair,
        |tx: &mut rw::Producer<u64>, v| tx.try_send(v).map_err(rw::TrySendError::into_inner),
        |rx: &mut rw::Consumer<u64>| rx.try_recv().ok()
    );
    keep(pair);
    c
}

fn rtrb(items: u64) -> Counts {
    let mut pair = rtrb::RingBuffer::<u64>::new(1024);
    if let Ok(mut chunk) = pair.0.write_chunk_uninit(1) {
        let at = chunk.as_mut_slices().0.as_ptr() as usize;
        eprintln!(
            "rtrb slots at {at:#x} (mod 64: {}, mod 4096: {})",
            at % 64,
            at % 4096
        );
    }
    let c = dispatch!(
        items,
        &mut pair,
        |tx: &mut rtrb::Producer<u64>, v| tx.push(v).map_err(|rtrb::PushError::Full(v)| v),
        |rx: &mut rtrb::Consumer<u64>| rx.pop().ok()
    );
    keep(pair);
    c
}

/// A ring's name and its one-run function.
type Ring = (&'static str, fn(u64) -> Counts);

/// `POOL=k`: `k` rings of each kind allocated up front (a padding allocation between them,
/// so each sits at its own address), every round runs each once; prints each ring's median.
/// Tells an address-decided mode (the same ring always fast or always slow, side by side with
/// the others in one process) from one decided by the process or the time.
fn pool(k: usize, runs: usize, items: u64) {
    let mut rws = Vec::new();
    let mut rts = Vec::new();
    let mut pads = Vec::new();
    for i in 0..k {
        rws.push(rw::channel::<u64>(1024));
        pads.push(vec![1u8; 200 + 48 * i]);
        let mut pair = rtrb::RingBuffer::<u64>::new(1024);
        if let Ok(mut chunk) = pair.0.write_chunk_uninit(1) {
            let at = chunk.as_mut_slices().0.as_ptr() as usize;
            eprintln!(
                "rtrb[{i}] slots at {at:#x} (mod 64: {}, mod 4096: {})",
                at % 64,
                at % 4096
            );
        }
        rts.push(pair);
        pads.push(vec![1u8; 3000 + 80 * i]);
    }
    std::hint::black_box(&pads);
    let mut rates = vec![[Vec::new(), Vec::new()]; k];
    // A clean run's rate, kept while the ring has fewer than `runs`.
    let record = |kept: &mut Vec<f64>, i: usize, name: &str, c: &Counts| {
        if c.clean && kept.len() < runs {
            kept.push(c.rate);
            eprintln!(
                "ring {i} {name} {:.0}M full/item {:.4} empty/item {:.4}",
                c.rate / 1e6,
                c.fulls as f64 / items as f64,
                c.empties as f64 / items as f64
            );
        }
    };
    let mut tries = 0;
    while rates.iter().any(|r| r[0].len() < runs || r[1].len() < runs) && tries < 200 * k {
        tries += 1;
        for i in 0..k {
            let c = dispatch!(
                items,
                &mut rws[i],
                |tx: &mut rw::Producer<u64>, v| tx
                    .try_send(v)
                    .map_err(rw::TrySendError::into_inner),
                |rx: &mut rw::Consumer<u64>| rx.try_recv().ok()
            );
            record(&mut rates[i][0], i, "ringwire", &c);
            let c = dispatch!(
                items,
                &mut rts[i],
                |tx: &mut rtrb::Producer<u64>, v| tx.push(v).map_err(|rtrb::PushError::Full(v)| v),
                |rx: &mut rtrb::Consumer<u64>| rx.pop().ok()
            );
            record(&mut rates[i][1], i, "rtrb", &c);
        }
    }
    for (i, r) in rates.iter_mut().enumerate() {
        let show = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v.iter()
                .map(|x| format!("{:.0}", x / 1e6))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let (a, b) = r.split_at_mut(1);
        println!(
            "ring {i}: ringwire [{}]  rtrb [{}]",
            show(&mut a[0]),
            show(&mut b[0])
        );
    }
}

fn main() {
    if knob("POOL") > 0 {
        let mut args = std::env::args().skip(1);
        let runs: usize = args.next().map_or(5, |a| a.parse().expect("runs"));
        let items: u64 = args.next().map_or(200_000, |a| a.parse().expect("items"));
        pool(knob("POOL"), runs, items);
        return;
    }
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().map_or(9, |a| a.parse().expect("runs"));
    let items: u64 = args.next().map_or(1_000_000, |a| a.parse().expect("items"));
    let only = args.next();
    // `PAD`: bytes allocated (and kept) before any ring, to move the rings' heap addresses.
    let pad = vec![1u8; knob("PAD")];
    std::hint::black_box(&pad);
    let rings: [Ring; 2] = [("ringwire", ringwire), ("rtrb", rtrb)];
    // Warm-up.
    for (_, f) in rings {
        f(items / 10);
    }
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut tries = [0usize; 2];
    let mut round = 0;
    while (0..2).any(|i| rates[i].len() < runs && tries[i] < 200) {
        for k in 0..2 {
            let i = if round % 2 == 0 { k } else { 1 - k };
            let (name, f) = rings[i];
            if only.as_deref().is_some_and(|o| o != name) || rates[i].len() >= runs {
                continue;
            }
            tries[i] += 1;
            let c = f(items);
            if !c.clean {
                continue;
            }
            rates[i].push(c.rate);
            println!(
                "{name:9} {:7.1}M items/s  full/item {:.4}  empty/item {:.4}",
                c.rate / 1e6,
                c.fulls as f64 / items as f64,
                c.empties as f64 / items as f64
            );
        }
        round += 1;
    }
    for (i, (name, _)) in rings.iter().enumerate() {
        let v = &mut rates[i];
        if v.is_empty() {
            continue;
        }
        v.sort_by(f64::total_cmp);
        println!(
            "{name}: median {:.1}M items/s of {} clean runs in {} tries",
            v[v.len() / 2] / 1e6,
            v.len(),
            tries[i]
        );
    }
}
