//! Starting, watching and stopping the shards.
//!
//! [`Engine::start`] binds one `SO_REUSEPORT` socket per shard (in shard order, on the calling
//! thread), then spawns one thread per shard. Each thread pins itself, creates its io_uring,
//! builds its handler with the factory (so handlers need not be `Send`), reports ready, and runs
//! its loop. `start` returns only when every shard is ready, or stops the ones that started and
//! returns the first error.
//!
//! Shutdown sets each shard's stop flag and writes its eventfd (waking it if parked), then
//! collects each shard's exit over a channel with one overall deadline, and joins the threads
//! that reported. A shard that misses the deadline is named in the error and left detached
//! rather than hanging the caller.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ringwire_shard::driver::{
    ProbeReport, SetupError, SocketError, SocketOptions, attach_steering, bind_reuseport_group,
    probe,
};
use ringwire_shard::mesh::{MeshConfig, MeshEnd, SharedWake};
use ringwire_shard::{
    Handler, Shard, ShardConfig, ShardControl, ShardError, ShardExit, ShardStats,
};

use crate::cores;

/// What a handler factory learns about the shard it builds a handler for.
#[derive(Debug, Clone, Copy)]
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

/// What the engine needs to start.
#[derive(Debug, Clone)]
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
    /// How long a shard may take to set up before `start` gives up.
    pub start_timeout: Duration,
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
            start_timeout: Duration::from_secs(10),
        }
    }
}

/// Why the engine could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No shards were asked for.
    #[error("an engine needs at least one shard")]
    NoShards,
    /// io_uring is missing, disabled, or lacks a feature.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The sockets could not be bound.
    #[error(transparent)]
    Socket(#[from] SocketError),
    /// The steering program could not be attached.
    #[error("cannot attach the reuseport steering program: {source}")]
    Steering {
        /// What the kernel said.
        #[source]
        source: std::io::Error,
    },
    /// A shard failed to set up or failed while running.
    #[error("shard {shard}: {source}")]
    Shard {
        /// Which shard.
        shard: usize,
        /// What went wrong.
        #[source]
        source: ShardError,
    },
    /// A shard thread could not be pinned to its core.
    #[error("shard {shard}: cannot pin to CPU {core}")]
    Pin {
        /// Which shard.
        shard: usize,
        /// The CPU asked for.
        core: usize,
    },
    /// A shard thread could not be spawned.
    #[error("cannot spawn shard {shard}'s thread: {source}")]
    Spawn {
        /// Which shard.
        shard: usize,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The handler factory failed on a shard.
    #[error("shard {shard}: cannot build its handler: {message}")]
    Handler {
        /// Which shard.
        shard: usize,
        /// The factory's error.
        message: String,
    },
    /// A shard thread panicked.
    #[error("shard {shard} panicked")]
    Panicked {
        /// Which shard.
        shard: usize,
    },
    /// Some shards did not report ready or did not stop within the deadline.
    #[error("shards {shards:?} did not respond within {deadline:?}")]
    Timeout {
        /// The shards that missed it.
        shards: Vec<usize>,
        /// The deadline.
        deadline: Duration,
    },
}

// One report per shard start and exit: the size of the exit's counters costs nothing here.
#[allow(clippy::large_enum_variant)]
enum Report {
    Ready(usize),
    Failed(usize, EngineError),
    Exited(usize, Result<ShardExit, ShardError>),
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
        Self::try_start(config, move |info| Ok::<H, String>(factory(info)))
    }

    /// Like [`Engine::start`] with a factory that may fail; its error stops the start and is
    /// returned as [`EngineError::Handler`].
    pub fn try_start<F, H, E>(
        config: &EngineConfig,
        factory: F,
    ) -> Result<EngineHandle, EngineError>
    where
        F: Fn(ShardInfo) -> Result<H, E> + Send + Sync + 'static,
        H: Handler + 'static,
        E: std::fmt::Display,
    {
        let shards = config.cores.len();
        if shards == 0 {
            return Err(EngineError::NoShards);
        }
        let probe = probe()?;
        let opts = SocketOptions {
            recv_buffer: config.shard.socket_recv_buffer,
            send_buffer: config.shard.socket_send_buffer,
        };
        let sockets = bind_reuseport_group(config.bind, shards, opts)?;
        if config.steering && shards > 1 {
            let n = u16::try_from(shards).map_err(|_| EngineError::Steering {
                source: std::io::Error::other("more than 65535 shards"),
            })?;
            attach_steering(&sockets[0], n).map_err(|source| EngineError::Steering { source })?;
        }
        let local_addr = sockets[0].local_addr().map_err(|e| {
            EngineError::Socket(SocketError::Bind {
                addr: config.bind,
                source: e,
            })
        })?;
        let factory = Arc::new(factory);
        let (tx, rx) = mpsc::channel();
        let mut handle = EngineHandle {
            local_addr,
            controls: Vec::with_capacity(shards),
            threads: (0..shards).map(|_| None).collect(),
            reports: rx,
            reports_rx: Vec::with_capacity(shards),
            exits: (0..shards).map(|_| None).collect(),
            probe,
        };
        for index in 0..shards {
            let (control, reports) = ShardControl::new(index, shards)?;
            handle.controls.push(Arc::new(control));
            handle.reports_rx.push(reports);
        }
        let mut meshes: Vec<MeshEnd<H::Message>> = if shards == 1 {
            vec![MeshEnd::solo(0)]
        } else {
            let wakers: Vec<SharedWake> = handle
                .controls
                .iter()
                .map(|c| Arc::clone(c) as SharedWake)
                .collect();
            MeshEnd::build(config.mesh, &wakers)
        };
        for (index, (socket, mesh)) in sockets.into_iter().zip(meshes.drain(..)).enumerate() {
            let control = Arc::clone(&handle.controls[index]);
            let info = ShardInfo {
                index,
                shards,
                core: config.cores[index],
                local_addr,
            };
            let shard_config = config.shard.clone();
            let factory = Arc::clone(&factory);
            let tx = tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("ringwire-shard-{index}"))
                .spawn(move || {
                    shard_main(info, control, socket, mesh, &shard_config, &*factory, &tx);
                });
            match spawned {
                Ok(t) => handle.threads[index] = Some(t),
                Err(source) => {
                    handle.abort(config.start_timeout);
                    return Err(EngineError::Spawn {
                        shard: index,
                        source,
                    });
                }
            }
        }
        drop(tx);
        let deadline = Instant::now() + config.start_timeout;
        let mut ready = vec![false; shards];
        while ready.iter().any(|r| !r) {
            let left = deadline.saturating_duration_since(Instant::now());
            match handle.reports.recv_timeout(left) {
                Ok(Report::Ready(i)) => ready[i] = true,
                Ok(Report::Failed(_, e)) => {
                    handle.abort(config.start_timeout);
                    return Err(e);
                }
                Ok(Report::Exited(i, result)) => {
                    handle.abort(config.start_timeout);
                    return Err(match result {
                        Err(source) => EngineError::Shard { shard: i, source },
                        Ok(_) => EngineError::Panicked { shard: i },
                    });
                }
                Err(_) => {
                    let late = (0..shards).filter(|i| !ready[*i]).collect();
                    handle.abort(config.start_timeout);
                    return Err(EngineError::Timeout {
                        shards: late,
                        deadline: config.start_timeout,
                    });
                }
            }
        }
        Ok(handle)
    }
}

