//! The park / wake protocol with real threads sleeping on an eventfd, and a two-thread
//! stress of the ring. Nothing here spins or yields: every wait is a blocking `poll` on an
//! eventfd or a join.
#![cfg(not(loom))]
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

mod common;

use ringwire_shard::ring::{
    EventFd, ParkDecision, Parker, TryRecvError, TrySendError, WakingProducer, channel, futex,
    recv_blocking, recv_blocking_with,
};

/// Liveness guard only (not a speed bound): a lost wake-up would otherwise hang the test run.
const HANG: Duration = Duration::from_secs(60);

/// Waits (sleeping, not spinning) until `cond` holds; panics after [`HANG`].
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < HANG, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn parked_consumer_wakes_on_push() {
    let (tx, mut rx) = channel::<u64>(4);
    let parker = Parker::new();
    let efd = Arc::new(EventFd::new().unwrap());
    let mut tx = WakingProducer::new(tx, parker.notifier(Arc::clone(&efd)));
    let (done_tx, done_rx) = mpsc::channel();
    let consumer = thread::spawn(move || {
        let got = recv_blocking(&mut rx, &parker, &efd).unwrap();
        done_tx.send(got).unwrap();
        rx
    });
    wait_until("the consumer to park", || tx.notifier().consumer_parked());
    tx.try_send(42).unwrap();
    assert!(tx.notify().unwrap(), "a parked consumer must be woken");
    assert_eq!(tx.wakes(), 1);
    assert_eq!(done_rx.recv_timeout(HANG), Ok(Some(42)), "lost wake-up");
    consumer.join().unwrap();
    assert!(!tx.notify().unwrap(), "a running consumer is not woken");
    assert_eq!(tx.wakes(), 1);
}

#[test]
fn parked_consumer_wakes_on_producer_drop() {
    let (tx, mut rx) = channel::<u64>(4);
    let parker = Parker::new();
    let efd = Arc::new(EventFd::new().unwrap());
    let tx = WakingProducer::new(tx, parker.notifier(Arc::clone(&efd)));
    let (done_tx, done_rx) = mpsc::channel();
    let consumer = thread::spawn(move || {
        let got = recv_blocking(&mut rx, &parker, &efd).unwrap();
        let after = rx.try_recv();
        done_tx.send((got, after)).unwrap();
    });
    wait_until("the consumer to park", || tx.notifier().consumer_parked());
    drop(tx);
    assert_eq!(
        done_rx.recv_timeout(HANG),
        Ok((None, Err(TryRecvError::Closed))),
        "the producer's drop must wake a parked consumer"
    );
    consumer.join().unwrap();
}

#[test]
fn running_consumer_is_never_woken() {
    let (tx, mut rx) = channel::<u64>(64);
    let parker = Parker::new();
    let efd = Arc::new(EventFd::new().unwrap());
    let mut tx = WakingProducer::new(tx, parker.notifier(Arc::clone(&efd)));
    for i in 0..50 {
        tx.try_send(i).unwrap();
        assert!(!tx.notify().unwrap());
    }
    assert_eq!(tx.wakes(), 0);
    assert_eq!(efd.try_drain().unwrap(), 0, "no eventfd write happened");
    assert_eq!(rx.len(), 50);
    assert!(!parker.is_parked());
    // A cancelled park leaves the consumer running: still no wake.
    assert_eq!(
        parker.park(|| rx.has_work()),
        ParkDecision::Cancelled {
            wake_in_flight: false
        }
    );
    assert!(!tx.notify().unwrap());
    assert_eq!(efd.try_drain().unwrap(), 0);
    assert_eq!(rx.try_recv(), Ok(0));
}

