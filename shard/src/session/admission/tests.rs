//! Admission unit tests: every check refuses, names its reason and counts it; admitted
//! sessions are released exactly; the ledger balances.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::*;

fn addr(n: u32, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n)), port)
}

fn small() -> AdmissionConfig {
    AdmissionConfig {
        max_sessions_shard: 64,
        max_sessions_node: 1000,
        max_pending_handshakes: 16,
        max_sessions_per_prefix: 4,
        new_sessions_per_prefix: RateLimit::per_second(10, 4),
        prefix_table_capacity: 64,
        refusal_replies: RateLimit::per_second(1, 2),
        ..AdmissionConfig::default()
    }
}

fn ctl(cfg: AdmissionConfig) -> AdmissionController {
    let mut a = AdmissionController::new(cfg, 0, 1, Timestamp::ZERO).unwrap();
    let _first = a.poll_report(Timestamp::ZERO);
    a
}

fn ledger(a: &AdmissionController, attempts: u64) {
    let s = a.stats();
    assert_eq!(
        s.admitted + s.admitted_outbound + s.refused.total(),
        attempts
    );
    assert_eq!(s.replies + s.replies_suppressed, s.refused.total());
}

#[test]
fn defaults_are_valid_and_each_bad_value_is_named() {
    assert_eq!(AdmissionConfig::default().validate(), Ok(()));
    let with = |f: fn(&mut AdmissionConfig)| {
        let mut c = AdmissionConfig::default();
        f(&mut c);
        c.validate().unwrap_err().key
    };
    assert_eq!(with(|c| c.max_sessions_shard = 0), "max_sessions_shard");
    assert_eq!(with(|c| c.max_sessions_node = 0), "max_sessions_node");
    assert_eq!(
        with(|c| c.max_pending_handshakes = 0),
        "max_pending_handshakes"
    );
    assert_eq!(with(|c| c.prefix_lengths.v6 = 129), "prefix_lengths");
    assert_eq!(
        with(|c| c.max_sessions_per_prefix = 0),
        "max_sessions_per_prefix"
    );
    assert_eq!(
        with(|c| c.prefix_table_capacity = 65_535),
        "prefix_table_capacity"
    );
    assert_eq!(
        with(|c| c.exchange_interval = Duration::ZERO),
        "exchange_interval"
    );
    assert_eq!(with(|c| c.memory.session_limit = 0), "memory");
    assert!(matches!(
        AdmissionController::new(AdmissionConfig::default(), 2, 2, Timestamp::ZERO),
        Err(AdmissionError::Placement { .. })
    ));
    assert!(matches!(
        AdmissionController::new(AdmissionConfig::default(), 0, 257, Timestamp::ZERO),
        Err(AdmissionError::Placement { .. })
    ));
}

#[test]
fn per_prefix_limits_are_split_among_shards() {
    let cfg = AdmissionConfig::default();
    let a = AdmissionController::new(cfg.clone(), 0, 1, Timestamp::ZERO).unwrap();
    assert_eq!(a.prefix_limits(), (1024, RateLimit::per_second(20, 5)));
    let a = AdmissionController::new(cfg, 3, 8, Timestamp::ZERO).unwrap();
    let (cap, rate) = a.prefix_limits();
    assert_eq!(cap, 128);
    assert_eq!(rate.interval(), Duration::from_millis(400));
    assert_eq!(rate.burst(), 1);
}

#[test]
fn prefix_cap_refuses_and_counts() {
    let mut a = ctl(small());
    let t = Timestamp::from_secs(1);
    // Burst 4 = cap 4: all four admitted at once.
    for port in 0..4 {
        assert_eq!(a.check(t, addr(1, port)), Ok(()));
        a.handshake_completed();
    }
    let r = a.check(t, addr(1, 99)).unwrap_err();
    assert_eq!(r.reason, RefusalReason::PrefixFull);
    // Another address is unaffected.
    assert_eq!(a.check(t, addr(2, 1)), Ok(()));
    // One closes: room again (and tokens refilled by then).
    a.inbound_closed(t, addr(1, 0), ConnId(1));
    let later = Timestamp::from_secs(2);
    assert_eq!(a.check(later, addr(1, 100)), Ok(()));
    assert_eq!(a.stats().refused[RefusalReason::PrefixFull], 1);
    ledger(&a, 7);
}

