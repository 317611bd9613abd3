//! Loom models of the ring and of the park / wake protocol, at capacity 2.
//!
//! Run with `scripts/loom.sh`, which is:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p ringwire-shard --release --test ring_loom
//! ```
//!
//! No model spins: every thread makes a bounded number of attempts, and a consumer that has
//! nothing to do parks with `loom::thread::park`, so a lost wake-up shows up as a loom
//! deadlock. Checks about what was received happen after the joins.
#![cfg(loom)]
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::io;
use std::sync::Arc as StdArc;
use std::sync::atomic::{AtomicUsize, Ordering};

use loom::sync::Arc;
use loom::thread;
use ringwire_shard::ring::{
    ParkDecision, Parker, TryRecvError, TrySendError, Wake, WakingProducer, channel,
    channel_publishing_every,
};

/// Counts its drops in a plain std atomic: loom runs one model thread at a time, and the
/// counts are only read after the joins.
struct Item {
    value: usize,
    drops: StdArc<Vec<AtomicUsize>>,
}

impl Drop for Item {
    fn drop(&mut self) {
        self.drops[self.value].fetch_add(1, Ordering::Relaxed);
    }
}

fn items(n: usize) -> (StdArc<Vec<AtomicUsize>>, Vec<Item>) {
    let drops = StdArc::new((0..n).map(|_| AtomicUsize::new(0)).collect::<Vec<_>>());
    let items = (0..n)
        .map(|value| Item {
            value,
            drops: StdArc::clone(&drops),
        })
        .collect();
    (drops, items)
}

fn assert_each_dropped_once(drops: &[AtomicUsize]) {
    for (i, d) in drops.iter().enumerate() {
        assert_eq!(d.load(Ordering::Relaxed), 1, "item {i}");
    }
}

/// Producer pushes 3 items into a ring of 2 (one attempt each), the consumer makes 3
/// attempts; then the main thread drains. Order kept, nothing lost, duplicated or
/// double-dropped.
#[test]
fn push_pop_capacity_2() {
    loom::model(|| {
        let (drops, all) = items(3);
        let (mut tx, mut rx) = channel::<Item>(2);
        let producer = thread::spawn(move || {
            let mut sent = Vec::new();
            for item in all {
                let value = item.value;
                match tx.try_send(item) {
                    Ok(()) => sent.push(value),
                    Err(TrySendError::Full(_)) => {}
                    Err(TrySendError::Closed(_)) => panic!("consumer is alive"),
                }
            }
            (tx, sent)
        });
        let consumer = thread::spawn(move || {
            let mut got = Vec::new();
            for _ in 0..3 {
                match rx.try_recv() {
                    Ok(item) => got.push(item.value),
                    Err(TryRecvError::Empty) => {}
                    Err(TryRecvError::Closed) => panic!("producer is alive"),
                }
            }
            (rx, got)
        });
        let (tx, sent) = producer.join().unwrap();
        let (mut rx, mut got) = consumer.join().unwrap();
        while let Ok(item) = rx.try_recv() {
            got.push(item.value);
        }
        assert!(sent.len() >= 2, "a ring of 2 takes at least 2 of 3");
        assert_eq!(got, sent);
        drop((tx, rx));
        assert_each_dropped_once(&drops);
    });
}

/// Lazy publication: a consumer that stores its position only every 2 items (and on
/// `Empty`) against a producer making 4 single attempts and one batch. The producer may
/// see a slot late, never early: order kept, nothing lost or duplicated, each item dropped
/// once, including one taken but unpublished when the consumer is dropped.
#[test]
fn lazy_publication_capacity_2() {
    loom::model(|| {
        let (drops, all) = items(5);
        let (mut tx, mut rx) = channel_publishing_every::<Item>(2, 2);
        let producer = thread::spawn(move || {
            let mut sent = Vec::new();
            let mut all = all.into_iter();
            for item in all.by_ref().take(4) {
                let value = item.value;
                match tx.try_send(item) {
                    Ok(()) => sent.push(value),
                    Err(TrySendError::Full(_)) => {}
                    Err(TrySendError::Closed(_)) => panic!("consumer is alive"),
                }
            }
            let mut last: VecDeque<Item> = all.collect();
            if tx.send_batch(&mut last).unwrap() == 1 {
                sent.push(4);
            }
            (tx, sent)
        });
        let consumer = thread::spawn(move || {
            let mut got = Vec::new();
            for _ in 0..3 {
                match rx.try_recv() {
                    Ok(item) => got.push(item.value),
                    Err(TryRecvError::Empty) => {}
                    Err(TryRecvError::Closed) => panic!("producer is alive"),
                }
            }
            (rx, got)
        });
        let (tx, sent) = producer.join().unwrap();
        let (mut rx, mut got) = consumer.join().unwrap();
        // One more item taken, maybe left unpublished, then both ends go.
        if let Ok(item) = rx.try_recv() {
            got.push(item.value);
        }
        drop((rx, tx));
        assert!(sent.len() >= 2, "a ring of 2 takes at least 2");
        assert_eq!(got, sent[..got.len()]);
        assert_each_dropped_once(&drops);
    });
}