#[test]
fn only_one_producer_claims_a_wake() {
    let parker = Parker::new();
    let efd = EventFd::new().unwrap();
    let mut a = parker.notifier(&efd);
    let mut b = parker.notifier(&efd);
    parker.prepare_park();
    assert!(a.consumer_parked() && b.consumer_parked());
    assert!(a.notify().unwrap());
    assert!(!b.notify().unwrap());
    assert_eq!((a.wakes(), b.wakes()), (1, 0));
    assert_eq!(efd.try_drain().unwrap(), 1, "exactly one eventfd write");
    assert!(parker.unparked(), "the wake was claimed by a producer");
    // A park cancelled after a producer claimed it reports the wake in flight.
    parker.prepare_park();
    assert!(a.notify().unwrap());
    assert!(parker.cancel_park());
    // A sleep that ends for another reason reports that no producer woke it.
    parker.prepare_park();
    assert!(!parker.unparked());
    assert!(!a.notify().unwrap());
}

#[test]
fn parked_consumer_does_not_run_while_its_neighbour_is_woken() {
    // A parked consumer sleeps in the kernel until a producer wakes it: it must not poll. Two
    // consumers park; the busy one is pushed to and woken at least ROUNDS times, for at least
    // IDLE_WINDOW (each delivery awaited): the idle window of the quiet one. Over that window
    // the quiet one must not run at all: still asleep in a system call, not one context switch
    // (any wake-up, even a spurious one, and any spinning would add some), and no wake was
    // sent to it. No assertion depends on the window's length; it only sets which faults show
    // (a consumer that polls every P shows for any P shorter than IDLE_WINDOW).
    const ROUNDS: u64 = 200;
    const IDLE_WINDOW: Duration = Duration::from_secs(1);
    let (quiet_tx, mut quiet_rx) = channel::<u64>(4);
    let quiet_parker = Parker::new();
    let quiet_efd = Arc::new(EventFd::new().unwrap());
    let mut quiet_tx = WakingProducer::new(quiet_tx, quiet_parker.notifier(Arc::clone(&quiet_efd)));
    let (quiet_out, quiet_got) = mpsc::channel();
    let (exit_tx, exit_rx) = mpsc::channel::<()>();
    let quiet = thread::spawn(move || {
        quiet_out.send(Err(common::os::current_tid())).unwrap();
        let got = recv_blocking(&mut quiet_rx, &quiet_parker, &quiet_efd).unwrap();
        quiet_out.send(Ok(got)).unwrap();
        // Stay alive until the main thread has read this thread's counters.
        let _ = exit_rx.recv();
    });
    let Ok(Err(quiet_tid)) = quiet_got.recv_timeout(HANG) else {
        panic!("the quiet consumer did not start");
    };

    let (busy_tx, mut busy_rx) = channel::<u64>(4);
    let busy_parker = Parker::new();
    let busy_efd = Arc::new(EventFd::new().unwrap());
    let mut busy_tx = WakingProducer::new(busy_tx, busy_parker.notifier(Arc::clone(&busy_efd)));
    let (busy_out, busy_got) = mpsc::channel();
    let busy = thread::spawn(move || {
        while let Some(v) = recv_blocking(&mut busy_rx, &busy_parker, &busy_efd).unwrap() {
            busy_out.send(v).unwrap();
        }
    });

    wait_until("the quiet consumer to park in a system call", || {
        quiet_tx.notifier().consumer_parked() && common::os::asleep_in_syscall(quiet_tid).is_some()
    });
    let switches = common::os::context_switches(quiet_tid);
    let start = Instant::now();
    let mut i = 0;
    while i < ROUNDS || start.elapsed() < IDLE_WINDOW {
        busy_tx.send_and_notify(i).unwrap();
        assert_eq!(busy_got.recv_timeout(HANG), Ok(i), "lost wake-up");
        i += 1;
    }
    assert!(
        common::os::asleep_in_syscall(quiet_tid).is_some(),
        "the quiet consumer left its sleep"
    );
    assert_eq!(
        common::os::context_switches(quiet_tid),
        switches,
        "the quiet consumer ran while parked"
    );
    assert_eq!(quiet_tx.wakes(), 0);

    // Not vacuous: one push wakes it, and the kernel counts the switch.
    quiet_tx.send_and_notify(7).unwrap();
    assert_eq!(quiet_got.recv_timeout(HANG), Ok(Ok(Some(7))));
    // The kernel counts a switch when the woken thread leaves the CPU again (here when it
    // blocks on `exit_rx`), which may come after its reply reached this thread.
    wait_until("the woken consumer's switch to be counted", || {
        common::os::context_switches(quiet_tid) > switches
    });
    exit_tx.send(()).unwrap();
    quiet.join().unwrap();
    drop(busy_tx);
    busy.join().unwrap();
}

