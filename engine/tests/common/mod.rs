//! Helpers shared by the engine's integration tests (each binary uses a subset).
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;

use ringwire::ShardStats;
use ringwire::{EngineConfig, EngineHandle, EngineReport};

/// `/proc` observables (parked threads, loopback drops), shared with the shard's tests.
#[path = "../../../shard/tests/common/os.rs"]
pub mod os;

pub use os::HANG;

/// `shards` unpinned shards on an ephemeral loopback port. Every deadline the engine has
/// (start-up, drain, the wait for the shards to stop when a handle is dropped) is raised to
/// [`HANG`]: tests wait for events, and a slow machine must not turn into a failure.
pub fn config(shards: usize) -> EngineConfig {
    let mut config = EngineConfig::unpinned("127.0.0.1:0".parse().unwrap(), shards);
    config.start_timeout = HANG;
    config.shard.drain_timeout = HANG;
    config.stop_timeout = HANG;
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

/// `(loop turns, context switches)` of shard `shard` (thread `tid`) if its thread is asleep in
/// `io_uring_enter` and stayed asleep while we looked, else `None`. The shard publishes its
/// counters before it enters the kernel, so the turns are those of the sleeping turn.
pub fn parked(engine: &EngineHandle, shard: usize, tid: u64) -> Option<(u64, u64)> {
    let turns = engine.stats()[shard].loop_turns;
    let switches = os::context_switches(tid);
    let asleep = os::asleep_in_syscall(tid) == Some(os::SYS_IO_URING_ENTER);
    (asleep && os::context_switches(tid) == switches && engine.stats()[shard].loop_turns == turns)
        .then_some((turns, switches))
}

/// Waits until every shard of `engine` is parked in `io_uring_enter` (start-up is over and
/// nothing is pending).
pub fn wait_all_parked(engine: &EngineHandle) {
    let tids = engine.thread_ids();
    os::wait_until("every shard to park in io_uring_enter", || {
        tids.iter()
            .enumerate()
            .all(|(i, tid)| parked(engine, i, *tid).is_some())
    });
}
