//! ringwire: a thread-per-core io_uring UDP transport engine for gateway and peer-to-peer nodes.
//!
//! Each shard is one thread pinned to one core that owns an `SO_REUSEPORT` UDP socket, its own
//! io_uring and all per-peer state it holds (see the `ringwire-shard` crate). This crate starts
//! and stops shards ([`Engine`]), reads the TOML [`config`], and carries the built-in [`apps`].
//!
//! ```no_run
//! use ringwire::{Engine, EngineConfig};
//! use ringwire::apps::Echo;
//! use std::time::Duration;
//!
//! let config = EngineConfig::unpinned("127.0.0.1:0".parse().unwrap(), 2);
//! let engine = Engine::start(&config, |_shard| Echo).unwrap();
//! println!("echoing on {}", engine.local_addr());
//! let report = engine.shutdown(Duration::from_secs(2)).unwrap();
//! println!("{}", report.total());
//! ```
#![forbid(unsafe_code)]

pub mod apps;
pub mod config;
pub mod cores;
pub mod engine;

pub use engine::{
    Engine, EngineConfig, EngineError, EngineEvent, EngineHandle, EngineNotifier, EngineReport,
    FactoryError, NotifyError, ReportCounters, ShardInfo, ShutdownHandle,
};
pub use ringwire_shard::driver::ReportError;
pub use ringwire_shard::{
    Ctx, Handler, ReportRequest, SendOutcome, ShardConfig, ShardReport, ShardStats,
};
