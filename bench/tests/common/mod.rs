//! Helpers shared by the integration tests.
#![allow(dead_code)]

use ringwire_bench::load::report::{LagUs, LatencyUs, LoadReport};
use ringwire_bench::load::worker::PollMode;
use ringwire_bench::load::{LoadArgs, Mode};
use ringwire_bench::server::{Kind, RunningServer, ServerArgs, glommio_echo};
use ringwire_bench::sys::loadavg::LoadAvg;
use std::net::SocketAddr;
use std::path::PathBuf;

/// `/proc` observables (loopback drops), shared with the shard's tests.
#[path = "../../../shard/tests/common/os.rs"]
pub mod os;

/// Peers that answered in a closed loop with one datagram per peer per batch (more peers than
/// window slots): each datagram goes out from the next peer in rotation, so the measured ones
/// come from `min(sent, peers)` distinct peers, every one of which answered when none was lost.
pub fn peers_in_rotation(report: &LoadReport, peers: usize) -> usize {
    usize::try_from(report.sent).map_or(peers, |sent| sent.min(peers))
}

/// A baseline server of `kind` on an ephemeral loopback port, pinned to core 0.
pub fn start_server(kind: Kind) -> RunningServer {
    start_server_or_skip(kind).expect("server starts")
}

/// Like [`start_server`], but `None` where this host cannot run `kind` (glommio without io_uring
/// or enough locked memory): the probe-or-skip helper has then printed why, or failed the test
/// under `RINGWIRE_REQUIRE_IO_URING`. Any other start-up error fails the test.
pub fn start_server_or_skip(kind: Kind) -> Option<RunningServer> {
    let args = ServerArgs {
        kind,
        bind: "127.0.0.1:0".parse().expect("literal address"),
        threads: 1,
        cores: Some(vec![0]),
        max_datagram: 2048,
        fanout_batch: 64,
        duration: None,
        json: None,
    };
    match ringwire_bench::server::start(&args) {
        Ok(server) => Some(server),
        Err(e) => {
            skip_if_unavailable(e.as_ref());
            None
        }
    }
}

/// Skips (or, under `RINGWIRE_REQUIRE_IO_URING`, fails) if `err` says glommio cannot run on
/// this host; panics with `err` if it is anything else.
pub fn skip_if_unavailable(err: &(dyn std::error::Error + 'static)) {
    match err.downcast_ref::<glommio_echo::Unavailable>() {
        Some(why) => ringwire_shard::driver::skip_or_fail(why),
        None => panic!("server start failed: {err}"),
    }
}

/// Closed-loop load arguments: `peers` peers, window `window`, 1 s measured.
pub fn closed_loop(target: SocketAddr, peers: u32, window: u32) -> LoadArgs {
    LoadArgs {
        target,
        mode: Mode::Echo,
        server_key: None,
        server_key_file: None,
        plaintext: false,
        peers,
        sessions: None,
        peers_per_ip: ringwire_bench::load::peers::PEERS_PER_LOOPBACK_IP as u32,
        handshake_rate: None,
        keepalive_ms: None,
        idle_timeout_ms: None,
        rekey_after_ms: None,
        handshake_rto_ms: None,
        threads: 1,
        cores: Some(vec![1]),
        payload: 32,
        duration: 1.0,
        warmup: 0.2,
        window: Some(window),
        active: None,
        rate: None,
        // The most the tool allows: a liveness guard, never a bound. With a window of W, at
        // most W datagrams are in flight, which no loopback socket buffer overflows on, so
        // nothing is lost and the run ends as soon as the last echo is back.
        timeout_ms: 60_000,
        bulk: false,
        poll: PollMode::Block,
        json: None,
    }
}

/// Whether this kernel takes `UDP_GRO` and `UDP_SEGMENT` (bulk mode and the `mmsg-gso` floor
/// need both); prints why not and returns false otherwise.
pub fn offloads_or_skip() -> bool {
    use std::os::fd::AsRawFd;
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let fd = socket.as_raw_fd();
    match ringwire_bench::sys::gso::enable_gro(fd)
        .and_then(|()| ringwire_bench::sys::gso::probe_gso(fd))
    {
        Ok(()) => true,
        Err(e) => {
            ringwire_shard::driver::skip_or_fail(format_args!(
                "this kernel refuses UDP_GRO or UDP_SEGMENT ({e})"
            ));
            false
        }
    }
}

/// Bulk-mode load arguments: `peers` peers sending `payload`-byte datagrams with GSO and
/// reading with GRO, window `window`, 1 s measured.
pub fn bulk(target: SocketAddr, peers: u32, payload: u32, window: u32) -> LoadArgs {
    let mut args = closed_loop(target, peers, window);
    args.bulk = true;
    args.payload = payload;
    args
}

/// A fresh path under the temp dir for a JSON report.
pub fn temp_json(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("ringwire-bench-{}-{name}.json", std::process::id()))
}

/// A load average whose three figures are all `v`.
pub fn loadavg(v: f64) -> LoadAvg {
    LoadAvg {
        one: v,
        five: v,
        fifteen: v,
    }
}

/// A closed-loop load report at `rps` with `lost` datagrams lost (p50 10 us,
/// p99 30 us; client lag p99 2 us; load average 0.1 before, 0.9 after; steal 0.2%).
pub fn load_report(rps: f64, lost: u64) -> LoadReport {
    LoadReport {
        mode: "echo".into(),
        loop_kind: "closed".into(),
        target: "127.0.0.1:1".into(),
        peers: 64,
        sessions: None,
        distinct_source_ports: 64,
        active: None,
        peers_responded: 64,
        threads: 1,
        payload_bytes: 32,
        window: Some(256),
        rate: None,
        duration_s: 1.0,
        warmup_s: 0.0,
        timeout_ms: 200,
        sent: rps as u64 + lost,
        received: rps as u64,
        lost,
        timeouts: lost,
        late: 0,
        errors: 0,
        misrouted: 0,
        unsent: 0,
        unreachable: 0,
        sessions_lost: 0,
        sessions_reopened: 0,
        endpoint_drops: 0,
        send_failed: 0,
        client_max_send_lag_us: 0.0,
        client_sent_late: 0,
        client_lag_us: Some(LagUs {
            p50: 0.5,
            p99: 2.0,
            p999: 5.0,
            max: 10.0,
        }),
        client_involuntary_switches: Some(0),
        loadavg_before: Some(loadavg(0.1)),
        loadavg_after: Some(loadavg(0.9)),
        steal_pct: Some(0.2),
        achieved_rps: rps,
        latency_us: LatencyUs {
            p50: 10.0,
            p90: 20.0,
            p99: 30.0,
            p999: 40.0,
            max: 50.0,
            mean: 12.0,
        },
        sessions_established: None,
        handshake_failures: None,
        handshake_ms: None,
        bulk: false,
        fanout: None,
    }
}

/// An empty directory under the system temp dir, unique to this process and `name`.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ringwire-bench-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Writes `r` as JSON to `dir/file`.
pub fn write<T: serde::Serialize>(dir: &std::path::Path, file: &str, r: &T) {
    let json = serde_json::to_string(r).expect("serialises");
    std::fs::write(dir.join(file), json).expect("write");
}
