//! Closed-loop load against the in-process baseline servers on loopback:
//! every datagram comes back, every peer is used, the JSON parses.

mod common;

use ringwire_bench::load::report::LoadReport;
use ringwire_bench::server::Kind;

fn run_against(kind: Kind) {
    let Some(server) = common::start_server_or_skip(kind) else {
        return;
    };
    let mut args = common::closed_loop(server.local_addr(), 300, 8);
    let json = common::temp_json(kind.name());
    args.json = Some(json.clone());
    ringwire_bench::load::run(args).expect("load runs");
    let served = server.stop_and_join().expect("server stops");

    let text = std::fs::read_to_string(&json).expect("JSON written");
    let _ = std::fs::remove_file(&json);
    let value: serde_json::Value = serde_json::from_str(&text).expect("well-formed JSON");
    for key in [
        "sent",
        "received",
        "lost",
        "achieved_rps",
        "latency_us",
        "loop",
        "client_lag_us",
        "client_involuntary_switches",
        "loadavg_before",
        "loadavg_after",
    ] {
        assert!(value.get(key).is_some(), "JSON lacks {key}: {text}");
    }
    let report: LoadReport = serde_json::from_value(value).expect("JSON matches the schema");

    assert!(report.sent > 0, "{report}");
    assert_eq!(report.received, report.sent, "{report}");
    assert_eq!(report.lost, 0, "{report}");
    assert_eq!(
        report.timeouts + report.late + report.misrouted,
        0,
        "{report}"
    );
    assert_eq!(report.loop_kind, "closed");
    assert_eq!(report.distinct_source_ports, 300);
    assert_eq!(
        report.peers_responded,
        common::peers_in_rotation(&report, 300),
        "{report}"
    );
    assert!(report.latency_us.p50 > 0.0 && report.latency_us.p50 <= report.latency_us.max);
    // Every measured send recorded its turnaround lag; closed loop is never
    // invalidated by it.
    let lag = report.client_lag_us.expect("lag recorded");
    assert!(lag.p50 <= lag.p99 && lag.p99 <= lag.max, "{report}");
    assert!(ringwire_bench::validity::verdict(&report).is_valid());
    // The server also saw warm-up traffic, so at least as much as measured.
    assert!(served.served >= report.received, "{served}");
}

#[test]
fn mmsg_server_echoes_everything() {
    run_against(Kind::Mmsg);
}

#[test]
fn tokio_server_echoes_everything() {
    run_against(Kind::Tokio);
}

#[test]
fn glommio_server_echoes_everything_or_skips() {
    // Skips through the probe-or-skip helper where glommio cannot run (no io_uring, seccomp,
    // RLIMIT_MEMLOCK): `start` says so with `glommio_echo::Unavailable` instead of a panic.
    run_against(Kind::Glommio);
}