/// Batch push of 3 into a ring of 2, twice; batch pops concurrently.
#[test]
fn batch_push_pop_capacity_2() {
    loom::model(|| {
        let (drops, all) = items(3);
        let (mut tx, mut rx) = channel::<Item>(2);
        let producer = thread::spawn(move || {
            let mut pending: VecDeque<Item> = all.into();
            let mut sent = 0;
            for _ in 0..2 {
                sent += tx.send_batch(&mut pending).unwrap();
            }
            assert_eq!(sent + pending.len(), 3);
            (tx, sent)
        });
        let consumer = thread::spawn(move || {
            let mut got = Vec::new();
            for _ in 0..2 {
                let _ = rx.recv_batch(&mut got, 2);
            }
            (rx, got.iter().map(|i| i.value).collect::<Vec<_>>())
        });
        let (tx, sent) = producer.join().unwrap();
        let (mut rx, mut got) = consumer.join().unwrap();
        let mut rest = Vec::new();
        let _ = rx.recv_batch(&mut rest, 3);
        got.extend(rest.iter().map(|i| i.value));
        assert_eq!(got, (0..sent).collect::<Vec<_>>());
        drop((tx, rx, rest));
        assert_each_dropped_once(&drops);
    });
}

/// The iterator batch paths: `send_iter` of 3 into a ring of 2, twice; `recv_with`
/// concurrently.
#[test]
fn iter_push_pop_capacity_2() {
    loom::model(|| {
        let (drops, all) = items(3);
        let (mut tx, mut rx) = channel::<Item>(2);
        let producer = thread::spawn(move || {
            let mut source = all.into_iter();
            let mut sent = 0;
            for _ in 0..2 {
                sent += tx.send_iter(&mut source).unwrap();
            }
            assert_eq!(sent + source.len(), 3);
            (tx, sent)
        });
        let consumer = thread::spawn(move || {
            let mut got = Vec::new();
            for _ in 0..2 {
                let _ = rx.recv_with(2, |item| got.push(item.value));
            }
            (rx, got)
        });
        let (tx, sent) = producer.join().unwrap();
        let (mut rx, mut got) = consumer.join().unwrap();
        let _ = rx.recv_with(3, |item| got.push(item.value));
        assert_eq!(got, (0..sent).collect::<Vec<_>>());
        drop((tx, rx));
        assert_each_dropped_once(&drops);
    });
}

/// The producer sends 2 items and drops; the consumer sees both, in order, before Closed,
/// and never Closed early. Items it did not take are dropped exactly once with the ring.
#[test]
fn close_by_producer_capacity_2() {
    loom::model(|| {
        let (drops, all) = items(2);
        let (mut tx, mut rx) = channel::<Item>(2);
        let producer = thread::spawn(move || {
            for item in all {
                assert!(tx.try_send(item).is_ok());
            }
        });
        let consumer = thread::spawn(move || {
            let mut got = Vec::new();
            for _ in 0..3 {
                match rx.try_recv() {
                    Ok(item) => got.push(item.value),
                    Err(TryRecvError::Empty) => {}
                    Err(TryRecvError::Closed) => {
                        assert_eq!(got, [0, 1], "Closed before every item was received");
                        break;
                    }
                }
            }
            rx // dropped after the join: the producer must not see Closed
        });
        producer.join().unwrap();
        let rx = consumer.join().unwrap();
        drop(rx);
        assert_each_dropped_once(&drops);
    });
}

