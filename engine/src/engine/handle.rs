//! A running engine: what it exposes, and how it stops (asked, waited for, or dropped).
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ringwire_shard::driver::ProbeReport;
use ringwire_shard::{ShardControl, ShardExit, ShardStats};

use super::SocketBuffers;
use super::error::EngineError;
use super::events::EngineNotifier;
use super::observer::EngineObserver;
use super::shard_thread::{Msg, thread_name};

/// A running engine. Dropping it stops every shard and joins their threads (waiting at most
/// [`EngineConfig::stop_timeout`](super::EngineConfig::stop_timeout)); call
/// [`EngineHandle::shutdown`] to choose the deadline and get the final counters.
pub struct EngineHandle {
    local_addr: SocketAddr,
    probe: ProbeReport,
    pub(super) shards: Vec<ShardSlot>,
    /// Shard exits, ready reports and notifications, in the order they happened.
    pub(super) events: Receiver<Msg>,
    pub(super) notifier: EngineNotifier,
    stop_timeout: Duration,
    /// How long a stopping shard may take for its operations in flight (`shard.drain_timeout`):
    /// a graceful drain leaves this much of its deadline for the stop that ends it.
    stop_allowance: Duration,
    /// The handle's own report requester.
    pub(super) reporter: EngineObserver,
    socket_buffers: SocketBuffers,
}

/// The handle's view of one shard.
pub(super) struct ShardSlot {
    pub control: Arc<ShardControl>,
    /// `None` before the spawn, and after the join or after leaving the thread detached.
    pub thread: Option<JoinHandle<()>>,
    /// Set when the shard's exit report arrives.
    pub exit: Option<Result<ShardExit, EngineError>>,
    /// Whether [`EngineHandle::wait_event`] handed the exit to the caller.
    pub seen: bool,
}

impl ShardSlot {
    pub fn new(control: Arc<ShardControl>) -> Self {
        Self {
            control,
            thread: None,
            exit: None,
            seen: false,
        }
    }

    /// Whether the thread runs and has not reported its exit.
    pub fn running(&self) -> bool {
        self.thread.is_some() && self.exit.is_none()
    }
}

/// Every shard's exit, in shard order.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineReport {
    /// Each shard's final counters and whether it drained.
    pub shards: Vec<ShardExit>,
}

impl EngineReport {
    /// Counters summed over every shard.
    pub fn total(&self) -> ShardStats {
        ShardStats::sum(self.shards.iter().map(|s| &s.stats))
    }

    /// Whether a graceful drain ended every shard with its handler's goodbyes all sent
    /// ([`ShardExit::graceful`]).
    pub fn drained_gracefully(&self) -> bool {
        self.shards.iter().all(|s| s.graceful == Some(true))
    }
}

/// A cloneable, `Send` handle that asks every shard to stop or to drain (from a signal thread,
/// say).
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    controls: Vec<Arc<ShardControl>>,
    stop_allowance: Duration,
}

impl ShutdownHandle {
    /// Asks every shard to stop; returns at once.
    pub fn request(&self) {
        for c in &self.controls {
            if let Err(e) = c.request_stop() {
                tracing::error!(shard = c.index(), "cannot wake shard to stop it: {e}");
            }
        }
    }

    /// Asks every shard to drain gracefully and stop on its own by `deadline`; returns at
    /// once. Each handler is told ([`Handler::on_shutdown`](ringwire_shard::Handler::on_shutdown):
    /// a session host stops admitting sessions and closes every session with
    /// `ShuttingDown`), and its shard stops once the handler's goodbyes are handed to send
    /// slots, or at `deadline` less the time a stopping shard may take for its operations in
    /// flight (`shard.drain_timeout`, at most half of what is left), so that the stop fits
    /// too. Wait with [`EngineHandle::wait`] or [`EngineHandle::wait_event`].
    pub fn drain(&self, deadline: Instant) {
        let left = deadline.saturating_duration_since(Instant::now());
        let goodbyes_by = deadline - self.stop_allowance.min(left / 2);
        for c in &self.controls {
            if let Err(e) = c.request_drain(goodbyes_by) {
                tracing::error!(shard = c.index(), "cannot wake shard to drain it: {e}");
            }
        }
    }
}

