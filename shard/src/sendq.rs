//! Send slots: the bounded memory that outbound datagrams live in until their completion.
//!
//! Each slot owns a fixed region of one contiguous buffer plus a destination address. A slot is
//! *free*, *staged* (filled by the handler this turn, not yet an SQE) or *in flight* (submitted;
//! the kernel may read its bytes until the completion arrives). The driver points `sendmsg` SQEs
//! at slot memory, so the backing vectors are allocated once at full size and never resized:
//! their addresses are stable for the shard's life.
#![forbid(unsafe_code)]

use std::net::SocketAddr;

use socket2::SockAddr;

use crate::handler::SendOutcome;

/// Fixed pool of send slots for one shard.
#[derive(Debug)]
pub(crate) struct SendSlots {
    max: usize,
    bufs: Vec<u8>,
    lens: Vec<usize>,
    addrs: Vec<SockAddr>,
    tags: Vec<u64>,
    free: Vec<u32>,
    staged: Vec<u32>,
    in_flight: usize,
}

impl SendSlots {
    /// `count` slots of `max` bytes each.
    pub(crate) fn new(count: usize, max: usize) -> Self {
        let placeholder = SockAddr::from(SocketAddr::from(([0, 0, 0, 0], 0)));
        Self {
            max,
            bufs: vec![0; count * max],
            lens: vec![0; count],
            addrs: vec![placeholder; count],
            tags: vec![0; count],
            free: (0..count as u32).rev().collect(),
            staged: Vec::with_capacity(count),
            in_flight: 0,
        }
    }

    /// Copies `payload` for `peer` into a free slot; `tag` (0: none) comes back with the
    /// completion.
    pub(crate) fn stage(&mut self, peer: SocketAddr, payload: &[u8], tag: u64) -> SendOutcome {
        if payload.len() > self.max {
            return SendOutcome::TooLarge {
                len: payload.len(),
                max: self.max,
            };
        }
        let Some(slot) = self.free.pop() else {
            return SendOutcome::QueueFull;
        };
        let i = slot as usize;
        self.bufs[i * self.max..i * self.max + payload.len()].copy_from_slice(payload);
        self.lens[i] = payload.len();
        self.addrs[i] = SockAddr::from(peer);
        self.tags[i] = tag;
        self.staged.push(slot);
        SendOutcome::Queued
    }

    /// Free slots.
    pub(crate) fn free(&self) -> usize {
        self.free.len()
    }

    /// Slots submitted and not yet completed.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// The oldest staged slot, if any, without removing it.
    pub(crate) fn next_staged(&self, nth: usize) -> Option<u32> {
        self.staged.get(nth).copied()
    }

    /// Marks the first `n` staged slots as in flight.
    pub(crate) fn mark_submitted(&mut self, n: usize) {
        self.staged.drain(..n);
        self.in_flight += n;
    }

    /// A completed (or failed) send: the slot is free again.
    pub(crate) fn release(&mut self, slot: u32) {
        debug_assert!(self.in_flight > 0);
        self.in_flight -= 1;
        self.free.push(slot);
    }

    /// The tag staged with `slot`.
    pub(crate) fn tag(&self, slot: u32) -> u64 {
        self.tags[slot as usize]
    }

    /// Whether `slot` names a real slot.
    pub(crate) fn contains(&self, slot: u32) -> bool {
        (slot as usize) < self.lens.len()
    }

    /// The payload staged in `slot`.
    pub(crate) fn payload(&self, slot: u32) -> &[u8] {
        let i = slot as usize;
        &self.bufs[i * self.max..i * self.max + self.lens[i]]
    }

    /// The destination staged in `slot`.
    pub(crate) fn addr(&self, slot: u32) -> &SockAddr {
        &self.addrs[slot as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_recycled() {
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut slots = SendSlots::new(2, 8);
        assert_eq!(slots.stage(peer, b"a", 0), SendOutcome::Queued);
        assert_eq!(slots.stage(peer, b"bc", 7), SendOutcome::Queued);
        assert_eq!(slots.stage(peer, b"d", 0), SendOutcome::QueueFull);
        assert_eq!(
            slots.stage(peer, &[0; 9], 0),
            SendOutcome::TooLarge { len: 9, max: 8 }
        );
        let first = slots.next_staged(0).unwrap();
        assert_eq!(slots.payload(first), b"a");
        assert_eq!(slots.addr(first).as_socket(), Some(peer));
        assert_eq!(slots.tag(slots.next_staged(1).unwrap()), 7);
        slots.mark_submitted(2);
        assert_eq!(slots.in_flight(), 2);
        assert_eq!(slots.next_staged(0), None);
        slots.release(first);
        assert_eq!(slots.free(), 1);
        assert_eq!(slots.stage(peer, b"e", 0), SendOutcome::Queued);
    }
}
