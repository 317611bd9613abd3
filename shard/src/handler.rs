//! The application's side of a shard: the [`Handler`] it implements and the [`Ctx`] it acts
//! through.
//!
//! One handler lives on each shard, built on that shard's thread, so it need not be `Send` and
//! its state needs no lock. The shard calls it for every datagram and every timer; what the
//! handler asks for (sends, timers) is staged and submitted with the rest of the loop turn.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::counters::Counters;
use crate::driver::{Placed, Received, Refused, SendSlots, SendSubmitter};
use crate::mesh::MeshEnd;
pub use crate::mesh::{Lane, MeshSendError};
use crate::report::{ReportPage, ReportRequest};
use crate::timer::{TimerError, TimerId, Timers};

/// What happened to a datagram handed to [`Ctx::send_to`]. Every case is explicit; nothing is
/// dropped without the caller being told and a counter moving.
#[must_use = "a send can be refused; handle or count the outcome"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendOutcome {
    /// Copied into a send slot; it is submitted to the kernel with this loop turn's batch and its
    /// completion is checked (failures are counted by errno in the shard's stats).
    Queued,
    /// Every send slot is in flight; the datagram was not queued (counted as `send_queue_full`).
    QueueFull,
    /// The payload is larger than the shard's `max_datagram` (counted as `send_too_large`).
    TooLarge {
        /// The payload's length.
        len: usize,
        /// The largest payload the shard sends.
        max: usize,
    },
}

/// The datagrams of one GRO-coalesced receive buffer, handed to [`Handler::on_datagrams`]:
/// their bytes back to back, cut every [`Datagrams::segment_size`] bytes (the last datagram may
/// be shorter). Iterating yields each datagram's bytes, in arrival order.
#[derive(Debug, Clone, Copy)]
pub struct Datagrams<'a> {
    bytes: &'a [u8],
    segment: usize,
}

impl<'a> Datagrams<'a> {
    /// `bytes` cut every `segment` bytes; a `segment` of 0 or not below `bytes.len()` makes
    /// one datagram of them all.
    pub(crate) fn new(bytes: &'a [u8], segment: usize) -> Self {
        let segment = if segment == 0 || segment >= bytes.len() {
            bytes.len().max(1)
        } else {
            segment
        };
        Self { bytes, segment }
    }

    /// Every datagram's bytes, back to back, as the kernel received them.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Each datagram's length, but the last's, which may be shorter.
    pub fn segment_size(&self) -> usize {
        self.segment
    }

    /// How many datagrams there are.
    pub fn len(&self) -> usize {
        self.bytes.len().div_ceil(self.segment)
    }

    /// Whether there are none (never, for a batch the shard hands over).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Each datagram's bytes, in order.
    pub fn iter(&self) -> std::slice::Chunks<'a, u8> {
        self.bytes.chunks(self.segment)
    }
}

impl<'a> IntoIterator for Datagrams<'a> {
    type Item = &'a [u8];
    type IntoIter = std::slice::Chunks<'a, u8>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Application logic for one shard.
pub trait Handler {
    /// What this application sends to its handlers on other shards through the mesh
    /// ([`Ctx::send_to_shard`]). Use `()` if it never does.
    type Message: Send + 'static;

