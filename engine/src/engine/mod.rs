//! Starting, watching and stopping the shards.
//!
//! [`Engine::start`] binds one `SO_REUSEPORT` socket per shard (in shard order, on the calling
//! thread), then spawns one thread per shard, named `rw-shard-N`. Each thread pins itself,
//! creates its io_uring, builds its handler with the factory (so handlers need not be `Send`),
//! reports ready, and runs its loop. `start` returns only when every shard is ready, or stops
//! the ones that started and returns the first error.
//!
//! Every shard thread ends with one exit report on the handle's event channel, which also
//! carries tokens from [`EngineNotifier`]s (the binary's signal thread sends signal numbers).
//! [`EngineHandle::wait_event`] blocks on that one channel, so a caller learns at once that a
//! shard stopped, and why, without polling.
//!
//! Stopping sets each shard's stop flag and writes its eventfd (waking it if parked), then
//! collects exit reports under one deadline and joins the threads that reported. A shard that
//! misses the deadline is named and left detached rather than hang the caller. Dropping a
//! handle does the same with [`EngineConfig::stop_timeout`], so an early return never leaves
//! shard threads running or ports bound.
#![forbid(unsafe_code)]

mod error;
mod events;
mod handle;
mod observer;
mod reports;
mod shard_thread;
mod sockets;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use ringwire_shard::driver::{
    SocketError, SocketOptions, SteeringProgram, attach_quic_steering, attach_steering,
    bind_reuseport_group, probe,
};
use ringwire_shard::mesh::{MeshConfig, MeshEnd, SharedWake};
use ringwire_shard::{Handler, ShardConfig, ShardControl};

pub use error::{EngineError, FactoryError};
pub use events::{EngineEvent, EngineNotifier, NotifyError};
pub use handle::{EngineHandle, EngineReport, ShutdownHandle};
pub use observer::{EngineObserver, Worst};
pub use reports::ReportCounters;
pub use shard_thread::thread_name;
pub use sockets::SocketBuffers;

use self::handle::ShardSlot;
use self::shard_thread::{Msg, ShardStart};

/// What a handler factory learns about the shard it builds a handler for.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ShardInfo {
    /// This shard's index.
    pub index: usize,
    /// How many shards the engine runs.
    pub shards: usize,
    /// The core this shard is pinned to, if pinning is on.
    pub core: Option<usize>,
    /// The address every shard's socket is bound to.
    pub local_addr: SocketAddr,
}

/// What the engine needs to start. Build it with [`EngineConfig::unpinned`] and set fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineConfig {
    /// Address to bind (port 0 picks one port for all shards).
    pub bind: SocketAddr,
    /// Core for each shard; its length is the number of shards. `None` leaves a shard unpinned.
    pub cores: Vec<Option<usize>>,
    /// Per-shard tuning.
    pub shard: ShardConfig,
    /// Sizes of the rings between shards.
    pub mesh: MeshConfig,
    /// Attach the classic-BPF reuseport program that steers each session datagram to the shard
    /// named in its connection ID (`docs/PROTOCOL.md` §2). Only meaningful for session apps.
    pub steering: bool,
    /// Which program `steering` attaches: the session protocol's (byte 4) or QUIC's (the
    /// server-chosen destination connection ID's first byte).
    pub steering_program: SteeringProgram,
    /// How long a shard may take to set up before `start` gives up.
    pub start_timeout: Duration,
    /// How long dropping a running [`EngineHandle`] (or a failed start) waits for the shards
    /// to stop before it leaves the late ones detached. Should exceed `shard.drain_timeout`.
    pub stop_timeout: Duration,
    /// Join the `SO_REUSEPORT` group of sockets another process already holds on `bind`'s
    /// port. Off by default: `start` refuses with [`EngineError::PortInUse`], because the
    /// kernel would quietly split the port's traffic between the two (a second instance
    /// started by mistake takes half of it). A hand-over between two instances turns it on.
    pub join_existing: bool,
    /// Send with Don't Fragment and the kernel's path-MTU cache ignored
    /// ([`SocketOptions::mtu_probe`](ringwire_shard::driver::SocketOptions::mtu_probe)), for a
    /// handler that discovers the path MTU itself (QUIC with
    /// [`QuicOptions::mtu_discovery`](crate::quic::QuicOptions::mtu_discovery)). Off by
    /// default.
    pub mtu_probe: bool,
}

impl EngineConfig {
    /// `shards` unpinned shards on `bind` with default tuning.
    pub fn unpinned(bind: SocketAddr, shards: usize) -> Self {
        Self {
            bind,
            cores: vec![None; shards],
            shard: ShardConfig::default(),
            mesh: MeshConfig::default(),
            steering: false,
            steering_program: SteeringProgram::Sessions,
            start_timeout: Duration::from_secs(10),
            stop_timeout: Duration::from_secs(2),
            join_existing: false,
            mtu_probe: false,
        }
    }
}

/// Starts engines.
#[derive(Debug)]
pub struct Engine;

impl Engine {
    /// Starts every shard and returns once all are running. `factory` runs on each shard's
    /// thread to build that shard's handler.
    pub fn start<F, H>(config: &EngineConfig, factory: F) -> Result<EngineHandle, EngineError>
    where
        F: Fn(ShardInfo) -> H + Send + Sync + 'static,
        H: Handler + 'static,
    {
        Self::try_start(config, move |info| {
            Ok::<H, std::convert::Infallible>(factory(info))
        })
    }

