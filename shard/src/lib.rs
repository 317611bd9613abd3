//! `ringwire-shard`: one core's world.
//!
//! A shard is one thread pinned to one core. It owns an `SO_REUSEPORT` UDP socket, its own
//! io_uring, and every piece of per-peer state it holds; nothing here is shared with another
//! shard except through the bounded SPSC rings in [`ring`].
//!
//! The sans-IO parts (the [`timer`] set, the [`session`] protocol) take `now` and bytes and
//! return actions; only [`driver`] talks to the kernel.
#![deny(unsafe_code)]

pub mod config;
pub mod counters;
pub mod driver;
pub mod handler;
pub mod id_hash;
pub mod mesh;
pub mod quic;
pub mod ratelimit;
pub mod report;
pub mod ring;
pub mod session;
pub mod timer;

pub use config::{Offload, ShardConfig, ShardConfigError, WakeMechanism};
pub use counters::ShardStats;
pub use driver::{Shard, ShardControl, ShardError, ShardExit};
pub use handler::{Ctx, Datagrams, Handler, SendOutcome};
/// The histogram type of [`ShardReport::turn_nanos`], re-exported so that users need not match
/// its version.
pub use hdrhistogram;
pub use report::{Rank, ReportItem, ReportPage, ReportRequest, ShardReport};