    /// A datagram arrived from `peer`. `payload` is only valid during the call: the buffer goes
    /// back to the kernel when the handler returns, or, if the handler sent (part of) it with
    /// [`Ctx::send_received`], when that send completes.
    fn on_datagram(&mut self, peer: SocketAddr, payload: &[u8], ctx: &mut Ctx<'_, Self::Message>);

    /// Several datagrams from `peer` arrived in one receive buffer (the kernel coalesced them
    /// with GRO): `datagrams` are their bytes back to back, every one
    /// [`Datagrams::segment_size`] long but the last, which may be shorter. Valid only during
    /// the call, as in [`Handler::on_datagram`]. [`Ctx::send_datagrams`] sends them all (or
    /// any run of them) with one staged send per up to 64, out of the receive buffer.
    ///
    /// The default hands each datagram to [`Handler::on_datagram`], in order: override this
    /// only to treat a batch as a whole (an echo, a relay that forwards a stream unchanged).
    fn on_datagrams(
        &mut self,
        peer: SocketAddr,
        datagrams: Datagrams<'_>,
        ctx: &mut Ctx<'_, Self::Message>,
    ) {
        for payload in datagrams {
            self.on_datagram(peer, payload, ctx);
        }
    }

    /// A message from the handler on shard `from` arrived on `lane`. Every control-lane message
    /// of a turn is delivered before any data-lane message.
    fn on_message(
        &mut self,
        from: usize,
        lane: Lane,
        msg: Self::Message,
        ctx: &mut Ctx<'_, Self::Message>,
    ) {
        let _ = (from, lane, msg, ctx);
    }

    /// A timer scheduled with [`Ctx::set_timer`] fired.
    fn on_timer(&mut self, token: u64, ctx: &mut Ctx<'_, Self::Message>) {
        let _ = (token, ctx);
    }

    /// A send queued with [`Ctx::send_to_tagged`] completed: `Ok(bytes sent)` or the kernel's
    /// error (`raw_os_error()` is its errno). Every completion is also counted in the shard's
    /// stats, failures by errno.
    fn on_send_complete(&mut self, tag: u64, result: std::io::Result<usize>) {
        let _ = (tag, result);
    }

    /// Adds the handler's own counters (name, value): to the shard's final report, and to
    /// every live report ([`ShardReport::counters`](crate::ShardReport::counters), which the
    /// metrics endpoint exports). Names are `snake_case`; a name may appear on some calls and
    /// not others (a drop reason that never happened), and values only grow unless the name
    /// says it is a level (`sessions`).
    fn counters(&self, out: &mut Vec<(&'static str, u64)>) {
        let _ = out;
    }

    /// Writes one page of a report of the handler's state when the engine asks for one
    /// (`EngineHandle::reports`; SIGUSR1 and the live view in the binary): summary lines in
    /// `page.summary`, then at most `request.limit()` items in `page.items` (for sessions: one
    /// flight recorder per session). A plain request wants the items whose keys come after
    /// `request.cursor()`, in key order; a ranked one
    /// ([`ReportRequest::rank`]) wants the `limit` worst of the keys [`ReportRequest::scan`]
    /// picks, worst first ([`worst_of`](crate::report::worst_of)). Returns the cursor of the
    /// next page, `None` after the last.
    ///
    /// This runs inside the shard's loop: its cost must be bounded by the page, not by the
    /// size of the handler's state, beyond one pass over its keys.
    fn report(&self, request: &ReportRequest, page: &mut ReportPage) -> Option<u64> {
        let _ = (request, page);
        None
    }

    /// Called once per loop turn after completions and timers, when send slots may have been
    /// freed: the place to flush output that an earlier [`SendOutcome::QueueFull`] held back.
    fn on_turn(&mut self, ctx: &mut Ctx<'_, Self::Message>) {
        let _ = ctx;
    }

    /// Called once, on the shard's thread, before its first loop turn (its receive is armed):
    /// the place to arm a first timer.
    fn on_start(&mut self, ctx: &mut Ctx<'_, Self::Message>) {
        let _ = ctx;
    }

    /// The engine is draining (SIGTERM in the binary, `EngineHandle::drain`): stop taking new
    /// work and say goodbye (a session host stops admitting sessions and closes every session
    /// with `ShuttingDown`). Called once, on the turn the drain is seen. The shard keeps
    /// turning (datagrams, timers, completions, [`Handler::on_turn`]) until
    /// [`Handler::drained`] says the goodbyes are all handed to send slots, or the drain's
    /// deadline passes; then it stops as on a stop request, waiting for the sends in flight.
    fn on_shutdown(&mut self, ctx: &mut Ctx<'_, Self::Message>) {
        let _ = ctx;
    }

    /// After [`Handler::on_shutdown`]: whether everything the handler has to say is in send
    /// slots (nothing left waiting in its own queues). Checked once per turn while draining;
    /// the default, for handlers with no queues of their own, is at once.
    fn drained(&self) -> bool {
        true
    }
}

/// What a handler can do from inside a callback: send datagrams, message other shards,
/// schedule timers, read the clock.
pub struct Ctx<'a, M> {
    pub(crate) now: Instant,
    pub(crate) shard: usize,
    pub(crate) slots: &'a mut SendSlots,
    pub(crate) timers: &'a mut Timers,
    pub(crate) counters: &'a mut Counters,
    pub(crate) mesh: &'a mut MeshEnd<M>,
    /// The datagram [`Handler::on_datagram`] is being handed, or the whole buffer of those
    /// [`Handler::on_datagrams`] is (`None` in other callbacks).
    pub(crate) received: Option<Received>,
    /// Submits a large batch of staged sends before the turn ends (`None`: only the turn's
    /// own submission, as in tests without a ring).
    pub(crate) submit: Option<SendSubmitter<'a>>,
}

impl<M: Send> Ctx<'_, M> {
    /// The time this loop turn started (read once per turn, after the wait).
    pub fn now(&self) -> Instant {
        self.now
    }