/// Items moved by the two-thread stress test (the batch variant moves half as many).
const STRESS_ITEMS: u64 = 10_000_000;

#[test]
fn two_threads_lose_and_duplicate_nothing() {
    // Producer: single `try_send`s; parks on a full ring. Consumer: `recv_batch`; parks on an
    // empty ring. Each wakes the other through the same protocol, in both directions.
    let (tx, mut rx) = channel::<u64>(1024);
    let consumer_parker = Parker::new();
    let consumer_efd = Arc::new(EventFd::new().unwrap());
    let producer_parker = Parker::new();
    let producer_efd = Arc::new(EventFd::new().unwrap());
    let mut tx = WakingProducer::new(tx, consumer_parker.notifier(Arc::clone(&consumer_efd)));
    let mut wake_producer = producer_parker.notifier(Arc::clone(&producer_efd));

    let consumer = thread::spawn(move || {
        let mut out = Vec::with_capacity(256);
        let (mut expected, mut sum) = (0u64, 0u64);
        loop {
            out.clear();
            match rx.recv_batch(&mut out, 256) {
                Ok(_) => {
                    for &v in &out {
                        assert_eq!(v, expected, "order broken, item lost or duplicated");
                        expected += 1;
                        sum = sum.wrapping_add(v);
                    }
                    wake_producer.notify().unwrap();
                }
                Err(TryRecvError::Closed) => return (expected, sum, wake_producer.wakes()),
                Err(TryRecvError::Empty) => match consumer_parker.park(|| rx.has_work()) {
                    ParkDecision::Sleep => {
                        consumer_efd.wait().unwrap();
                        consumer_parker.unparked();
                    }
                    ParkDecision::Cancelled { .. } => {}
                },
            }
        }
    });

    for i in 0..STRESS_ITEMS {
        let mut item = i;
        loop {
            match tx.try_send(item) {
                Ok(()) => break,
                Err(TrySendError::Closed(_)) => panic!("consumer vanished"),
                Err(TrySendError::Full(back)) => {
                    item = back;
                    tx.notify().unwrap();
                    let decision = producer_parker.park(|| !tx.ring().is_full());
                    if decision == ParkDecision::Sleep {
                        producer_efd.wait().unwrap();
                        producer_parker.unparked();
                    }
                }
            }
        }
        if i % 64 == 63 {
            tx.notify().unwrap();
        }
    }
    drop(tx); // closes and wakes
    let (count, sum, _) = consumer.join().unwrap();
    assert_eq!(count, STRESS_ITEMS);
    assert_eq!(sum, STRESS_ITEMS * (STRESS_ITEMS - 1) / 2);
}

#[test]
fn two_threads_batches_lose_and_duplicate_nothing() {
    // Same with `send_batch` on the producer and single `try_recv`s on the consumer.
    let total = STRESS_ITEMS / 2;
    let (tx, mut rx) = channel::<u64>(333);
    let consumer_parker = Parker::new();
    let consumer_efd = Arc::new(EventFd::new().unwrap());
    let producer_parker = Parker::new();
    let producer_efd = Arc::new(EventFd::new().unwrap());
    let mut tx = WakingProducer::new(tx, consumer_parker.notifier(Arc::clone(&consumer_efd)));
    let mut wake_producer = producer_parker.notifier(Arc::clone(&producer_efd));

    let consumer = thread::spawn(move || {
        let (mut expected, mut since_notify) = (0u64, 0u32);
        loop {
            match rx.try_recv() {
                Ok(v) => {
                    assert_eq!(v, expected, "order broken, item lost or duplicated");
                    expected += 1;
                    since_notify += 1;
                    if since_notify == 64 {
                        since_notify = 0;
                        wake_producer.notify().unwrap();
                    }
                }
                Err(TryRecvError::Closed) => return expected,
                Err(TryRecvError::Empty) => {
                    wake_producer.notify().unwrap();
                    if consumer_parker.park(|| rx.has_work()) == ParkDecision::Sleep {
                        consumer_efd.wait().unwrap();
                        consumer_parker.unparked();
                    }
                }
            }
        }
    });

    let mut next = 0u64;
    let mut pending = VecDeque::with_capacity(500);
    while next < total || !pending.is_empty() {
        while pending.len() < 500 && next < total {
            pending.push_back(next);
            next += 1;
        }
        let sent = tx.send_batch(&mut pending).unwrap();
        tx.notify().unwrap();
        if sent == 0 && producer_parker.park(|| !tx.ring().is_full()) == ParkDecision::Sleep {
            producer_efd.wait().unwrap();
            producer_parker.unparked();
        }
    }
    drop(tx);
    assert_eq!(consumer.join().unwrap(), total);
}

