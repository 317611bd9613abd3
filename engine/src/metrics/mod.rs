//! The metrics endpoint (feature `metrics`): Prometheus text at `/metrics` and a JSON live view
//! at `/stats.json` and `/sessions.json`, served by one control thread (`rw-metrics`).
//!
//! Nothing here touches the data path. Each request gathers a [`Snapshot`]: the shards'
//! published counters (atomics they store once per turn) and one report reply per shard
//! (asked of the shard's own thread through an [`EngineObserver`](crate::EngineObserver): the handler's counters and
//! the loop-turn histogram, cumulative). Formatting happens on the control thread. The HTTP
//! server is `tiny_http` (blocking, one thread, no async runtime anywhere near the shards).
#![forbid(unsafe_code)]

mod json;
mod prom;
mod server;
mod snapshot;

pub use json::{sessions_json, stats_json};
pub use prom::prometheus_text;
pub use server::{MetricsError, MetricsServer};
pub use snapshot::{ShardSnapshot, Snapshot};

/// `/sessions.json` defaults: the 20 worst by drops.
pub const DEFAULT_TOP: usize = 20;
