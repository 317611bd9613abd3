//! One test per invariant of the SPSC ring (`ringwire_shard::ring::spsc`).
#![cfg(not(loom))]
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use ringwire_shard::ring::{ClosedError, TryRecvError, TrySendError, channel};

/// An item that records every drop of its id, to check each is dropped exactly once.
struct Tracked {
    id: usize,
    drops: Rc<RefCell<Vec<u32>>>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops.borrow_mut()[self.id] += 1;
    }
}

fn tracked(n: usize) -> (Rc<RefCell<Vec<u32>>>, Vec<Tracked>) {
    let drops = Rc::new(RefCell::new(vec![0; n]));
    let items = (0..n)
        .map(|id| Tracked {
            id,
            drops: Rc::clone(&drops),
        })
        .collect();
    (drops, items)
}

#[test]
fn capacity_is_exact_not_rounded() {
    for capacity in [1, 2, 3, 5, 7, 100, 1000, 1025] {
        let (mut tx, mut rx) = channel::<usize>(capacity);
        assert_eq!(tx.capacity(), capacity);
        assert_eq!(rx.capacity(), capacity);
        for i in 0..capacity {
            assert_eq!(tx.try_send(i), Ok(()), "capacity {capacity}, item {i}");
        }
        assert_eq!(tx.len(), capacity);
        assert!(tx.is_full());
        assert_eq!(tx.try_send(capacity), Err(TrySendError::Full(capacity)));
        // Exactly one slot frees exactly one send, once the consumer has published it
        // (`try_recv` publishes lazily on rings of 16 slots or more).
        assert_eq!(rx.try_recv(), Ok(0));
        rx.flush();
        assert_eq!(tx.try_send(capacity), Ok(()));
        assert_eq!(
            tx.try_send(capacity + 1),
            Err(TrySendError::Full(capacity + 1))
        );
        assert_eq!(rx.len(), capacity);
    }
}

#[test]
#[should_panic(expected = "at least 1")]
fn capacity_zero_panics() {
    let _ = channel::<u8>(0);
}

#[test]
fn full_ring_returns_full_with_the_item() {
    let (mut tx, _rx) = channel(1);
    tx.try_send(String::from("a")).unwrap();
    let err = tx.try_send(String::from("b")).unwrap_err();
    assert!(err.is_full() && !err.is_closed());
    assert_eq!(err.to_string(), "sending on a full ring");
    assert_eq!(err.into_inner(), "b");
}

#[test]
fn thousand_try_sends_on_a_full_ring_all_return_full() {
    // The freenet wedge (a node hung in a full channel's back-off): `try_send` on a full
    // channel must return at once, every time, with no consumer activity at all. No timing
    // assertion: finishing is the check.
    let (mut tx, rx) = channel(4);
    for i in 0..4 {
        tx.try_send(i).unwrap();
    }
    for i in 0..1000 {
        assert_eq!(tx.try_send(i), Err(TrySendError::Full(i)));
    }
    assert_eq!(rx.len(), 4);
}

#[test]
fn closed_after_consumer_drops() {
    let (mut tx, rx) = channel(4);
    tx.try_send(1).unwrap();
    assert!(!tx.is_closed());
    drop(rx);
    assert!(tx.is_closed());
    let err = tx.try_send(2).unwrap_err();
    assert!(err.is_closed());
    assert_eq!(err.into_inner(), 2);
    let mut batch = VecDeque::from([3, 4]);
    assert_eq!(tx.send_batch(&mut batch), Err(ClosedError));
    assert_eq!(
        batch,
        [3, 4],
        "a closed ring leaves the batch with the caller"
    );
}

#[test]
fn closed_wins_over_full() {
    let (mut tx, rx) = channel(1);
    tx.try_send(1).unwrap();
    drop(rx);
    assert_eq!(tx.try_send(2), Err(TrySendError::Closed(2)));
}

#[test]
fn closed_after_producer_drops_only_once_drained() {
    let (mut tx, mut rx) = channel(4);
    tx.try_send(1).unwrap();
    tx.try_send(2).unwrap();
    tx.try_send(3).unwrap();
    assert_eq!(rx.try_recv(), Ok(1));
    drop(tx);
    assert!(rx.is_closed());
    assert!(rx.has_work());
    assert_eq!(rx.try_recv(), Ok(2));
    let mut out = Vec::new();
    assert_eq!(rx.recv_batch(&mut out, 8), Ok(1));
    assert_eq!(out, [3]);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
    assert_eq!(rx.recv_batch(&mut out, 8), Err(TryRecvError::Closed));
}