    /// This shard's index (0-based).
    pub fn shard_index(&self) -> usize {
        self.shard
    }

    /// Queues a datagram to `peer` from this shard's socket.
    pub fn send_to(&mut self, peer: SocketAddr, payload: &[u8]) -> SendOutcome {
        self.send_to_tagged(peer, payload, 0)
    }

    /// Like [`Ctx::send_to`], and [`Handler::on_send_complete`] gets `tag` (non-zero) with the
    /// send's completion: how a handler learns that a send really happened.
    pub fn send_to_tagged(&mut self, peer: SocketAddr, payload: &[u8], tag: u64) -> SendOutcome {
        match self.slots.stage(peer, payload, tag) {
            Ok(()) => {
                self.submit_early();
                SendOutcome::Queued
            }
            Err(refused) => self.refused(refused, payload.len()),
        }
    }

    /// Like [`Ctx::send_to`], without copying when `payload` is (part of) the datagram this
    /// [`Handler::on_datagram`] call was handed: the send reads the bytes where the kernel
    /// received them, and their receive buffer goes back to the kernel only when the send
    /// completes (counted as `send_in_place`). An echo or relay of a GRO-coalesced buffer's
    /// datagrams to one destination leaves as one GSO send of the receive buffer itself.
    ///
    /// Copied as [`Ctx::send_to`] does when `payload` lies elsewhere, in any other callback,
    /// or when half the shard's receive buffers are already held by such sends (counted as
    /// `send_in_place_over_cap`: the other half stay for receiving).
    pub fn send_received(&mut self, peer: SocketAddr, payload: &[u8]) -> SendOutcome {
        let Some(received) = self.received else {
            return self.send_to(peer, payload);
        };
        match self.slots.stage_received(peer, &received, payload, 0) {
            Ok(placed) => {
                self.counters.send_in_place += u64::from(placed == Placed::InPlace);
                self.counters.send_in_place_over_cap += u64::from(placed == Placed::CopiedOverCap);
                self.submit_early();
                SendOutcome::Queued
            }
            Err(refused) => self.refused(refused, payload.len()),
        }
    }

