//! Closed loop: a fixed window of outstanding datagrams per worker; each echo
//! (or timeout) frees its slot, and the slot's next datagram goes out.
//!
//! Per slot the worker keeps the generation and send time of the one datagram
//! in flight; the datagram carries both (`seq` = slot | generation << 16,
//! `sent_ns`), so an echo matches its slot with no per-datagram state, and an
//! echo that arrives after its slot timed out (and moved on) is counted as
//! late, not received. Freed slots are queued and sent from the peers in
//! rotation, each `sendmmsg` carrying a peer's share of the window
//! (`ceil(window / peers)`, at most [`BATCH`]): with 256 slots over 64 peers
//! each peer sends 4 at a time; with more peers than slots, one each, so
//! every peer is used.
//!
//! There is no schedule to fall behind, but the client can still be slow to
//! refill its window: each measured send records its lag behind the moment
//! its slot was freed (the echo read, or the timeout seen), the closed-loop
//! counterpart of the open loop's lag behind schedule.

use super::payload::{Probe, seq_slot, slot_seq};
use super::stats::WorkerStats;
use super::transport::Transport;
use super::worker::{BATCH, Reply, Worker};
use std::io;

/// Largest window per worker (slot indices are 16 bits).
pub const MAX_WINDOW: usize = 1 << 16;

struct Slots {
    generation: Vec<u16>,
    sent_ns: Vec<u64>,
    /// When the slot was last freed (its echo read, or its timeout seen):
    /// the moment its next datagram is due.
    freed_ns: Vec<u64>,
    in_flight: Vec<bool>,
    count_in_flight: usize,
    /// Free slots waiting to be sent, oldest first.
    pending: Vec<u16>,
}

/// Runs the closed loop with `window` slots until `w.end_ns`, then waits up to
/// the timeout for the datagrams still in flight.
pub fn run<T: Transport>(mut w: Worker<T>, window: usize) -> io::Result<WorkerStats> {
    let window = window.clamp(1, MAX_WINDOW);
    let mut slots = Slots {
        generation: vec![0; window],
        sent_ns: vec![0; window],
        freed_ns: vec![0; window],
        in_flight: vec![false; window],
        count_in_flight: 0,
        pending: (0..window)
            .map(|s| u16::try_from(s).unwrap_or(u16::MAX))
            .collect(),
    };
    let mut replies = Vec::with_capacity(BATCH * 4);
    let per_peer = window.div_ceil(w.io.peer_count().max(1)).clamp(1, BATCH);
    let scan_every_ns = (w.timeout_ns / 8).max(1_000_000);
    let mut next_scan_ns = 0;
    loop {
        let now = w.now_ns();
        let sending = now < w.end_ns;
        if !sending && (slots.count_in_flight == 0 || now >= w.end_ns + w.timeout_ns) {
            break;
        }
        if sending {
            flush(&mut w, &mut slots, per_peer, now);
        }
        if now >= next_scan_ns {
            expire(&mut w, &mut slots, now, sending);
            next_scan_ns = now + scan_every_ns;
        }
        replies.clear();
        w.poll_replies(1, &mut replies)?;
        for r in &replies {
            if complete(&mut w, &mut slots, r) && sending {
                slots.pending.push(seq_slot(r.probe.seq));
            }
        }
    }
    w.io.finish(&mut w.stats);
    Ok(w.stats)
}

/// Matches an echo to its slot; true if it freed the slot.
fn complete<T: Transport>(w: &mut Worker<T>, slots: &mut Slots, r: &Reply) -> bool {
    let slot = usize::from(seq_slot(r.probe.seq));
    if r.probe.peer as usize != r.peer {
        w.stats.misrouted += 1;
        return false;
    }
    let current = slot < slots.in_flight.len()
        && slots.in_flight[slot]
        && slot_seq(slot as u16, slots.generation[slot]) == r.probe.seq
        && slots.sent_ns[slot] == r.probe.sent_ns;
    if !current {
        if r.probe.sent_ns >= w.measure_start_ns {
            w.stats.late += 1;
        }
        return false;
    }
    slots.in_flight[slot] = false;
    slots.count_in_flight -= 1;
    slots.freed_ns[slot] = r.recv_ns;
    w.record(r, r.probe.sent_ns);
    true
}

/// Frees slots whose datagram has waited longer than the timeout; each
/// counts as lost (via sent minus received) and, while sending, is re-sent.
fn expire<T: Transport>(w: &mut Worker<T>, slots: &mut Slots, now: u64, sending: bool) {
    for slot in 0..slots.in_flight.len() {
        if slots.in_flight[slot] && now.saturating_sub(slots.sent_ns[slot]) >= w.timeout_ns {
            slots.in_flight[slot] = false;
            slots.count_in_flight -= 1;
            slots.freed_ns[slot] = now;
            if slots.sent_ns[slot] >= w.measure_start_ns {
                w.stats.timeouts += 1;
            }
            if sending {
                slots.pending.push(u16::try_from(slot).unwrap_or(u16::MAX));
            }
        }
    }
}

/// Sends queued slots, `per_peer` at a time, each batch from the next peer.
fn flush<T: Transport>(w: &mut Worker<T>, slots: &mut Slots, per_peer: usize, now: u64) {
    while !slots.pending.is_empty() {
        let n = slots.pending.len().min(per_peer);
        let peer = w.next_peer();
        let peer_tag = u32::try_from(peer).unwrap_or(u32::MAX);
        for (j, &slot) in slots.pending[..n].iter().enumerate() {
            let s = usize::from(slot);
            slots.generation[s] = slots.generation[s].wrapping_add(1);
            let probe = Probe {
                sent_ns: now,
                peer: peer_tag,
                seq: slot_seq(slot, slots.generation[s]),
            };
            w.stage(j, &probe);
        }
        let first_measured = if now >= w.measure_start_ns { 0 } else { n };
        let sent = w.send_batch(peer, n, first_measured);
        for &slot in &slots.pending[..sent] {
            let s = usize::from(slot);
            slots.in_flight[s] = true;
            slots.sent_ns[s] = now;
            slots.count_in_flight += 1;
            if first_measured == 0 {
                w.stats.record_lag(now.saturating_sub(slots.freed_ns[s]));
            }
        }
        slots.pending.drain(..sent);
        if sent < n {
            break;
        }
    }
}
