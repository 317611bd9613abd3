//! Why an engine could not start, or a shard stopped.
#![forbid(unsafe_code)]

use std::time::Duration;

use ringwire_shard::ShardError;
use ringwire_shard::driver::{SetupError, SocketError};

use super::shard_thread::thread_name;

/// What a handler factory may fail with: any error, kept whole as the source.
pub type FactoryError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why the engine could not start, or a shard stopped on its own.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// Another socket already holds the address and port (another process, most likely a
    /// second instance), and [`EngineConfig::join_existing`](super::EngineConfig) is off.
    #[error(
        "{addr} is already in use by another socket (another ringwire instance?): refusing to \
         join its SO_REUSEPORT group, where the kernel would split the port's traffic between \
         the two; stop the other process, choose another port, or pass --join-existing \
         (EngineConfig::join_existing) to share it on purpose"
    )]
    PortInUse {
        /// The address asked for.
        addr: std::net::SocketAddr,
    },
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
    #[error("shard {shard}: cannot build its handler: {source}")]
    Handler {
        /// Which shard.
        shard: usize,
        /// The factory's error.
        #[source]
        source: FactoryError,
    },
    /// A shard's thread panicked (in its handler, or in the factory).
    #[error("shard {shard} panicked: {message}")]
    Panicked {
        /// Which shard.
        shard: usize,
        /// The panic's message.
        message: String,
    },
    /// Some shards did not report ready, or did not stop, within the deadline. Their threads
    /// were left detached rather than hang the caller.
    #[error("shards {shards:?} (threads {}) did not respond within {deadline:?}", names(.shards))]
    Timeout {
        /// The shards that missed it.
        shards: Vec<usize>,
        /// The deadline.
        deadline: Duration,
    },
}

impl EngineError {
    /// The io_uring set-up failure inside this error, if it is one (at the start-up probe, or
    /// a shard's own ring).
    pub fn setup_error(&self) -> Option<&SetupError> {
        match self {
            Self::Setup(e)
            | Self::Shard {
                source: ShardError::Setup(e),
                ..
            } => Some(e),
            _ => None,
        }
    }

    /// The shard this error is about, if it is about one.
    pub fn shard(&self) -> Option<usize> {
        match self {
            Self::Shard { shard, .. }
            | Self::Pin { shard, .. }
            | Self::Spawn { shard, .. }
            | Self::Handler { shard, .. }
            | Self::Panicked { shard, .. } => Some(*shard),
            Self::Timeout { shards, .. } if shards.len() == 1 => Some(shards[0]),
            _ => None,
        }
    }
}

fn names(shards: &[usize]) -> String {
    let names: Vec<String> = shards.iter().map(|s| thread_name(*s)).collect();
    names.join(", ")
}