#[test]
fn empty_while_producer_alive() {
    let (tx, mut rx) = channel::<u8>(2);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    let mut out = Vec::new();
    assert_eq!(rx.recv_batch(&mut out, 4), Err(TryRecvError::Empty));
    assert_eq!(rx.recv_batch(&mut out, 0), Ok(0));
    assert!(!rx.has_work());
    drop(tx);
    assert!(rx.has_work());
}

#[test]
fn order_is_kept_across_many_wraparounds() {
    for capacity in [1, 2, 3, 7] {
        let (mut tx, mut rx) = channel(capacity);
        let mut next_in = 0u32;
        let mut next_out = 0u32;
        for round in 0..200 {
            let burst = round % (capacity + 1);
            for _ in 0..burst {
                if tx.try_send(next_in).is_ok() {
                    next_in += 1;
                }
            }
            while let Ok(v) = rx.try_recv() {
                assert_eq!(v, next_out);
                next_out += 1;
            }
        }
        assert_eq!(next_in, next_out);
    }
}

#[test]
fn batches_move_what_fits_and_leave_the_rest() {
    let (mut tx, mut rx) = channel(5);
    let mut items: VecDeque<u32> = (0..8).collect();
    assert_eq!(tx.send_batch(&mut items), Ok(5));
    assert_eq!(items, [5, 6, 7]);
    assert_eq!(tx.send_batch(&mut items), Ok(0), "full: nothing moves");
    assert_eq!(items.len(), 3);
    let mut out = vec![100];
    assert_eq!(rx.recv_batch(&mut out, 2), Ok(2));
    assert_eq!(out, [100, 0, 1], "appended, oldest first");
    // Across the wrap-around point.
    assert_eq!(tx.send_batch(&mut items), Ok(2));
    assert_eq!(items, [7]);
    out.clear();
    assert_eq!(rx.recv_batch(&mut out, 100), Ok(5));
    assert_eq!(out, [2, 3, 4, 5, 6]);
    assert_eq!(tx.send_batch(&mut VecDeque::new()), Ok(0));
}

#[test]
fn leftover_items_dropped_exactly_once_producer_last() {
    let (drops, items) = tracked(6);
    let (mut tx, mut rx) = channel(8);
    for item in items {
        assert!(tx.try_send(item).is_ok());
    }
    drop(rx.try_recv().unwrap()); // id 0
    drop(rx);
    assert_eq!(
        *drops.borrow(),
        [1, 0, 0, 0, 0, 0],
        "nothing dropped while an end lives"
    );
    drop(tx);
    assert_eq!(*drops.borrow(), [1; 6]);
}

#[test]
fn leftover_items_dropped_exactly_once_consumer_last_after_wrap() {
    let (drops, items) = tracked(7);
    let (mut tx, mut rx) = channel(3);
    let mut items: VecDeque<Tracked> = items.into();
    assert_eq!(tx.send_batch(&mut items).unwrap(), 3);
    let mut out = Vec::new();
    assert_eq!(rx.recv_batch(&mut out, 2).unwrap(), 2);
    assert_eq!(tx.send_batch(&mut items).unwrap(), 2); // wraps
    drop(out);
    drop(tx);
    assert_eq!(*drops.borrow(), [1, 1, 0, 0, 0, 0, 0]);
    drop(rx);
    assert_eq!(*drops.borrow(), [1, 1, 1, 1, 1, 0, 0]);
    drop(items);
    assert_eq!(*drops.borrow(), [1; 7]);
}

#[test]
fn items_handed_back_are_not_dropped_by_the_ring() {
    let (drops, items) = tracked(2);
    let mut items = items.into_iter();
    let (mut tx, rx) = channel(1);
    assert!(tx.try_send(items.next().unwrap()).is_ok());
    let back = tx.try_send(items.next().unwrap()).unwrap_err().into_inner();
    assert_eq!(back.id, 1);
    drop(rx);
    drop(tx);
    assert_eq!(*drops.borrow(), [1, 0]);
    drop(back);
    assert_eq!(*drops.borrow(), [1, 1]);
}

#[test]
fn zero_sized_items() {
    let (mut tx, mut rx) = channel::<()>(3);
    for _ in 0..3 {
        tx.try_send(()).unwrap();
    }
    assert_eq!(tx.try_send(()), Err(TrySendError::Full(())));
    assert_eq!(rx.len(), 3);
    assert_eq!(rx.try_recv(), Ok(()));
}

