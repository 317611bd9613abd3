//! The fan-out floor (`server --kind mmsg-fanout`) against `load --mode raw-fanout`: every
//! subscription is acknowledged and every publish reaches every subscriber, timed.

mod common;

use ringwire_bench::load::Mode;
use ringwire_bench::server::{Kind, ServerArgs};

#[test]
fn the_floor_delivers_every_copy() {
    let args = ServerArgs {
        kind: Kind::MmsgFanout,
        bind: "127.0.0.1:0".parse().expect("literal address"),
        threads: 1,
        cores: Some(vec![0]),
        max_datagram: 2048,
        // 20 subscribers, 3 per call: 7 calls per publish, the last one short.
        fanout_batch: 3,
        duration: None,
        json: None,
    };
    let server = ringwire_bench::server::start(&args).expect("starts");
    let mut load = common::closed_loop(server.local_addr(), 6, 1);
    load.mode = Mode::RawFanout;
    // A publisher and 20 subscribers over 6 sockets: some sockets hold 4 subscriptions.
    load.sessions = Some(21);
    load.window = None;
    load.rate = Some(50.0);
    load.duration = 0.4;
    load.payload = 1191;
    let report = ringwire_bench::load::execute(&load).expect("load runs");
    let served = server.stop_and_join().expect("stops");
    assert!(report.sent > 0, "{report}");
    // Every publish is 20 deliveries.
    assert_eq!(report.sent % 20, 0, "{report}");
    assert_eq!(report.received, report.sent, "{report}");
    assert_eq!(report.lost, 0, "{report}");
    assert_eq!(report.misrouted + report.errors, 0, "{report}");
    assert!(served.served >= report.received, "{served:?}");
    let fan = report.fanout.expect("fan-out timing");
    assert_eq!(fan.publishes * 20, report.sent, "{report}");
    assert_eq!(fan.untimed, 0, "{report}");
    assert!(fan.first_copy.p50 <= fan.last_copy.p50, "{report}");
}
