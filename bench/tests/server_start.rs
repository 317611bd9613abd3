//! Server start-up: `start` returns only once threads serve, and a thread
//! that cannot set up fails `start` instead of leaving a dead server.

mod common;

use ringwire_bench::server::{Kind, ServerArgs};

#[test]
fn glommio_on_a_missing_core_fails_start() {
    let args = ServerArgs {
        kind: Kind::Glommio,
        bind: "127.0.0.1:0".parse().expect("literal address"),
        threads: 1,
        cores: Some(vec![100_000]),
        max_datagram: 2048,
        fanout_batch: 64,
        duration: None,
        json: None,
    };
    let err = ringwire_bench::server::start(&args)
        .err()
        .expect("start must fail");
    if err
        .downcast_ref::<ringwire_bench::server::glommio_echo::Unavailable>()
        .is_some()
    {
        // This host cannot run glommio at all: skip (or fail under RINGWIRE_REQUIRE_IO_URING).
        common::skip_if_unavailable(err.as_ref());
        return;
    }
    assert!(err.to_string().contains("100000"), "{err}");
}

#[test]
fn two_reuseport_threads_share_one_ephemeral_port() {
    let args = ServerArgs {
        kind: Kind::Mmsg,
        bind: "127.0.0.1:0".parse().expect("literal address"),
        threads: 2,
        cores: Some(vec![0, 1]),
        max_datagram: 2048,
        fanout_batch: 64,
        duration: None,
        json: None,
    };
    let server = ringwire_bench::server::start(&args).expect("starts");
    assert_ne!(server.local_addr().port(), 0);
    let mut load = common::closed_loop(server.local_addr(), 40, 4);
    load.duration = 0.3;
    let report = ringwire_bench::load::execute(&load).expect("load runs");
    let served = server.stop_and_join().expect("stops");
    assert_eq!(report.lost, 0, "{report}");
    assert_eq!(served.threads.len(), 2);
    assert!(served.served >= report.received);
}