/// Sends the shard's exit on drop, so a panicking handler still reports (as `Panicked`).
struct ExitGuard<'a> {
    index: usize,
    tx: &'a Sender<Report>,
    sent: bool,
}

impl Drop for ExitGuard<'_> {
    fn drop(&mut self) {
        if !self.sent {
            let _ = self.tx.send(Report::Failed(
                self.index,
                EngineError::Panicked { shard: self.index },
            ));
        }
    }
}

fn shard_main<F, H, E>(
    info: ShardInfo,
    control: Arc<ShardControl>,
    socket: std::net::UdpSocket,
    mesh: MeshEnd<H::Message>,
    config: &ShardConfig,
    factory: &F,
    tx: &Sender<Report>,
) where
    F: Fn(ShardInfo) -> Result<H, E>,
    H: Handler,
    E: std::fmt::Display,
{
    let mut guard = ExitGuard {
        index: info.index,
        tx,
        sent: false,
    };
    let mut fail = |error: EngineError| {
        guard.sent = true;
        let _ = tx.send(Report::Failed(info.index, error));
    };
    let shard = info.index;
    if let Some(core) = info.core
        && !cores::pin_current(core)
    {
        return fail(EngineError::Pin { shard, core });
    }
    let ring = match Shard::new(control, socket, config) {
        Ok(s) => s,
        Err(source) => return fail(EngineError::Shard { shard, source }),
    };
    let mut handler = match factory(info) {
        Ok(h) => h,
        Err(e) => {
            return fail(EngineError::Handler {
                shard,
                message: e.to_string(),
            });
        }
    };
    let _ = tx.send(Report::Ready(info.index));
    let result = ring.run(&mut handler, mesh);
    guard.sent = true;
    let _ = tx.send(Report::Exited(info.index, result));
}