    /// Sends every datagram of `datagrams` to `peer`, in order, as [`Ctx::send_received`]
    /// would one by one, but when they are the batch this [`Handler::on_datagrams`] call was
    /// handed (GSO on), each run of up to 64 leaves as one GSO send of the receive buffer that
    /// takes one send slot, with no per-datagram work (counted per datagram as
    /// `send_in_place`). An echo of a coalesced buffer to its sender is one staged send.
    ///
    /// Datagrams this cannot send that way (GSO off or refused, half the receive buffers
    /// lent, no slot or GSO group free, a lone last datagram) go through
    /// [`Ctx::send_received`] one by one, with its copying and counting. Returns
    /// [`SendOutcome::Queued`] when every datagram was queued, otherwise the first refusal
    /// (every refused datagram is counted, as `send_received` counts it).
    pub fn send_datagrams(&mut self, peer: SocketAddr, datagrams: Datagrams<'_>) -> SendOutcome {
        let (bytes, segment) = (datagrams.bytes(), datagrams.segment_size());
        let mut done = 0;
        if let Some(received) = self.received
            && bytes.len() > segment
        {
            done = self
                .slots
                .stage_received_run(peer, &received, bytes, segment);
            self.counters.send_in_place += done.div_ceil(segment) as u64;
            self.submit_early();
        }
        let mut outcome = SendOutcome::Queued;
        for payload in Datagrams::new(&bytes[done..], segment) {
            let sent = self.send_received(peer, payload);
            if outcome == SendOutcome::Queued {
                outcome = sent;
            }
        }
        outcome
    }

    /// Counts a refused send and says why.
    fn refused(&mut self, refused: Refused, len: usize) -> SendOutcome {
        match refused {
            Refused::Full => {
                self.counters.send_queue_full += 1;
                SendOutcome::QueueFull
            }
            Refused::TooLarge { max } => {
                self.counters.send_too_large += 1;
                SendOutcome::TooLarge { len, max }
            }
        }
    }

    /// Number of shards in the engine.
    pub fn shards(&self) -> usize {
        self.mesh.shards()
    }

    /// Sends `msg` to the handler on shard `shard` over the mesh's data lane. Returns at once
    /// with the ring's outcome; a refused message is handed back and counted. A parked target
    /// is woken at the end of this loop turn.
    pub fn send_to_shard(&mut self, shard: usize, msg: M) -> Result<(), MeshSendError<M>> {
        self.mesh.send(shard, Lane::Data, msg)
    }

    /// Like [`Ctx::send_to_shard`] on the control lane: small, never behind data, delivered
    /// before any data message of the same turn. For messages that must not wait.
    pub fn send_control_to_shard(&mut self, shard: usize, msg: M) -> Result<(), MeshSendError<M>> {
        self.mesh.send(shard, Lane::Control, msg)
    }

    /// Records that the current datagram was malformed and dropped (counted as `rejected`).
    /// Handlers call this instead of replying to bad input.
    pub fn reject(&mut self) {
        self.counters.rejected += 1;
    }

    /// Send slots still free this turn: how many more datagrams [`Ctx::send_to`] will accept.
    pub fn send_capacity(&self) -> usize {
        self.slots.free()
    }

    /// A callback that has staged a run of sends has them submitted now, before the turn ends
    /// (`driver/submit.rs`).
    fn submit_early(&mut self) {
        if let Some(s) = &mut self.submit {
            s.maybe_submit(self.slots, self.counters);
        }
    }

    /// Schedules [`Handler::on_timer`] with `token` at `deadline`.
    pub fn set_timer(&mut self, deadline: Instant, token: u64) -> Result<TimerId, TimerError> {
        self.timers.schedule(deadline, token)
    }

    /// Schedules [`Handler::on_timer`] with `token` after `delay` from [`Ctx::now`].
    pub fn set_timer_after(&mut self, delay: Duration, token: u64) -> Result<TimerId, TimerError> {
        self.timers.schedule(self.now + delay, token)
    }

    /// Cancels a timer; returns its token if it had not fired yet.
    pub fn cancel_timer(&mut self, id: TimerId) -> Option<u64> {
        self.timers.cancel(id)
    }
}