#[test]
fn prefix_rate_refuses_and_counts_and_refills() {
    let mut cfg = small();
    cfg.new_sessions_per_prefix = RateLimit::per_second(10, 2);
    cfg.max_sessions_per_prefix = 100;
    let mut a = ctl(cfg);
    let t = Timestamp::from_secs(1);
    assert_eq!(a.check(t, addr(1, 1)), Ok(()));
    assert_eq!(a.check(t, addr(1, 2)), Ok(()));
    assert_eq!(
        a.check(t, addr(1, 3)).unwrap_err().reason,
        RefusalReason::PrefixRate
    );
    // The refused attempt took nothing: one interval later exactly one more is allowed.
    let t2 = t.saturating_add(Duration::from_millis(100));
    assert_eq!(a.check(t2, addr(1, 4)), Ok(()));
    assert_eq!(
        a.check(t2, addr(1, 5)).unwrap_err().reason,
        RefusalReason::PrefixRate
    );
    assert_eq!(a.stats().refused[RefusalReason::PrefixRate], 2);
    ledger(&a, 5);
}

#[test]
fn ipv6_sources_in_one_64_share_a_prefix() {
    let mut a = ctl(small());
    let t = Timestamp::from_secs(1);
    for i in 0..4u16 {
        let ip: IpAddr = format!("2001:db8::{:x}", i + 1).parse().unwrap();
        assert_eq!(a.check(t, SocketAddr::new(ip, 1)), Ok(()));
    }
    let ip: IpAddr = "2001:db8::ffff:ffff:ffff:ffff".parse().unwrap();
    assert_eq!(
        a.check(t, SocketAddr::new(ip, 1)).unwrap_err().reason,
        RefusalReason::PrefixFull
    );
    let other: IpAddr = "2001:db8:0:1::1".parse().unwrap();
    assert_eq!(a.check(t, SocketAddr::new(other, 1)), Ok(()));
}

#[test]
fn pending_cap_refuses_until_handshakes_complete() {
    let mut a = ctl(small());
    let t = Timestamp::from_secs(1);
    for n in 0..16 {
        assert_eq!(a.check(t, addr(n, 1)), Ok(()));
    }
    assert_eq!(
        a.check(t, addr(100, 1)).unwrap_err().reason,
        RefusalReason::PendingFull
    );
    a.handshake_completed();
    assert_eq!(a.check(t, addr(100, 1)), Ok(()));
    // An abandoned handshake frees its pending slot and its session.
    a.handshake_abandoned(t, addr(0, 1), None);
    assert_eq!(a.stats().pending, 15);
    assert_eq!(a.stats().sessions, 16);
    assert_eq!(a.stats().refused[RefusalReason::PendingFull], 1);
}

#[test]
fn shard_cap_refuses_inbound_and_outbound() {
    let mut cfg = small();
    cfg.max_sessions_shard = 3;
    cfg.prefix_table_capacity = 3;
    let mut a = ctl(cfg);
    let t = Timestamp::from_secs(1);
    assert_eq!(a.check(t, addr(1, 1)), Ok(()));
    assert_eq!(a.check_outbound(t), Ok(()));
    assert_eq!(a.check(t, addr(2, 1)), Ok(()));
    assert_eq!(
        a.check(t, addr(3, 1)).unwrap_err().reason,
        RefusalReason::ShardFull
    );
    assert_eq!(
        a.check_outbound(t).unwrap_err().reason,
        RefusalReason::ShardFull
    );
    a.outbound_closed(ConnId(7));
    assert_eq!(a.check(t, addr(3, 1)), Ok(()));
    assert_eq!(a.stats().refused[RefusalReason::ShardFull], 2);
    ledger(&a, 6);
}

#[test]
fn node_cap_refuses_once_the_rounds_grant_is_used() {
    let mut cfg = small();
    cfg.max_sessions_node = 10;
    // Two shards: static share 5 in the first round.
    let mut a = AdmissionController::new(cfg, 0, 2, Timestamp::ZERO).unwrap();
    let first = a.poll_report(Timestamp::ZERO).unwrap();
    assert_eq!(first.ceiling, 5);
    let t = Timestamp::from_millis(1);
    for n in 0..5 {
        assert_eq!(a.check(t, addr(n, 1)), Ok(()));
    }
    assert_eq!(
        a.check(t, addr(9, 1)).unwrap_err().reason,
        RefusalReason::NodeFull
    );
    assert_eq!(
        a.check_outbound(t).unwrap_err().reason,
        RefusalReason::NodeFull
    );
    // The peer reports it holds 1 and may reach 3: headroom 10 - 5 - 3 = 2, a half is 1.
    a.on_load_report(LoadReport {
        shard: 1,
        round: 0,
        sessions: 1,
        ceiling: 3,
    });
    let next = a.next_round();
    let rep = a.poll_report(next).unwrap();
    assert_eq!((rep.round, rep.sessions, rep.ceiling), (1, 5, 6));
    assert_eq!(a.peer_sessions(), 1);
    assert_eq!(a.check(next, addr(9, 1)), Ok(()));
    assert_eq!(
        a.check(next, addr(10, 1)).unwrap_err().reason,
        RefusalReason::NodeFull
    );
    assert_eq!(a.stats().refused[RefusalReason::NodeFull], 3);
}

