//! The ring against a `VecDeque` oracle over random operation sequences, with items that
//! count their drops: every item must be dropped exactly once, and never while the ring or
//! the test still owns it.
#![cfg(not(loom))]
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use proptest::prelude::*;
use ringwire_shard::ring::{ClosedError, Consumer, Producer, TryRecvError, TrySendError, channel};

#[derive(Debug, Clone)]
enum Op {
    Push,
    PushBatch(usize),
    PushIter(usize),
    Pop,
    PopBatch(usize),
    PopWith(usize),
    DropProducer,
    DropConsumer,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::Push),
        3 => (0usize..12).prop_map(Op::PushBatch),
        3 => (0usize..12).prop_map(Op::PushIter),
        6 => Just(Op::Pop),
        3 => (0usize..12).prop_map(Op::PopBatch),
        3 => (0usize..12).prop_map(Op::PopWith),
        1 => Just(Op::DropProducer),
        1 => Just(Op::DropConsumer),
    ]
}

/// Counts drops per item id.
#[derive(Default)]
struct Ledger {
    drops: RefCell<Vec<u32>>,
}

struct Item {
    id: usize,
    ledger: Rc<Ledger>,
}

impl Drop for Item {
    fn drop(&mut self) {
        self.ledger.drops.borrow_mut()[self.id] += 1;
    }
}

impl Ledger {
    fn make(self: &Rc<Self>) -> Item {
        let mut drops = self.drops.borrow_mut();
        drops.push(0);
        Item {
            id: drops.len() - 1,
            ledger: Rc::clone(self),
        }
    }

    fn dropped(&self, id: usize) -> u32 {
        self.drops.borrow()[id]
    }
}

