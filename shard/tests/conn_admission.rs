//! Admission control as the host will drive it, on a virtual clock: the node-wide cap holds
//! across shards exchanging counts with delays and losses, the prefix table stays bounded
//! under a flood of distinct prefixes, and one address gets at most its cap however often it
//! tries, with memory inside the budget.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ringwire_shard::session::admission::{
    AdmissionConfig, AdmissionController, LoadReport, RateLimit, RefusalReason,
};
use ringwire_shard::session::{ConnId, Timestamp};

const TAU: Duration = Duration::from_millis(100);

fn v4(n: u32, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(n)), port)
}

#[derive(Clone, Debug)]
struct Schedule {
    shards: u16,
    node_cap: usize,
    shard_cap: usize,
    /// Per step: (shard, attempts, closes, poll lag in steps, delivery delay in steps, lost).
    steps: Vec<(u16, u8, u8, u8, u8, bool)>,
    /// Steps between a shard's creation and the first step (staggered starts).
    starts: Vec<u8>,
}

fn schedule() -> impl Strategy<Value = Schedule> {
    (2u16..6, 4usize..120, 1usize..60).prop_flat_map(|(shards, node_cap, shard_cap)| {
        (
            proptest::collection::vec(
                (
                    0..shards,
                    0u8..6,
                    0u8..4,
                    0u8..3,
                    0u8..25,
                    proptest::bool::weighted(0.1),
                ),
                1..600,
            ),
            proptest::collection::vec(0u8..20, shards as usize),
        )
            .prop_map(move |(steps, starts)| Schedule {
                shards,
                node_cap,
                shard_cap,
                steps,
                starts,
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// `max_sessions_node` is never exceeded, however the shards interleave: random
    /// admissions and closes, rounds polled late, reports delayed past a round or lost,
    /// shards created in different rounds. Steps are 10 ms; a round is 100 ms.
    #[test]
    fn the_node_cap_holds_with_late_and_lost_reports(s in schedule()) {
        let mut cfg = AdmissionConfig::default();
        cfg.max_sessions_node = s.node_cap;
        cfg.max_sessions_shard = s.shard_cap;
        cfg.prefix_table_capacity = s.shard_cap;
        cfg.max_pending_handshakes = s.shard_cap;
        cfg.max_sessions_per_prefix = 1_000_000;
        cfg.exchange_interval = TAU;
        let step = Duration::from_millis(10);
        let mut shards: Vec<AdmissionController> = (0..s.shards)
            .map(|i| {
                let born = Timestamp::ZERO.saturating_add(step * u32::from(s.starts[usize::from(i)]));
                AdmissionController::new(cfg.clone(), i, s.shards, born).unwrap()
            })
            .collect();
        let mut open: Vec<VecDeque<SocketAddr>> = vec![VecDeque::new(); s.shards.into()];
        // (deliver at step, to, report)
        let mut mail: Vec<(usize, usize, LoadReport)> = Vec::new();
        let mut lag = vec![0u8; s.shards.into()];
        let mut next_addr = 1u32;
        // Start after every shard exists.
        let first = usize::from(*s.starts.iter().max().unwrap());
        for (k, &(i, attempts, closes, poll_lag, delay, lost)) in s.steps.iter().enumerate() {
            let k = k + first;
            let now = Timestamp::ZERO.saturating_add(step * k as u32);
            let i = usize::from(i);
            for (at, to, rep) in std::mem::take(&mut mail) {
                if at <= k { shards[to].on_load_report(rep); } else { mail.push((at, to, rep)); }
            }
            // A shard polls its round late by up to `poll_lag` of its own turns.
            if now >= shards[i].next_round() {
                if lag[i] >= poll_lag {
                    lag[i] = 0;
                    while let Some(rep) = shards[i].poll_report(now) {
                        for to in 0..shards.len() {
                            if to != i && !lost {
                                mail.push((k + usize::from(delay), to, rep));
                            }
                        }
                    }
                } else {
                    lag[i] += 1;
                }
            }
            for _ in 0..closes {
                if let Some(peer) = open[i].pop_front() {
                    shards[i].inbound_closed(now, peer, ConnId(1));
                }
            }
            for _ in 0..attempts {
                let peer = v4(next_addr, 1);
                next_addr += 1;
                if shards[i].check(now, peer).is_ok() {
                    shards[i].handshake_completed();
                    open[i].push_back(peer);
                }
            }
            let total: usize = shards.iter().map(|a| a.sessions()).sum();
            prop_assert!(total <= s.node_cap, "node holds {} > cap {} at step {}", total, s.node_cap, k);
            for a in &shards {
                prop_assert!(a.sessions() <= s.shard_cap);
            }
        }
    }
}

#[test]
fn with_fresh_reports_the_node_fills_to_near_its_cap() {
    // Two shards, cap 1000, demand everywhere: how close does the node get, how fast?
    let mut cfg = AdmissionConfig::default();
    cfg.max_sessions_node = 1000;
    cfg.max_sessions_per_prefix = 1_000_000;
    cfg.exchange_interval = TAU;
    let mut a = AdmissionController::new(cfg.clone(), 0, 2, Timestamp::ZERO).unwrap();
    let mut b = AdmissionController::new(cfg, 1, 2, Timestamp::ZERO).unwrap();
    let mut n = 0u32;
    let mut totals = Vec::new();
    for round in 0..12u64 {
        let now = Timestamp::from_millis(round * 100);
        let ra: Vec<_> = std::iter::from_fn(|| a.poll_report(now)).collect();
        let rb: Vec<_> = std::iter::from_fn(|| b.poll_report(now)).collect();
        for r in rb {
            a.on_load_report(r);
        }
        for r in ra {
            b.on_load_report(r);
        }
        for s in [&mut a, &mut b] {
            while s.check(now, v4(n, 1)).is_ok() {
                n += 1;
                s.handshake_completed();
            }
            n += 1;
        }
        totals.push(a.sessions() + b.sessions());
    }
    // Round 0: static shares (500 each). Reports then show the node full.
    assert_eq!(totals[0], 1000);
    assert!(totals.iter().all(|&t| t <= 1000));
    assert_eq!(a.stats().refused[RefusalReason::NodeFull], 12);
    // Now 300 close on shard a (it admitted addresses 0..500): the headroom is granted back.
    for k in 0..300u32 {
        a.inbound_closed(Timestamp::from_millis(1200), v4(k, 1), ConnId(1));
    }
    let mut refill = Vec::new();
    for round in 12..24u64 {
        let now = Timestamp::from_millis(round * 100);
        let ra: Vec<_> = std::iter::from_fn(|| a.poll_report(now)).collect();
        let rb: Vec<_> = std::iter::from_fn(|| b.poll_report(now)).collect();
        rb.into_iter().for_each(|r| a.on_load_report(r));
        ra.into_iter().for_each(|r| b.on_load_report(r));
        for s in [&mut a, &mut b] {
            while s.check(now, v4(n, 1)).is_ok() {
                n += 1;
                s.handshake_completed();
            }
            n += 1;
        }
        refill.push(a.sessions() + b.sessions());
    }
    assert!(refill.iter().all(|&t| t <= 1000), "{refill:?}");
    // Geometric: within 2N = 4 of the cap after a dozen rounds.
    assert!(*refill.last().unwrap() >= 996, "{refill:?}");
}

#[test]
fn the_prefix_table_stays_bounded_under_a_flood_of_distinct_prefixes() {
    // 1,000,000 distinct IPv6 /64s, 100,000 a second, each open a session and abandon the
    // handshake 10 ms later: faster than a bucket refills (50 ms), so idle entries pile up
    // and the table, kept small here, must evict.
    let mut cfg = AdmissionConfig::default();
    cfg.max_sessions_shard = 2048;
    cfg.prefix_table_capacity = 2048 + 512;
    cfg.max_pending_handshakes = 2048;
    let mut a = AdmissionController::new(cfg, 0, 1, Timestamp::ZERO).unwrap();
    let _ = a.poll_report(Timestamp::ZERO);
    let allocated = a.stats().prefixes.allocated_bytes;
    let mut pending: VecDeque<(Timestamp, SocketAddr)> = VecDeque::new();
    let honest = v4(0xc000_0201, 443);
    let mut honest_ok = 0;
    for i in 0..1_000_000u64 {
        let now = Timestamp::from_nanos(i * 10_000);
        while pending
            .front()
            .is_some_and(|(t, _)| now.saturating_since(*t) >= Duration::from_millis(10))
        {
            let (_, peer) = pending.pop_front().unwrap();
            a.handshake_abandoned(now, peer, None);
        }
        let ip = Ipv6Addr::from((0x2001_0db8_u128 << 96) | (u128::from(i) << 64) | 1);
        let peer = SocketAddr::new(IpAddr::V6(ip), 1);
        if a.check(now, peer).is_ok() {
            pending.push_back((now, peer));
        }
        if i % 100_000 == 0 {
            // An honest client once a second opens a session and closes it.
            a.check(now, honest).unwrap();
            honest_ok += 1;
            a.handshake_completed();
            a.inbound_closed(now, honest, ConnId(1));
        }
        let st = a.stats().prefixes;
        assert!(st.entries <= 2048 + 512);
        assert_eq!(st.allocated_bytes, allocated, "the table never reallocates");
    }
    let s = a.stats();
    assert_eq!(
        s.admitted,
        1_000_000 + 10,
        "each new prefix gets its first session"
    );
    assert_eq!(honest_ok, 10);
    assert_eq!(s.prefixes.peak_entries, 2048 + 512);
    assert!(
        s.prefixes.rate_resets > 0,
        "evicting non-full buckets is counted"
    );
    assert_eq!(s.admitted + s.refused.total(), 1_000_000 + 10);
    println!(
        "prefix flood: admitted {} refused {} table peak {} of {}, allocated {} B, rate_resets {}, expired {}",
        s.admitted,
        s.refused,
        s.prefixes.peak_entries,
        2048 + 512,
        allocated,
        s.prefixes.rate_resets,
        s.prefixes.expired
    );
}

#[test]
fn one_address_trying_10000_sessions_gets_at_most_its_cap() {
    // Four shards; the attacker's flows spread over them by the kernel's hash. It holds every
    // session it gets.
    let shards = 4u16;
    let cfg = AdmissionConfig::default();
    let mut node: Vec<AdmissionController> = (0..shards)
        .map(|i| AdmissionController::new(cfg.clone(), i, shards, Timestamp::ZERO).unwrap())
        .collect();
    for a in &mut node {
        let _ = a.poll_report(Timestamp::ZERO);
    }
    let (cap, rate) = node[0].prefix_limits();
    assert_eq!((cap, rate.burst()), (256, 2));
    let mut rng = StdRng::seed_from_u64(10);
    let attacker = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
    let mut got = vec![0u32; shards.into()];
    let mut by_time = Vec::new();
    for i in 0..10_000u64 {
        // 100 attempts a second for 100 s.
        let now = Timestamp::from_millis(i * 10);
        let shard = rng.random_range(0..usize::from(shards));
        let a = &mut node[shard];
        if a.check(now, SocketAddr::new(attacker, (i % 60_000) as u16))
            .is_ok()
        {
            a.handshake_completed();
            got[shard] += 1;
        }
        if i % 1000 == 999 {
            by_time.push(got.iter().sum::<u32>());
        }
    }
    let total: u32 = got.iter().sum();
    for (k, a) in node.iter().enumerate() {
        let s = a.stats();
        assert_eq!(
            got[k], cap,
            "shard {k} reached its part of the cap, and no more"
        );
        assert_eq!(s.sessions, cap as usize);
        assert_eq!(
            s.refused.total(),
            s.refused[RefusalReason::PrefixFull] + s.refused[RefusalReason::PrefixRate]
        );
        assert!(s.memory.used <= cfg.memory.session_limit);
    }
    // Node-wide: shards x ⌈1024 / shards⌉ = 1024, opened at 4 x 5 = 20 a second.
    assert_eq!(total, 1024);
    assert!(by_time[0] <= 2 * 4 + 20 * 10, "{by_time:?}");
    println!(
        "one address, 10,000 tries in 100 s on 4 shards: sessions after each 10 s {by_time:?}"
    );
}

#[test]
fn a_peer_that_never_reads_is_shed_and_memory_stays_within_the_budget() {
    // The relay incident: one session's peer never reads, and the host queues 137,000
    // messages of 1200 bytes for it (164 MB) while ten other sessions queue 1 MB each.
    let cfg = AdmissionConfig::default();
    let limits = cfg.memory;
    let mut a = AdmissionController::new(cfg, 0, 1, Timestamp::ZERO).unwrap();
    let _ = a.poll_report(Timestamp::ZERO);
    let t = Timestamp::from_secs(1);
    let sink = ConnId(1000);
    for k in 0..=10u32 {
        a.check(t, v4(k + 1, 1)).unwrap();
        a.handshake_completed();
    }
    for k in 0..10u64 {
        for _ in 0..(1 << 20) / 1200 {
            assert!(a.budget_mut().try_queue(ConnId(k), 1200));
        }
    }
    let (mut refused, mut shed_bytes, mut memory_refusals) = (0u64, 0usize, 0u64);
    for turn in 0..1370u32 {
        for _ in 0..100 {
            if !a.budget_mut().try_queue(sink, 1200) {
                refused += 1; // the host answers Full and counts a drop
            }
        }
        assert!(a.budget().used() <= limits.limit);
        // A new session is refused while the budget is above the session limit.
        let over = a.budget().used() + limits.session_cost > limits.session_limit;
        match a.check(t, v4(100_000 + turn, 1)) {
            Ok(()) => {
                assert!(!over);
                a.handshake_abandoned(t, v4(100_000 + turn, 1), None);
            }
            Err(r) => {
                assert!(over);
                assert_eq!(r.reason, RefusalReason::Memory);
                memory_refusals += 1;
            }
        }
        // Bounded shedding per turn: at most 4 queues.
        for _ in 0..4 {
            let Some(shed) = a.budget_mut().next_shed() else {
                break;
            };
            assert_eq!(shed.conn, sink, "the largest queue goes first");
            shed_bytes += shed.bytes;
        }
        assert!(a.budget().used() <= limits.shed_above);
    }
    let m = a.stats().memory;
    assert!(m.peak <= limits.limit);
    assert!(m.shed_queues >= 1 && shed_bytes > 0);
    assert!(memory_refusals > 0);
    assert_eq!(m.queue_refused, refused);
    println!(
        "never-reading peer: 137,000 x 1200 B offered, {} shed in {} sheds, {refused} refused at the limit, peak {} B of {} B, {memory_refusals} sessions refused for memory",
        m.shed_bytes, m.shed_queues, m.peak, limits.limit
    );
}

#[test]
fn refusal_replies_are_rate_limited_per_shard() {
    let mut cfg = AdmissionConfig::default();
    cfg.max_sessions_per_prefix = 1;
    cfg.refusal_replies = RateLimit::per_second(100, 10);
    let mut a = AdmissionController::new(cfg, 0, 1, Timestamp::ZERO).unwrap();
    let t = Timestamp::from_secs(1);
    a.check(t, v4(1, 1)).unwrap();
    // 10,000 refused tries within one second from one address: burst + 100/s replies.
    let mut replies = 0;
    for i in 0..10_000u64 {
        let now = t.saturating_add(Duration::from_micros(i * 100));
        if a.check(now, v4(1, 2)).unwrap_err().reply {
            replies += 1;
        }
    }
    assert_eq!(replies, 10 + 99);
    assert_eq!(a.stats().replies_suppressed, 10_000 - 109);
}

/// What admission costs with the default settings: the average `check` under a flood of
/// distinct prefixes (each admitted, then abandoned 10 ms later, so the table stays full and
/// evicts), and the prefix table's allocation.
/// Run: `cargo test -p ringwire-shard --release --test conn_admission -- --ignored --nocapture`.
#[test]
#[ignore = "measurement; run in release mode with --ignored --nocapture"]
fn admission_cost_with_defaults() {
    let mut a =
        AdmissionController::new(AdmissionConfig::default(), 0, 1, Timestamp::ZERO).unwrap();
    let _ = a.poll_report(Timestamp::ZERO);
    let mut pending: VecDeque<(Timestamp, SocketAddr)> = VecDeque::new();
    let n = 2_000_000u64;
    let start = std::time::Instant::now();
    for i in 0..n {
        let now = Timestamp::from_nanos(i * 10_000);
        while pending
            .front()
            .is_some_and(|(t, _)| now.saturating_since(*t) >= Duration::from_millis(10))
        {
            let (_, peer) = pending.pop_front().unwrap();
            a.handshake_abandoned(now, peer, None);
        }
        let ip = Ipv6Addr::from((0x2001_0db8_u128 << 96) | (u128::from(i) << 64) | 1);
        let peer = SocketAddr::new(IpAddr::V6(ip), 1);
        if a.check(now, peer).is_ok() {
            pending.push_back((now, peer));
        }
    }
    let per = start.elapsed() / n as u32;
    let s = a.stats();
    println!(
        "admission, defaults: {n} distinct prefixes in {:.2?}: {per:?} per check and release; table {} entries (peak {}), {} B allocated ({:.1} MiB), rate_resets {}",
        start.elapsed(),
        s.prefixes.entries,
        s.prefixes.peak_entries,
        s.prefixes.allocated_bytes,
        s.prefixes.allocated_bytes as f64 / f64::from(1 << 20),
        s.prefixes.rate_resets
    );
}
