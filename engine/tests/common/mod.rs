//! Helpers shared by the engine's integration tests (each binary uses a subset).
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;

use ringwire::{EngineConfig, EngineHandle, EngineReport};
use ringwire_shard::ShardStats;

/// `/proc` observables (parked threads, loopback drops), shared with the shard's tests.
#[path = "../../../shard/tests/common/os.rs"]
pub mod os;

pub use os::HANG;

/// `shards` unpinned shards on an ephemeral loopback port. Every deadline the engine has
/// (start-up, drain) is raised to [`HANG`]: tests wait for events, and a slow machine must not
/// turn into a failure.
pub fn config(shards: usize) -> EngineConfig {
    let mut config = EngineConfig::unpinned("127.0.0.1:0".parse().unwrap(), shards);
    config.start_timeout = HANG;
    config.shard.drain_timeout = HANG;
    config
}

/// Stops the engine; the deadline is a liveness guard only. Every shard must have drained.
pub fn shutdown(engine: EngineHandle) -> EngineReport {
    let report = engine.shutdown(HANG).unwrap();
    assert!(
        report.shards.iter().all(|s| s.drained),
        "a shard stopped with operations in the kernel"
    );
    report
}

/// Sends the handler asked for: completed, failed in the kernel, or refused with a counted
/// reason. A send still queued or in flight is in none of these.
pub fn sends_asked(s: &ShardStats) -> u64 {
    s.datagrams_out + s.send_errors_total() + s.send_queue_full + s.send_too_large
}

/// Datagrams dropped by the kernel at the sockets bound to `addr`'s port (a full receive
/// buffer), while they are open.
pub fn kernel_drops(addr: SocketAddr) -> u64 {
    os::udp_drops(addr.port())
}
