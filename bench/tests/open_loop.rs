//! Open-loop load: the schedule is kept and every datagram returns.

mod common;

use ringwire_bench::server::Kind;

#[test]
fn open_loop_sends_the_scheduled_count() {
    let server = common::start_server(Kind::Mmsg);
    let mut args = common::closed_loop(server.local_addr(), 50, 1);
    args.window = None;
    args.rate = Some(2_000.0);
    let report = ringwire_bench::load::execute(&args).expect("load runs");
    // An open loop does not wait for echoes, so a stalled server lets datagrams pile up in its
    // socket, and loopback drops what does not fit (the kernel counts it while the socket is
    // open). The ledger: every datagram lost was dropped there.
    let server_drops = common::os::udp_drops(server.local_addr().port());
    server.stop_and_join().expect("server stops");
    assert_eq!(report.loop_kind, "open");
    // 2000/s for 1 s: the datagrams intended inside the window, +-1 at the edges. The client
    // sends every one of them even when it runs late.
    assert!((1_999..=2_001).contains(&report.sent), "{report}");
    assert_eq!(report.received + report.lost, report.sent, "{report}");
    assert!(
        report.lost <= server_drops,
        "{} lost but the kernel dropped {server_drops}: {report}",
        report.lost
    );
    assert_eq!(report.misrouted + report.errors, 0, "{report}");
    // 40 datagrams per peer: a peer stays silent only if every one of its datagrams was lost.
    assert!(
        50 - report.peers_responded as u64 <= report.lost,
        "{report}"
    );
    // The lag behind schedule is recorded as percentiles, consistent with
    // the max and the late count kept before.
    let lag = report.client_lag_us.expect("lag recorded");
    assert!(lag.p50 <= lag.p99 && lag.p99 <= lag.max, "{report}");
    // (The histogram keeps 3 significant digits.)
    assert!(
        lag.max <= report.client_max_send_lag_us * 1.002 + 0.01,
        "{report}"
    );
    assert!(report.loadavg_before.is_some() && report.loadavg_after.is_some());
}