/// The consumer drops while the producer sends: each send either succeeds (the item is then
/// dropped with the ring) or hands the item back as Closed (never Full: capacity 2, 2 items).
#[test]
fn close_by_consumer_capacity_2() {
    loom::model(|| {
        let (drops, all) = items(2);
        let (mut tx, rx) = channel::<Item>(2);
        let producer = thread::spawn(move || {
            let mut closed = false;
            for item in all {
                match tx.try_send(item) {
                    Ok(()) => assert!(!closed, "Ok after Closed"),
                    Err(TrySendError::Closed(_)) => closed = true,
                    Err(TrySendError::Full(_)) => panic!("two items fit"),
                }
            }
        });
        let consumer = thread::spawn(move || drop(rx));
        producer.join().unwrap();
        consumer.join().unwrap();
        assert_each_dropped_once(&drops);
    });
}

/// A [`Wake`] that unparks a loom thread; `loom::thread::park` keeps an unpark token like the
/// eventfd counter does.
struct Unpark(thread::Thread);

impl Wake for Unpark {
    fn wake(&self) -> io::Result<()> {
        self.0.unpark();
        Ok(())
    }
}

/// The consumer loop of a shard: try_recv; if empty, park with a re-check; sleep. Returns
/// the values received before Closed.
fn consume(rx: &mut ringwire_shard::ring::Consumer<usize>, parker: &Parker) -> Vec<usize> {
    let mut got = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(v) => got.push(v),
            Err(TryRecvError::Closed) => return got,
            Err(TryRecvError::Empty) => {
                if parker.park(|| rx.has_work()) == ParkDecision::Sleep {
                    // A lost wake-up leaves this thread parked forever: loom reports deadlock.
                    thread::park();
                    parker.unparked();
                }
            }
        }
    }
}

/// No lost wake-up on a push: the consumer sleeps whenever it finds nothing and must still
/// get the item; the producer stays alive (its drop, which also wakes, comes after the join).
#[test]
fn park_wake_on_push() {
    loom::model(|| {
        let (tx, mut rx) = channel::<usize>(2);
        let parker = Arc::new(Parker::new());
        let consumer_parker = Arc::clone(&parker);
        let consumer = thread::spawn(move || {
            loop {
                match rx.try_recv() {
                    Ok(v) => return (v, rx),
                    Err(TryRecvError::Closed) => panic!("producer is alive"),
                    Err(TryRecvError::Empty) => {
                        if consumer_parker.park(|| rx.has_work()) == ParkDecision::Sleep {
                            thread::park();
                            consumer_parker.unparked();
                        }
                    }
                }
            }
        });
        let notifier = parker.notifier(Unpark(consumer.thread().clone()));
        let producer = thread::spawn(move || {
            let mut tx = WakingProducer::new(tx, notifier);
            tx.try_send(7).unwrap();
            tx.notify().unwrap();
            tx
        });
        let tx = producer.join().unwrap();
        let (v, rx) = consumer.join().unwrap();
        assert_eq!(v, 7);
        drop((tx, rx));
    });
}

/// No lost wake-up on the producer's drop: one item then drop; the consumer must get the
/// item and then Closed, sleeping whenever it finds nothing. Exhaustive exploration takes
/// about two minutes; a preemption bound of 5 keeps it to seconds
/// and still finds the lost wake-up when either fence is removed.
#[test]
fn park_wake_on_push_and_close() {
    bounded(5).check(|| {
        let (tx, mut rx) = channel::<usize>(2);
        let parker = Arc::new(Parker::new());
        let consumer_parker = Arc::clone(&parker);
        let consumer = thread::spawn(move || consume(&mut rx, &consumer_parker));
        let notifier = parker.notifier(Unpark(consumer.thread().clone()));
        let producer = thread::spawn(move || {
            let mut tx = WakingProducer::new(tx, notifier);
            tx.try_send(1).unwrap();
            tx.notify().unwrap();
            // Drop: close, then wake if parked.
        });
        producer.join().unwrap();
        assert_eq!(consume_result(consumer), [1]);
    });
}

/// A loom model builder exploring interleavings with at most `preemptions` preemptions.
fn bounded(preemptions: usize) -> loom::model::Builder {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(preemptions);
    builder
}

fn consume_result(consumer: thread::JoinHandle<Vec<usize>>) -> Vec<usize> {
    consumer.join().unwrap()
}

