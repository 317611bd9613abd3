//! One shard's thread, from spawn to its exit report.
//!
//! The thread pins itself, builds its ring and its handler, reports ready, and runs the loop.
//! Whatever ends it (a stop request, an error, or a panic anywhere in it, the factory
//! included), its last act is one exit report on the engine's event channel, sent after
//! everything it owned (socket, ring, handler) is dropped: when the engine hears of the exit,
//! the shard's port is no longer held by it.
#![forbid(unsafe_code)]

use std::any::Any;
use std::net::UdpSocket;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::mpsc::SyncSender;
use std::thread::JoinHandle;

use ringwire_shard::mesh::MeshEnd;
use ringwire_shard::{Handler, Shard, ShardConfig, ShardControl, ShardExit};

use super::ShardInfo;
use super::error::{EngineError, FactoryError};
use crate::cores;

/// What travels to the engine handle on its one event channel.
#[derive(Debug)]
pub(super) enum Msg {
    /// The shard built its ring and handler and is entering its loop.
    Ready(usize),
    /// The shard's thread is ending: its final counters after a requested stop, or why not.
    /// (Boxed: channel slots are as large as the largest message.)
    Exited(usize, Box<Result<ShardExit, EngineError>>),
    /// A token from an [`EngineNotifier`](super::EngineNotifier).
    Notified(u64),
}

/// The name of shard `index`'s thread: at most 15 bytes (Linux truncates longer names) up to
/// shard 999999, so every shard is told apart in `top -H` and `/proc`.
pub fn thread_name(index: usize) -> String {
    format!("rw-shard-{index}")
}

/// Everything a shard's thread starts with.
pub(super) struct ShardStart<F, M> {
    pub info: ShardInfo,
    pub control: Arc<ShardControl>,
    pub socket: UdpSocket,
    pub mesh: MeshEnd<M>,
    pub config: ShardConfig,
    pub factory: Arc<F>,
    pub events: SyncSender<Msg>,
}

/// Spawns the shard's thread, named [`thread_name`].
pub(super) fn spawn<F, H, E>(start: ShardStart<F, H::Message>) -> std::io::Result<JoinHandle<()>>
where
    F: Fn(ShardInfo) -> Result<H, E> + Send + Sync + 'static,
    H: Handler + 'static,
    E: Into<FactoryError>,
{
    std::thread::Builder::new()
        .name(thread_name(start.info.index))
        .spawn(move || run(start))
}

fn run<F, H, E>(start: ShardStart<F, H::Message>)
where
    F: Fn(ShardInfo) -> Result<H, E>,
    H: Handler,
    E: Into<FactoryError>,
{
    let shard = start.info.index;
    let events = start.events.clone();
    let control = Arc::clone(&start.control);
    // Unwinding drops the shard and handler; nothing of theirs is used afterwards.
    let exit = panic::catch_unwind(AssertUnwindSafe(move || shard_main(start))).unwrap_or_else(
        |payload| {
            Err(EngineError::Panicked {
                shard,
                message: panic_message(payload.as_ref()),
            })
        },
    );
    // Report requests from now on are refused rather than left waiting for a turn.
    control.mark_exited();
    // The channel has room for every shard's two messages, so this never blocks; it fails
    // only if the engine handle is gone, and then nobody is listening.
    let _ = events.send(Msg::Exited(shard, Box::new(exit)));
}

fn shard_main<F, H, E>(start: ShardStart<F, H::Message>) -> Result<ShardExit, EngineError>
where
    F: Fn(ShardInfo) -> Result<H, E>,
    H: Handler,
    E: Into<FactoryError>,
{
    let shard = start.info.index;
    if let Some(core) = start.info.core
        && !cores::pin_current(core)
    {
        return Err(EngineError::Pin { shard, core });
    }
    let ring = Shard::new(Arc::clone(&start.control), start.socket, &start.config)
        .map_err(|source| EngineError::Shard { shard, source })?;
    let mut handler = (start.factory)(start.info).map_err(|e| EngineError::Handler {
        shard,
        source: e.into(),
    })?;
    let _ = start.events.send(Msg::Ready(shard));
    ring.run(&mut handler, start.mesh)
        .map_err(|source| EngineError::Shard { shard, source })
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic payload that is not a string)".to_string()
    }
}