impl EngineHandle {
    pub(super) fn new(
        local_addr: SocketAddr,
        probe: ProbeReport,
        shards: Vec<ShardSlot>,
        events: Receiver<Msg>,
        notifier: EngineNotifier,
        config: &super::EngineConfig,
        socket_buffers: SocketBuffers,
    ) -> Self {
        let reporter = EngineObserver::new(shards.iter().map(|s| Arc::clone(&s.control)).collect());
        Self {
            local_addr,
            probe,
            shards,
            events,
            notifier,
            stop_timeout: config.stop_timeout,
            stop_allowance: config.shard.drain_timeout,
            reporter,
            socket_buffers,
        }
    }

    /// The socket buffer sizes the kernel granted the shards' sockets (read back after asking).
    pub fn socket_buffers(&self) -> SocketBuffers {
        self.socket_buffers
    }

    /// The address every shard is bound to (with the real port if 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    /// What the start-up probe found.
    pub fn probe_report(&self) -> &ProbeReport {
        &self.probe
    }

    /// Each shard's most recently published counters.
    pub fn stats(&self) -> Vec<ShardStats> {
        self.shards.iter().map(|s| s.control.stats()).collect()
    }

    /// Each shard thread's Linux thread id (for `/proc/self/task/TID`).
    pub fn thread_ids(&self) -> Vec<u64> {
        self.shards.iter().map(|s| s.control.thread_id()).collect()
    }