fn run(capacity: usize, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let ledger = Rc::new(Ledger::default());
    let (tx, rx) = channel::<Item>(capacity);
    let (mut tx, mut rx): (Option<Producer<Item>>, Option<Consumer<Item>>) = (Some(tx), Some(rx));
    // Ids in the ring, oldest first.
    let mut oracle: VecDeque<usize> = VecDeque::new();
    // Slots `try_recv` freed that the producer cannot see yet: it publishes every `every`
    // items and whenever it errs; batch receives and dropping the consumer publish them all.
    let every = (capacity / 8).clamp(1, 32);
    let mut pending = 0;

    for op in ops {
        match op {
            Op::Push => {
                let Some(p) = tx.as_mut() else { continue };
                let item = ledger.make();
                let id = item.id;
                match p.try_send(item) {
                    Ok(()) => {
                        prop_assert!(rx.is_some() && oracle.len() + pending < capacity);
                        oracle.push_back(id);
                    }
                    Err(TrySendError::Full(back)) => {
                        prop_assert!(rx.is_some() && oracle.len() + pending == capacity);
                        prop_assert_eq!(back.id, id);
                        prop_assert_eq!(ledger.dropped(id), 0);
                    }
                    Err(TrySendError::Closed(back)) => {
                        prop_assert!(rx.is_none());
                        prop_assert_eq!(back.id, id);
                    }
                }
            }
            Op::PushBatch(k) => {
                let Some(p) = tx.as_mut() else { continue };
                let mut batch: VecDeque<Item> = (0..k).map(|_| ledger.make()).collect();
                let ids: Vec<usize> = batch.iter().map(|i| i.id).collect();
                match p.send_batch(&mut batch) {
                    Ok(n) => {
                        prop_assert!(rx.is_some());
                        prop_assert_eq!(n, k.min(capacity - oracle.len() - pending));
                        oracle.extend(&ids[..n]);
                        let left: Vec<usize> = batch.iter().map(|i| i.id).collect();
                        prop_assert_eq!(&left[..], &ids[n..], "unsent items stay, in order");
                    }
                    Err(ClosedError) => {
                        prop_assert!(rx.is_none());
                        prop_assert_eq!(batch.len(), k);
                    }
                }
                for id in &ids {
                    prop_assert_eq!(ledger.dropped(*id), 0);
                }
            }
            Op::PushIter(k) => {
                let Some(p) = tx.as_mut() else { continue };
                let mut source = (0..k)
                    .map(|_| ledger.make())
                    .collect::<Vec<_>>()
                    .into_iter();
                let ids: Vec<usize> = source.as_slice().iter().map(|i| i.id).collect();
                match p.send_iter(&mut source) {
                    Ok(n) => {
                        prop_assert!(rx.is_some());
                        prop_assert_eq!(n, k.min(capacity - oracle.len() - pending));
                        oracle.extend(&ids[..n]);
                        let left: Vec<usize> = source.as_slice().iter().map(|i| i.id).collect();
                        prop_assert_eq!(&left[..], &ids[n..], "unpulled items stay, in order");
                    }
                    Err(ClosedError) => {
                        prop_assert!(rx.is_none());
                        prop_assert_eq!(source.len(), k);
                    }
                }
            }
            Op::PopWith(max) => {
                let Some(c) = rx.as_mut() else { continue };
                let mut got = Vec::new();
                let result = c.recv_with(max, |item| got.push(item.id));
                if max > 0 {
                    pending = 0;
                }
                match result {
                    Ok(n) => {
                        prop_assert_eq!(n, got.len());
                        prop_assert_eq!(n, max.min(oracle.len()));
                        prop_assert!(n > 0 || max == 0);
                        for id in got {
                            prop_assert_eq!(Some(id), oracle.pop_front());
                            prop_assert_eq!(ledger.dropped(id), 1, "handed over, then dropped");
                        }
                    }
                    Err(TryRecvError::Empty) => {
                        prop_assert!(max > 0 && oracle.is_empty() && tx.is_some());
                    }
                    Err(TryRecvError::Closed) => {
                        prop_assert!(max > 0 && oracle.is_empty() && tx.is_none());
                    }
                }
            }
            Op::Pop => {
                let Some(c) = rx.as_mut() else { continue };
                let result = c.try_recv();
                pending = if result.is_ok() {
                    (pending + 1) % every
                } else {
                    0
                };
                match result {
                    Ok(item) => prop_assert_eq!(Some(item.id), oracle.pop_front()),
                    Err(TryRecvError::Empty) => prop_assert!(oracle.is_empty() && tx.is_some()),
                    Err(TryRecvError::Closed) => prop_assert!(oracle.is_empty() && tx.is_none()),
                }
            }
            Op::PopBatch(max) => {
                let Some(c) = rx.as_mut() else { continue };
                let mut out = Vec::new();
                let result = c.recv_batch(&mut out, max);
                if max > 0 {
                    pending = 0;
                }
                match result {
                    Ok(n) => {
                        prop_assert_eq!(n, out.len());
                        prop_assert_eq!(n, max.min(oracle.len()));
                        prop_assert!(n > 0 || max == 0);
                        for item in &out {
                            prop_assert_eq!(Some(item.id), oracle.pop_front());
                        }
                    }
                    Err(TryRecvError::Empty) => {
                        prop_assert!(max > 0 && oracle.is_empty() && tx.is_some());
                    }
                    Err(TryRecvError::Closed) => {
                        prop_assert!(max > 0 && oracle.is_empty() && tx.is_none());
                    }
                }
            }
            Op::DropProducer => drop(tx.take()),
            Op::DropConsumer => {
                drop(rx.take());
                pending = 0;
            }
        }

        // Observable state agrees with the oracle.
        if let Some(p) = &tx {
            prop_assert_eq!(p.len(), oracle.len() + pending);
            prop_assert_eq!(p.is_closed(), rx.is_none());
            prop_assert_eq!(p.capacity(), capacity);
        }
        if let Some(c) = &rx {
            prop_assert_eq!(c.len(), oracle.len());
            prop_assert_eq!(c.is_closed(), tx.is_none());
            prop_assert_eq!(c.has_work(), !oracle.is_empty() || tx.is_none());
        }
        // Items in the ring are alive while an end lives, and dropped once both are gone.
        let expect = u32::from(tx.is_none() && rx.is_none());
        for &id in &oracle {
            prop_assert_eq!(ledger.dropped(id), expect);
        }
    }

    drop(tx);
    drop(rx);
    // Every item ever made (sent, refused, received, left behind) dropped exactly once.
    for (id, &n) in ledger.drops.borrow().iter().enumerate() {
        prop_assert_eq!(n, 1, "item {} dropped {} times", id, n);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn ring_matches_vecdeque_oracle(
        // Below 16 slots `try_recv` publishes every item; from 16 up, every `capacity / 8`.
        capacity in prop_oneof![1usize..8, 16usize..40],
        ops in proptest::collection::vec(op(), 0..200),
    ) {
        run(capacity, ops)?;
    }
}