    /// Like [`Engine::start`] with a factory that may fail; its error stops the start and is
    /// returned as [`EngineError::Handler`], kept whole as the source.
    pub fn try_start<F, H, E>(
        config: &EngineConfig,
        factory: F,
    ) -> Result<EngineHandle, EngineError>
    where
        F: Fn(ShardInfo) -> Result<H, E> + Send + Sync + 'static,
        H: Handler + 'static,
        E: Into<FactoryError>,
    {
        let shards = config.cores.len();
        if shards == 0 {
            return Err(EngineError::NoShards);
        }
        let probe = probe()?;
        if !config.join_existing {
            match sockets::port_held(config.bind) {
                Ok(false) => {}
                Ok(true) => return Err(EngineError::PortInUse { addr: config.bind }),
                Err(source) => {
                    return Err(EngineError::Socket(SocketError::Bind {
                        addr: config.bind,
                        source,
                    }));
                }
            }
        }
        let opts = SocketOptions {
            recv_buffer: config.shard.socket_recv_buffer,
            send_buffer: config.shard.socket_send_buffer,
            mtu_probe: config.mtu_probe,
        };
        let sockets = bind_reuseport_group(config.bind, shards, opts)?;
        let socket_buffers = SocketBuffers::read_back(
            &sockets[0],
            config.shard.socket_recv_buffer,
            config.shard.socket_send_buffer,
        );
        if config.steering && shards > 1 {
            let n = u16::try_from(shards).map_err(|_| EngineError::Steering {
                source: std::io::Error::other("more than 65535 shards"),
            })?;
            match config.steering_program {
                SteeringProgram::Quic => attach_quic_steering(&sockets[0], n),
                _ => attach_steering(&sockets[0], n),
            }
            .map_err(|source| EngineError::Steering { source })?;
        }
        let local_addr = sockets[0].local_addr().map_err(|e| {
            EngineError::Socket(SocketError::Bind {
                addr: config.bind,
                source: e,
            })
        })?;
        // Room for every shard's two messages (ready, exit) and the notifications the
        // notifiers may queue: a shard thread's send never blocks.
        let (events_tx, events) = mpsc::sync_channel(2 * shards + EngineNotifier::CAPACITY);
        let mut slots = Vec::with_capacity(shards);
        for index in 0..shards {
            let control = ShardControl::new(index, shards)?;
            slots.push(ShardSlot::new(Arc::new(control)));
        }
        let mut handle = EngineHandle::new(
            local_addr,
            probe,
            slots,
            events,
            EngineNotifier::new(events_tx.clone()),
            config,
            socket_buffers,
        );
        let mut meshes: Vec<MeshEnd<H::Message>> = if shards == 1 {
            vec![MeshEnd::solo(0)]
        } else {
            let wakers: Vec<SharedWake> = handle
                .shards
                .iter()
                .map(|s| Arc::clone(&s.control) as SharedWake)
                .collect();
            MeshEnd::build(config.mesh, &wakers)
        };
        let factory = Arc::new(factory);
        for (index, (socket, mesh)) in sockets.into_iter().zip(meshes.drain(..)).enumerate() {
            let start = ShardStart {
                info: ShardInfo {
                    index,
                    shards,
                    core: config.cores[index],
                    local_addr,
                },
                control: Arc::clone(&handle.shards[index].control),
                socket,
                mesh,
                config: config.shard.clone(),
                factory: Arc::clone(&factory),
                events: events_tx.clone(),
            };
            match shard_thread::spawn(start) {
                Ok(t) => handle.shards[index].thread = Some(t),
                Err(source) => {
                    handle.abort();
                    return Err(EngineError::Spawn {
                        shard: index,
                        source,
                    });
                }
            }
        }
        drop(events_tx);
        await_ready(&mut handle, config.start_timeout)?;
        Ok(handle)
    }
}

/// Waits until every shard reported ready; on a failure or the deadline, stops every shard
/// and returns the first failure (or the shards that were late).
fn await_ready(handle: &mut EngineHandle, deadline: Duration) -> Result<(), EngineError> {
    let end = Instant::now() + deadline;
    let mut ready = vec![false; handle.shards.len()];
    while ready.iter().any(|r| !r) {
        let left = end.saturating_duration_since(Instant::now());
        match handle.events.recv_timeout(left) {
            Ok(Msg::Ready(i)) => ready[i] = true,
            Ok(Msg::Exited(i, exit)) => match *exit {
                // A shard only returns `Ok` after a stop request, and no one can ask for one
                // yet.
                Ok(exit) => handle.shards[i].exit = Some(Ok(exit)),
                Err(e) => {
                    // Its exit report was its thread's last act.
                    if let Some(thread) = handle.shards[i].thread.take() {
                        let _ = thread.join();
                    }
                    handle.abort();
                    return Err(e);
                }
            },
            Ok(Msg::Notified(_)) => handle.notifier.taken(),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                let late = (0..ready.len()).filter(|i| !ready[*i]).collect();
                handle.abort();
                return Err(EngineError::Timeout {
                    shards: late,
                    deadline,
                });
            }
        }
    }
    Ok(())
}
