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
    // invalidated by it (only the host's steal, which this machine does not control, can
    // make a closed-loop cell invalid).
    let lag = report.client_lag_us.expect("lag recorded");
    assert!(lag.p50 <= lag.p99 && lag.p99 <= lag.max, "{report}");
    assert!(report.steal_pct.is_some(), "steal recorded: {report}");
    let verdict = ringwire_bench::validity::verdict(&report);
    assert!(
        matches!(
            verdict,
            ringwire_bench::validity::Verdict::Valid
                | ringwire_bench::validity::Verdict::Stolen { .. }
        ),
        "{verdict}: {report}"
    );
    // The server also saw warm-up traffic, so at least as much as measured.
    assert!(served.served >= report.received, "{served}");
}

#[test]
fn mmsg_server_echoes_everything() {
    run_against(Kind::Mmsg);
}

#[test]
fn mmsg_gso_server_echoes_everything() {
    if common::offloads_or_skip() {
        run_against(Kind::MmsgGso);
    }
}

/// Bulk mode (GSO sends and GRO receives at 4 peers, 1200-byte datagrams) against both floors:
/// nothing lost, and the report says it was bulk. Against `mmsg` the server's socket cuts each
/// GSO send into datagrams (no GRO there); against `mmsg-gso` each stays one buffer.
#[test]
fn bulk_mode_loses_nothing_against_either_floor() {
    if !common::offloads_or_skip() {
        return;
    }
    for kind in [Kind::Mmsg, Kind::MmsgGso] {
        let server = common::start_server(kind);
        let args = common::bulk(server.local_addr(), 4, 1200, 128);
        let report = ringwire_bench::load::execute(&args).expect("load runs");
        let served = server.stop_and_join().expect("server stops");
        assert!(report.bulk, "{report}");
        assert!(report.sent > 0, "{report}");
        assert_eq!((report.received, report.lost), (report.sent, 0), "{report}");
        assert_eq!(
            report.timeouts + report.misrouted + report.errors,
            0,
            "{report}"
        );
        assert_eq!(report.peers_responded, 4, "{report}");
        // Served counts datagrams, not coalesced buffers.
        assert!(served.served >= report.received, "{served}");
    }
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