/// A running consumer is never woken, and a parked one exactly once: two producers (two
/// rings) each push one item and notify while the consumer may be parked. Preemption-bounded
/// to keep the four-thread model small.
#[test]
fn park_wake_two_producers() {
    bounded(3).check(|| {
        let (tx_a, mut rx_a) = channel::<usize>(2);
        let (tx_b, mut rx_b) = channel::<usize>(2);
        let parker = Arc::new(Parker::new());
        let consumer_parker = Arc::clone(&parker);
        let consumer = thread::spawn(move || {
            let mut got = 0;
            while got < 2 {
                let mut progressed = false;
                for rx in [&mut rx_a, &mut rx_b] {
                    if rx.try_recv().is_ok() {
                        got += 1;
                        progressed = true;
                    }
                }
                if !progressed
                    && consumer_parker.park(|| rx_a.has_work() || rx_b.has_work())
                        == ParkDecision::Sleep
                {
                    thread::park();
                    consumer_parker.unparked();
                }
            }
            (rx_a, rx_b)
        });
        let wake = || Unpark(consumer.thread().clone());
        let mut a = WakingProducer::new(tx_a, parker.notifier(wake()));
        let mut b = WakingProducer::new(tx_b, parker.notifier(wake()));
        let pa = thread::spawn(move || {
            a.try_send(1).unwrap();
            a.notify().unwrap();
            a
        });
        let pb = thread::spawn(move || {
            b.try_send(2).unwrap();
            b.notify().unwrap();
            b
        });
        let (a, b) = (pa.join().unwrap(), pb.join().unwrap());
        let rings = consumer.join().unwrap();
        assert!(a.wakes() + b.wakes() <= 2, "at most one wake per park");
        drop((a, b, rings));
    });
}

/// A model of the kernel's futex on the parked word. `wait` checks "still parked" and goes to
/// sleep under one lock (the kernel's hash-bucket lock), so a wake that comes after the check
/// finds the sleeper; `wake` wakes a sleeper if there is one and is otherwise lost: unlike an
/// eventfd count or a `thread::park` token, a futex keeps no wake for later. That is what
/// makes the futex park need its compare: a wake claimed before the wait is armed must turn
/// the word to `RUNNING`, so the wait does not sleep at all.
#[derive(Default)]
struct Futex {
    sleeping: loom::sync::Mutex<bool>,
    woken: loom::sync::Condvar,
}

impl Futex {
    /// `FUTEX_WAIT(word, PARKED)`.
    fn wait(&self, parker: &Parker) {
        let mut sleeping = self.sleeping.lock().unwrap();
        if !parker.is_parked() {
            return;
        }
        *sleeping = true;
        while *sleeping {
            sleeping = self.woken.wait(sleeping).unwrap();
        }
    }
}

/// The producer's side: `FUTEX_WAKE(word, 1)` on the consumer's futex.
struct FutexWake(Arc<Futex>);

impl Wake for FutexWake {
    fn wake(&self) -> io::Result<()> {
        let futex = &self.0;
        let mut sleeping = futex.sleeping.lock().unwrap();
        if *sleeping {
            *sleeping = false;
            futex.woken.notify_one();
        }
        Ok(())
    }
}

/// The futex park: the consumer sleeps on its parked word only while it still reads
/// `PARKED`, the producer's claim turns it `RUNNING` and then wakes the word. One item then
/// the producer's drop; no lost wake-up (loom reports a deadlock if the consumer sleeps for
/// ever), nothing lost.
#[test]
fn futex_park_on_push_and_close() {
    bounded(5).check(|| {
        let (tx, mut rx) = channel::<usize>(2);
        let parker = Arc::new(Parker::new());
        let futex = Arc::new(Futex::default());
        let consumer_parker = Arc::clone(&parker);
        let consumer_futex = Arc::clone(&futex);
        let consumer = thread::spawn(move || {
            let mut got = Vec::new();
            loop {
                match rx.try_recv() {
                    Ok(v) => got.push(v),
                    Err(TryRecvError::Closed) => return got,
                    Err(TryRecvError::Empty) => {
                        if consumer_parker.park(|| rx.has_work()) == ParkDecision::Sleep {
                            consumer_futex.wait(&consumer_parker);
                            consumer_parker.unparked();
                        }
                    }
                }
            }
        });
        let notifier = parker.notifier(FutexWake(futex));
        let producer = thread::spawn(move || {
            let mut tx = WakingProducer::new(tx, notifier);
            tx.try_send(1).unwrap();
            tx.notify().unwrap();
        });
        producer.join().unwrap();
        assert_eq!(consume_result(consumer), [1]);
    });
}