#[test]
fn memory_budget_refuses_sessions_before_the_caps() {
    let mut cfg = small();
    cfg.memory = BudgetConfig {
        limit: 10_000,
        session_limit: 3000,
        shed_above: 8000,
        session_cost: 1000,
    };
    let mut a = ctl(cfg);
    let t = Timestamp::from_secs(1);
    for n in 0..3 {
        assert_eq!(a.check(t, addr(n, 1)), Ok(()));
    }
    assert_eq!(
        a.check(t, addr(5, 1)).unwrap_err().reason,
        RefusalReason::Memory
    );
    // Queues count too: free a session, but fill its room with queued bytes.
    a.inbound_closed(t, addr(0, 1), ConnId(1));
    assert!(a.budget_mut().try_queue(ConnId(2), 500));
    assert_eq!(
        a.check(t, addr(5, 1)).unwrap_err().reason,
        RefusalReason::Memory
    );
    // Closing the queuing session releases its queue with it.
    a.inbound_closed(t, addr(1, 1), ConnId(2));
    assert_eq!(a.budget().used(), 1000);
    assert_eq!(a.check(t, addr(5, 1)), Ok(()));
    assert_eq!(a.stats().refused[RefusalReason::Memory], 2);
}

#[test]
fn at_most_one_reply_per_refusal_from_a_per_shard_bucket() {
    let mut cfg = small();
    cfg.max_sessions_per_prefix = 1;
    let mut a = ctl(cfg); // replies: 1/s, burst 2
    let t = Timestamp::from_secs(1);
    assert_eq!(a.check(t, addr(1, 1)), Ok(()));
    let replies: Vec<bool> = (0..5)
        .map(|p| a.check(t, addr(1, p + 2)).unwrap_err().reply)
        .collect();
    assert_eq!(replies, [true, true, false, false, false]);
    let t2 = Timestamp::from_secs(2);
    assert!(a.check(t2, addr(1, 9)).unwrap_err().reply);
    let s = a.stats();
    assert_eq!((s.replies, s.replies_suppressed), (3, 3));
    ledger(&a, 7);
}

#[test]
fn unbalanced_reports_are_counted_never_underflow() {
    let mut a = ctl(small());
    let t = Timestamp::from_secs(1);
    a.handshake_completed();
    a.outbound_closed(ConnId(1));
    a.inbound_closed(t, addr(1, 1), ConnId(2));
    let s = a.stats();
    assert_eq!(s.unbalanced, 3);
    assert_eq!(s.prefixes.unknown_releases, 1);
    assert_eq!((s.sessions, s.pending), (0, 0));
}

#[test]
fn a_flood_from_one_address_leaves_others_their_normal_rate() {
    // Defaults, one shard. The attacker offers 1000 sessions a second from one address for
    // 10 s; 100 honest addresses each open one session a second.
    let mut a = ctl(AdmissionConfig::default());
    let attacker = |i: u32| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)), i as u16);
    let (mut evil_ok, mut honest_ok, mut honest_tries) = (0u64, 0u64, 0u64);
    for ms in 0..10_000u64 {
        let now = Timestamp::from_millis(1000 + ms);
        if a.check(now, attacker(ms as u32)).is_ok() {
            evil_ok += 1;
            a.handshake_completed();
        }
        if ms % 10 == 0 {
            // One honest address per 10 ms: each of 100 addresses once a second.
            let h = addr((ms / 10 % 100) as u32, 4000);
            honest_tries += 1;
            match a.check(now, h) {
                Ok(()) => {
                    honest_ok += 1;
                    a.handshake_completed();
                    // Honest sessions are short: it closes at once.
                    a.inbound_closed(now, h, ConnId(ms));
                }
                Err(r) => panic!("honest {h} refused at {now}: {r:?}"),
            }
        }
    }
    // The attacker gets its burst plus 20/s for the 10 s, minus one step: 5 + 199.
    assert_eq!(evil_ok, 204);
    assert_eq!(honest_ok, honest_tries);
    let s = a.stats();
    assert_eq!(s.refused[RefusalReason::PrefixRate], 10_000 - 204);
    assert_eq!(s.refused.total(), 10_000 - 204);
}