/// A running engine.
pub struct EngineHandle {
    local_addr: SocketAddr,
    controls: Vec<Arc<ShardControl>>,
    threads: Vec<Option<JoinHandle<()>>>,
    reports: Receiver<Report>,
    reports_rx: Vec<Receiver<String>>,
    exits: Vec<Option<Result<ShardExit, EngineError>>>,
    probe: ProbeReport,
}

/// Every shard's exit, in shard order.
#[derive(Debug, Clone)]
pub struct EngineReport {
    /// Each shard's final counters and whether it drained.
    pub shards: Vec<ShardExit>,
}

impl EngineReport {
    /// Counters summed over every shard.
    pub fn total(&self) -> ShardStats {
        ShardStats::sum(self.shards.iter().map(|s| &s.stats))
    }
}

/// A cloneable, `Send` handle that asks every shard to stop (from a signal thread, say).
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    controls: Vec<Arc<ShardControl>>,
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
}

impl EngineHandle {
    /// The address every shard is bound to (with the real port if 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.controls.len()
    }

    /// What the start-up probe found.
    pub fn probe_report(&self) -> &ProbeReport {
        &self.probe
    }

    /// Each shard's most recently published counters.
    pub fn stats(&self) -> Vec<ShardStats> {
        self.controls.iter().map(|c| c.stats()).collect()
    }

    /// Asks every shard for its handler's report ([`Handler::report`]: for sessions, each
    /// session's flight recorder) and waits up to `timeout` for each. `None` for a shard that
    /// did not answer in time (stopped or busy).
    pub fn reports(&self, timeout: Duration) -> Vec<Option<String>> {
        for c in &self.controls {
            let _ = c.request_report();
        }
        let end = Instant::now() + timeout;
        self.reports_rx
            .iter()
            .map(|rx| {
                rx.recv_timeout(end.saturating_duration_since(Instant::now()))
                    .ok()
            })
            .collect()
    }

    /// Each shard thread's Linux thread id (for `/proc/self/task/TID`).
    pub fn thread_ids(&self) -> Vec<u64> {
        self.controls.iter().map(|c| c.thread_id()).collect()
    }

    /// A handle that can stop the engine from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            controls: self.controls.clone(),
        }
    }

    /// Stops every shard and waits at most `deadline` for all of them, returning their final
    /// counters. Shards that miss the deadline are named in [`EngineError::Timeout`].
    pub fn shutdown(mut self, deadline: Duration) -> Result<EngineReport, EngineError> {
        self.shutdown_handle().request();
        self.collect(deadline)
    }

    /// Waits, without asking them to stop, until every shard has stopped (after a
    /// [`ShutdownHandle::request`] elsewhere, or a shard failure), or `deadline` passes.
    pub fn wait(mut self, deadline: Duration) -> Result<EngineReport, EngineError> {
        self.collect(deadline)
    }

    /// Waits up to `timeout` for the first shard to stop on its own (a failure, or a stop
    /// requested elsewhere). Returns true if one did.
    pub fn any_stopped(&mut self, timeout: Duration) -> bool {
        match self.reports.recv_timeout(timeout) {
            Ok(report) => {
                self.record(report);
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        }
    }

    fn record(&mut self, report: Report) {
        match report {
            Report::Ready(_) => {}
            Report::Failed(i, e) => self.exits[i] = Some(Err(e)),
            Report::Exited(i, r) => {
                self.exits[i] = Some(r.map_err(|source| EngineError::Shard { shard: i, source }));
            }
        }
    }

    fn collect(&mut self, deadline: Duration) -> Result<EngineReport, EngineError> {
        let end = Instant::now() + deadline;
        while self.exits.iter().any(Option::is_none) {
            let left = end.saturating_duration_since(Instant::now());
            match self.reports.recv_timeout(left) {
                Ok(report) => self.record(report),
                Err(_) => break,
            }
        }
        let late: Vec<usize> = (0..self.exits.len())
            .filter(|i| self.exits[*i].is_none())
            .collect();
        for (i, t) in self.threads.iter_mut().enumerate() {
            if self.exits[i].is_some()
                && let Some(t) = t.take()
                && t.join().is_err()
            {
                self.exits[i] = Some(Err(EngineError::Panicked { shard: i }));
            }
        }
        if !late.is_empty() {
            return Err(EngineError::Timeout {
                shards: late,
                deadline,
            });
        }
        let mut shards = Vec::with_capacity(self.exits.len());
        for exit in self.exits.iter_mut().filter_map(Option::take) {
            shards.push(exit?);
        }
        Ok(EngineReport { shards })
    }

    /// Stops whatever started, during a failed start.
    fn abort(&mut self, deadline: Duration) {
        self.shutdown_handle().request();
        let _ = self.collect(deadline);
    }
}