/// How a stress consumer sleeps, and how its producer's wakes reach it.
#[derive(Clone, Copy, Debug)]
enum Mechanism {
    /// `poll(2)` on an eventfd; the producer writes it.
    Eventfd,
    /// `FUTEX_WAIT` on the parked word; the producer's claimed wake is a `FUTEX_WAKE`.
    Futex,
}

/// Park / wake stress: the producer sends items one at a time, each followed by a wake check,
/// in bursts with a pause between (so the consumer parks and is woken over and over, and
/// sometimes races the producer's next push); the consumer sleeps whenever its ring is empty.
/// Every item arrives once, in order; no wake is lost (the consumer would hang) and there is
/// at most one wake per item.
fn park_wake_stress(mechanism: Mechanism) {
    const ITEMS: u64 = 20_000;
    let (tx, mut rx) = channel::<u64>(8);
    let parker = Arc::new(Parker::new());
    parker.sleep_on_futex(matches!(mechanism, Mechanism::Futex));
    let efd = Arc::new(EventFd::new().unwrap());
    let mut tx = WakingProducer::new(tx, parker.notifier(Arc::clone(&efd)));
    let (done_tx, done_rx) = mpsc::channel();
    // "Room in the ring": one token at most, sent by the consumer after each item it takes, so
    // a producer that finds the ring full blocks instead of spinning or yielding.
    let (room_tx, room_rx) = mpsc::sync_channel::<()>(1);
    let consumer = thread::spawn(move || {
        let sleep = || match mechanism {
            Mechanism::Eventfd => efd.wait().map(drop),
            Mechanism::Futex => futex::wait(parker.futex_word(), Parker::FUTEX_PARKED),
        };
        let mut expected = 0;
        while let Some(v) = recv_blocking_with(&mut rx, &parker, sleep).unwrap() {
            assert_eq!(v, expected, "out of order or duplicated");
            expected += 1;
            let _ = room_tx.try_send(());
        }
        done_tx.send(expected).unwrap();
    });
    for i in 0..ITEMS {
        loop {
            match tx.try_send(i) {
                Ok(()) => break,
                // The consumer has work (it was woken for every item): wait until it takes one.
                // A stale token only costs one more try.
                Err(TrySendError::Full(_)) => room_rx
                    .recv_timeout(HANG)
                    .expect("the consumer stopped taking items"),
                Err(TrySendError::Closed(_)) => panic!("consumer gone"),
            }
        }
        tx.notify().unwrap();
        if i % 64 == 63 {
            // Let the consumer drain and park.
            thread::sleep(Duration::from_micros(50));
        }
    }
    let wakes = tx.wakes();
    drop(tx);
    assert_eq!(done_rx.recv_timeout(HANG), Ok(ITEMS), "lost wake-up");
    consumer.join().unwrap();
    assert!(wakes <= ITEMS, "{wakes} wakes for {ITEMS} items");
}

#[test]
fn park_wake_stress_eventfd() {
    park_wake_stress(Mechanism::Eventfd);
}

#[test]
fn park_wake_stress_futex() {
    park_wake_stress(Mechanism::Futex);
}