    /// A handle that can stop the engine from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            controls: self.shards.iter().map(|s| Arc::clone(&s.control)).collect(),
            stop_allowance: self.stop_allowance,
        }
    }

    /// Drains gracefully: asks every shard to drain by `now + timeout`
    /// ([`ShutdownHandle::drain`]) and waits for them to stop, returning what
    /// [`EngineHandle::shutdown`] returns. [`EngineReport::drained_gracefully`] says whether
    /// every handler finished its goodbyes in time; shards still running at the deadline are
    /// named in [`EngineError::Timeout`] and left detached.
    pub fn drain(self, timeout: Duration) -> Result<EngineReport, EngineError> {
        self.shutdown_handle().drain(Instant::now() + timeout);
        self.wait(timeout)
    }

    /// After a shard failed on its own (its [`EngineEvent::ShardStopped`](super::EngineEvent)
    /// carried the error, a handler's panic say): drains the shards still running by
    /// `now + timeout`, as [`ShutdownHandle::drain`] does (each handler says goodbye: a session
    /// host closes its sessions with `ShuttingDown`, so their peers learn at once rather than
    /// by their idle timeout), and waits for them. Returns the exits of the shards that
    /// stopped cleanly, in shard order (a failed shard has none: its error came with its
    /// event), or [`EngineError::Timeout`] naming the shards still running at the deadline
    /// (left detached).
    pub fn drain_survivors(mut self, timeout: Duration) -> Result<EngineReport, EngineError> {
        let goodbyes_by = Instant::now() + timeout - self.stop_allowance.min(timeout / 2);
        for slot in self.shards.iter().filter(|s| s.running()) {
            if let Err(e) = slot.control.request_drain(goodbyes_by) {
                tracing::error!(
                    shard = slot.control.index(),
                    "cannot wake shard to drain it: {e}"
                );
            }
        }
        let late = self.await_exits(timeout);
        if !late.is_empty() {
            return Err(EngineError::Timeout {
                shards: late,
                deadline: timeout,
            });
        }
        let mut shards = Vec::with_capacity(self.shards.len());
        for (i, slot) in self.shards.iter_mut().enumerate() {
            match slot.exit.take() {
                Some(Ok(exit)) => shards.push(exit),
                // A second failure, during the drain: logged, as nobody was handed it.
                Some(Err(e)) if !slot.seen => {
                    tracing::error!(shard = i, "shard failed while the others drained: {e}");
                }
                _ => {}
            }
        }
        Ok(EngineReport { shards })
    }

    /// Stops every shard and waits at most `deadline` for all of them, returning their final
    /// counters, or the first shard's failure (in shard order). Shards that miss the deadline
    /// are named in [`EngineError::Timeout`] and left detached.
    pub fn shutdown(mut self, deadline: Duration) -> Result<EngineReport, EngineError> {
        self.shutdown_handle().request();
        let late = self.await_exits(deadline);
        self.final_report(late, deadline)
    }

    /// Waits, without asking them to stop, until every shard has stopped (after a
    /// [`ShutdownHandle::request`] elsewhere, or shard failures), or `deadline` passes. Returns
    /// what [`EngineHandle::shutdown`] returns.
    pub fn wait(mut self, deadline: Duration) -> Result<EngineReport, EngineError> {
        let late = self.await_exits(deadline);
        self.final_report(late, deadline)
    }

    /// Stops every shard after a failed start, leaving late ones detached (and logged).
    pub(super) fn abort(&mut self) {
        self.shutdown_handle().request();
        let late = self.await_exits(self.stop_timeout);
        log_late("engine start failed", &late, self.stop_timeout);
    }

    /// Records what one event says about the shards.
    pub(super) fn record(&mut self, msg: Msg) {
        match msg {
            Msg::Ready(_) => {}
            Msg::Exited(i, exit) => self.shards[i].exit = Some(*exit),
            Msg::Notified(_) => self.notifier.taken(),
        }
    }

    /// Collects exit reports until every running shard has reported or `deadline` passes,
    /// joins the threads that reported, and detaches the rest. Returns the detached shards.
    fn await_exits(&mut self, deadline: Duration) -> Vec<usize> {
        let end = Instant::now() + deadline;
        while self.shards.iter().any(ShardSlot::running) {
            let left = end.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(msg) => self.record(msg),
                Err(_) => break,
            }
        }
        let mut late = Vec::new();
        for (i, slot) in self.shards.iter_mut().enumerate() {
            let Some(thread) = slot.thread.take() else {
                continue;
            };
            if slot.exit.is_some() {
                // Its exit report was the thread's last act: the join waits only for the
                // thread to return. Panics were caught before the report.
                let _ = thread.join();
            } else {
                // Dropping the join handle detaches the thread.
                late.push(i);
            }
        }
        late
    }

    fn final_report(
        &mut self,
        late: Vec<usize>,
        deadline: Duration,
    ) -> Result<EngineReport, EngineError> {
        if !late.is_empty() {
            return Err(EngineError::Timeout {
                shards: late,
                deadline,
            });
        }
        let mut shards = Vec::with_capacity(self.shards.len());
        for (i, slot) in self.shards.iter_mut().enumerate() {
            match slot.exit.take() {
                Some(exit) => shards.push(exit?),
                // Every shard was spawned and none is late, so every one reported.
                None => {
                    return Err(EngineError::Timeout {
                        shards: vec![i],
                        deadline,
                    });
                }
            }
        }
        Ok(EngineReport { shards })
    }
}

/// Dropping a running engine (an early `?` return, say) stops it: no shard thread keeps
/// running and no socket stays bound. Waits at most `EngineConfig::stop_timeout`; shards that
/// miss it are named in the log and left detached. Failures nobody saw are logged too.
impl Drop for EngineHandle {
    fn drop(&mut self) {
        if self.shards.iter().all(|s| s.thread.is_none()) {
            return;
        }
        self.shutdown_handle().request();
        let late = self.await_exits(self.stop_timeout);
        log_late("engine handle dropped", &late, self.stop_timeout);
        for (shard, slot) in self.shards.iter().enumerate() {
            if let Some(Err(e)) = &slot.exit
                && !slot.seen
            {
                tracing::warn!(shard, "engine handle dropped after a shard failed: {e}");
            }
        }
    }
}

fn log_late(context: &str, late: &[usize], deadline: Duration) {
    if !late.is_empty() {
        let threads: Vec<String> = late.iter().map(|s| thread_name(*s)).collect();
        tracing::error!(
            shards = ?late,
            threads = %threads.join(", "),
            "{context}: shards did not stop within {deadline:?}; their threads are left detached"
        );
    }
}
