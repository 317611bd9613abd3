//! Helpers shared by the integration tests.
#![allow(dead_code)]

use ringwire_bench::load::worker::PollMode;
use ringwire_bench::load::{LoadArgs, Mode};
use ringwire_bench::server::{Kind, RunningServer, ServerArgs};
use std::net::SocketAddr;
use std::path::PathBuf;

/// A baseline server of `kind` on an ephemeral loopback port, pinned to core 0.
pub fn start_server(kind: Kind) -> RunningServer {
    let args = ServerArgs {
        kind,
        bind: "127.0.0.1:0".parse().expect("literal address"),
        threads: 1,
        cores: Some(vec![0]),
        max_datagram: 2048,
        duration: None,
        json: None,
    };
    ringwire_bench::server::start(&args).expect("server starts")
}

/// Closed-loop load arguments: `peers` peers, window `window`, 1 s measured.
pub fn closed_loop(target: SocketAddr, peers: u32, window: u32) -> LoadArgs {
    LoadArgs {
        target,
        mode: Mode::Echo,
        peers,
        threads: 1,
        cores: Some(vec![1]),
        payload: 32,
        duration: 1.0,
        warmup: 0.2,
        window: Some(window),
        rate: None,
        // Generous: a loaded CI machine must not turn slowness into loss.
        timeout_ms: 5_000,
        poll: PollMode::Block,
        json: None,
    }
}

/// A fresh path under the temp dir for a JSON report.
pub fn temp_json(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("ringwire-bench-{}-{name}.json", std::process::id()))
}