#[test]
fn send_iter_pulls_only_what_fits() {
    let (mut tx, mut rx) = channel(3);
    let mut source = 0..10;
    assert_eq!(tx.send_iter(&mut source), Ok(3));
    assert_eq!(source, 3..10, "unsent items are still in the iterator");
    assert_eq!(tx.send_iter(&mut source), Ok(0));
    assert_eq!(source, 3..10);
    assert_eq!(rx.try_recv(), Ok(0));
    assert_eq!(tx.send_iter(&mut [100].into_iter()), Ok(1));
    let mut got = Vec::new();
    assert_eq!(rx.recv_with(10, |v| got.push(v)), Ok(3));
    assert_eq!(got, [1, 2, 100]);
    assert_eq!(tx.send_iter(&mut std::iter::empty()), Ok(0));
    drop(rx);
    assert_eq!(tx.send_iter(&mut source), Err(ClosedError));
    assert_eq!(source, 3..10);
}

#[test]
fn recv_with_panic_keeps_the_rest_in_order() {
    let (drops, items) = tracked(5);
    let (mut tx, mut rx) = channel(8);
    let mut items = items.into_iter();
    assert_eq!(tx.send_iter(&mut items).unwrap(), 5);
    let mut seen = Vec::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rx.recv_with(5, |item| {
            seen.push(item.id);
            assert!(item.id < 1, "consumer callback fails on item {}", item.id);
        })
    }));
    assert!(result.is_err());
    assert_eq!(seen, [0, 1]);
    assert_eq!(
        *drops.borrow(),
        [1, 1, 0, 0, 0],
        "the two items given were dropped"
    );
    assert_eq!(rx.len(), 3);
    let mut rest = Vec::new();
    assert_eq!(rx.recv_with(8, |item| rest.push(item.id)), Ok(3));
    assert_eq!(rest, [2, 3, 4]);
    assert_eq!(*drops.borrow(), [1; 5]);
    drop(tx);
    assert_eq!(rx.recv_with(8, |_| ()), Err(TryRecvError::Closed));
}

#[test]
fn try_recv_publishes_lazily_and_always_on_empty() {
    // Capacity 64: `try_recv` stores the consumer's position every 8 items.
    let (mut tx, mut rx) = channel::<u32>(64);
    for i in 0..64 {
        assert_eq!(tx.try_send(i), Ok(()));
    }
    for i in 0..7 {
        assert_eq!(rx.try_recv(), Ok(i));
    }
    // 7 slots taken but not yet published: the producer still sees a full ring.
    assert_eq!(tx.len(), 64);
    assert_eq!(tx.try_send(64), Err(TrySendError::Full(64)));
    assert_eq!(rx.len(), 57, "the consumer counts what it has taken");
    // The 8th publishes all 8.
    assert_eq!(rx.try_recv(), Ok(7));
    assert_eq!(tx.len(), 56);
    for i in 64..72 {
        assert_eq!(tx.try_send(i), Ok(()));
    }
    assert_eq!(tx.try_send(72), Err(TrySendError::Full(72)));
    // `flush` publishes what is pending, at once.
    assert_eq!(rx.try_recv(), Ok(8));
    rx.flush();
    assert_eq!(tx.try_send(72), Ok(()));
    // Draining to `Empty` publishes everything: the producer sees the whole ring free.
    let mut next = 9;
    while let Ok(v) = rx.try_recv() {
        assert_eq!(v, next);
        next += 1;
    }
    assert_eq!(next, 73);
    assert_eq!(tx.len(), 0);
    for i in 0..64 {
        assert_eq!(tx.try_send(i), Ok(()));
    }
    // A batch receive publishes at once, including single items taken before it.
    assert_eq!(rx.try_recv(), Ok(0));
    let mut out = Vec::new();
    assert_eq!(rx.recv_batch(&mut out, 2), Ok(2));
    assert_eq!(tx.len(), 61);
}

#[test]
fn unpublished_items_are_not_dropped_twice() {
    // Items taken by `try_recv` but not yet published, then both ends dropped (either order):
    // the ring drops only the items still in it.
    for consumer_first in [true, false] {
        let (drops, items) = tracked(20);
        let (mut tx, mut rx) = channel(32);
        for item in items {
            assert!(tx.try_send(item).is_ok());
        }
        drop(rx.try_recv().unwrap());
        drop(rx.try_recv().unwrap());
        if consumer_first {
            drop(rx);
            drop(tx);
        } else {
            drop(tx);
            drop(rx);
        }
        assert_eq!(*drops.borrow(), [1; 20]);
    }
}
