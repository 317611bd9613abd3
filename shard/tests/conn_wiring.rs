//! Admission control and the connection manager wired into the endpoint: refusals before any
//! state, the Refused reply, trims closing with `Close(Trimmed)`, the memory budget on queued
//! Data, and two shards keeping the node-wide cap and watermark through the count exchange.
//! Deterministic: virtual time, seeded simulator (the sim hands load reports between the
//! shards of a node as a host's control lane does).
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use common::*;
use ringwire_shard::session::admission::{AdmissionConfig, BudgetConfig, RateLimit, RefusalReason};
use ringwire_shard::session::manager::ManagerConfig;

/// Admission with the given per-prefix cap, and rates that never bind unless set.
fn admission(per_prefix: usize) -> AdmissionConfig {
    let mut a = AdmissionConfig::default();
    a.max_sessions_per_prefix = per_prefix;
    a.new_sessions_per_prefix = RateLimit::per_second(1_000_000, 1_000_000);
    a
}

/// A manager trimming from `high` to `low`, with no grace and a short silence.
fn manager(low: usize, high: usize) -> ManagerConfig {
    let mut m = ManagerConfig::default();
    m.low_watermark = low;
    m.high_watermark = high;
    m.grace_period = Duration::ZERO;
    m.silence_period = Duration::from_millis(500);
    m
}

fn server(adm: Option<AdmissionConfig>, mgr: Option<ManagerConfig>) -> EndpointConfig {
    let mut c = cfg_id(2);
    c.admission = adm;
    c.manager = mgr;
    c
}

fn connected_count(sim: &Sim, node: usize) -> usize {
    connected(sim, node).len()
}

fn refusals(sim: &Sim, node: usize, shard: u16, reason: RefusalReason) -> u64 {
    sim.endpoint(node, shard)
        .admission()
        .unwrap()
        .stats()
        .refused[reason]
}

#[test]
fn a_flood_from_one_address_gets_its_cap_while_other_addresses_open_normally() {
    let mut sim = Sim::new(1, FaultConfig::default());
    sim.set_capture(true);
    let s = sim.add_node(addr(2, 2000), 1, server(Some(admission(8)), None));
    let flood = sim.add_node(addr(1, 1000), 1, cfg_id(3));
    let honest: Vec<usize> = (0..3)
        .map(|i| sim.add_node(addr(10 + i, 1000), 1, cfg_id(4 + i)))
        .collect();
    for _ in 0..20 {
        sim.connect(flood, sim.addr(s)).unwrap();
    }
    for &h in &honest {
        sim.connect(h, sim.addr(s)).unwrap();
    }
    sim.run_for(Duration::from_secs(1));
    assert_eq!(
        connected_count(&sim, flood),
        8,
        "the flooding address gets its cap"
    );
    for &h in &honest {
        assert_eq!(connected_count(&sim, h), 1);
    }
    assert_eq!(sim.session_count(s), 11);
    assert_eq!(refusals(&sim, s, 0, RefusalReason::PrefixFull), 12);
    // A full prefix is final: the initiator learns it at once, by an authentic Refused.
    let refused: Vec<_> = disconnects(&sim, flood);
    assert_eq!(refused.len(), 12);
    assert!(
        refused
            .iter()
            .all(|d| d.2 == CloseReason::Refused && d.3 == Closer::Peer)
    );
    // Each Refused answers one Initiation and is smaller than it; nothing else answers them.
    let replies: Vec<_> = sim
        .captured()
        .iter()
        .filter(|d| d.bytes[0] == 0x29)
        .collect();
    assert_eq!(replies.len(), 12);
    assert!(
        replies
            .iter()
            .all(|d| d.bytes.len() == wire::REFUSED_LEN && d.bytes.len() < wire::INITIATION_LEN)
    );
    let st = sim.endpoint(s, 0).stats();
    assert_eq!(st.drops[DropReason::Refused], 12);
    assert_eq!(st.refused_sent, 12);
    // No state and no Diffie-Hellman work for a refused Initiation: 11 handshakes' worth.
    assert_eq!(st.dh_operations, 11 * 5);
}

#[test]
fn a_rate_refusal_leaves_the_handshake_retransmitting_until_admitted() {
    let mut a = admission(100);
    a.new_sessions_per_prefix = RateLimit::per_second(2, 2);
    let mut sim = Sim::new(2, FaultConfig::default());
    let s = sim.add_node(addr(2, 2000), 1, server(Some(a), None));
    let c = sim.add_node(addr(1, 1000), 1, cfg_id(3));
    for _ in 0..5 {
        sim.connect(c, sim.addr(s)).unwrap();
    }
    sim.run_for(Duration::from_millis(100));
    assert_eq!(connected_count(&sim, c), 2, "the burst");
    sim.run_for(Duration::from_secs(5));
    assert_eq!(connected_count(&sim, c), 5, "the rest, as tokens come back");
    assert!(disconnects(&sim, c).is_empty());
    assert!(refusals(&sim, s, 0, RefusalReason::PrefixRate) >= 3);
    assert!(sim.endpoint(c, 0).stats().refused_received >= 3);
}

#[test]
fn refusal_replies_are_rate_limited_and_counted() {
    let mut a = admission(1);
    a.refusal_replies = RateLimit::per_second(1, 2);
    let mut ep = Endpoint::new(
        server(Some(a), None),
        0,
        1,
        ConnIdGen::seed_from_u64(5),
        Timestamp::ZERO,
    )
    .unwrap();
    let mut client = Endpoint::new(
        cfg_id(3),
        0,
        1,
        ConnIdGen::seed_from_u64(6),
        Timestamp::ZERO,
    )
    .unwrap();
    let from = addr(1, 1000);
    let mut buf = vec![0u8; 4096];
    let now = Timestamp::from_millis(1);
    let mut replies = 0;
    for i in 0..10 {
        client
            .connect(Timestamp::ZERO, addr(2, 2000), Some(keypair(2).public))
            .unwrap();
        let t = client.poll_transmit(Timestamp::ZERO, &mut buf).unwrap();
        let init = buf[..t.len].to_vec();
        let _ = ep.handle_datagram(now, from, &init);
        if i == 0 {
            ep.handle_timeout(now); // the first is admitted and answered
        }
        while let Some(t) = ep.poll_transmit(now, &mut buf) {
            assert!(t.len <= init.len());
            replies += usize::from(buf[0] == 0x29);
        }
    }
    let a = ep.admission().unwrap().stats();
    assert_eq!(a.refused[RefusalReason::PrefixFull], 9);
    assert_eq!((a.replies, a.replies_suppressed), (2, 7));
    assert_eq!(replies, 2);
}

#[test]
fn the_manager_trims_to_low_within_one_step_closing_with_trimmed() {
    let mut sim = Sim::new(3, FaultConfig::default());
    let s = sim.add_node(addr(2, 2000), 1, server(None, Some(manager(2, 4))));
    let clients: Vec<usize> = (0..6)
        .map(|i| sim.add_node(addr(10 + i, 1000), 1, cfg_id(4 + i)))
        .collect();
    for &c in &clients {
        sim.connect(c, sim.addr(s)).unwrap();
    }
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.session_count(s), 2, "trimmed to the low watermark");
    let trimmed = disconnects(&sim, s);
    assert_eq!(trimmed.len(), 4);
    assert!(
        trimmed
            .iter()
            .all(|d| d.2 == CloseReason::Trimmed && d.3 == Closer::Local)
    );
    // Within one step: every trim at the instant the fifth session arrived.
    assert!(trimmed.iter().all(|d| d.0 == trimmed[0].0));
    // The peers are told: Close(Trimmed).
    let told: usize = clients
        .iter()
        .map(|&c| {
            disconnects(&sim, c)
                .iter()
                .filter(|d| d.2 == CloseReason::Trimmed && d.3 == Closer::Peer)
                .count()
        })
        .sum();
    assert_eq!(told, 4);
    let m = sim.endpoint(s, 0).manager().unwrap().stats();
    assert_eq!(m.trimmed.total(), 4);
}

#[test]
fn a_forced_trim_spares_protected_sessions_and_the_tags_rank_the_rest() {
    let mut sim = Sim::new(4, FaultConfig::default());
    let s = sim.add_node(addr(2, 2000), 1, server(None, Some(manager(3, 100))));
    let clients: Vec<usize> = (0..6)
        .map(|i| sim.add_node(addr(10 + i, 1000), 1, cfg_id(4 + i)))
        .collect();
    for &c in &clients {
        sim.connect(c, sim.addr(s)).unwrap();
    }
    sim.run_for(Duration::from_secs(1));
    let conns = connected(&sim, s);
    assert_eq!(conns.len(), 6, "below the high watermark: no trim");
    let m = sim.endpoint_mut(s, 0).manager_mut().unwrap();
    m.protect(conns[0], "keep").unwrap();
    m.protect(conns[1], "keep").unwrap();
    m.tag(conns[2], "useful", 50).unwrap();
    m.force_trim();
    sim.run_for(Duration::from_millis(10));
    let gone: Vec<ConnId> = disconnects(&sim, s).iter().map(|d| d.1).collect();
    assert_eq!(gone.len(), 3, "down to the low watermark");
    for kept in &conns[..2] {
        assert!(!gone.contains(kept), "protected sessions are spared");
    }
    assert!(
        !gone.contains(&conns[2]),
        "the tagged session outranks the rest"
    );
    let st = sim.endpoint(s, 0).manager().unwrap().stats();
    assert_eq!(
        st.trimmed[ringwire_shard::session::manager::TrimReason::Forced],
        3
    );
    assert_eq!((st.rounds, st.rounds_short), (1, 0));
}

#[test]
fn the_memory_budget_refuses_sessions_and_sheds_the_largest_queue() {
    let mut a = admission(100);
    a.memory = {
        let mut b = BudgetConfig::default();
        b.session_cost = 1000;
        b.session_limit = 3000;
        b.shed_above = 8000;
        b.limit = 12_000;
        b
    };
    let mut c = plain_cfg();
    c.admission = Some(a);
    let mut ep = Endpoint::new(c, 0, 1, ConnIdGen::seed_from_u64(7), Timestamp::ZERO).unwrap();
    let now = Timestamp::from_millis(1);
    let conns: Vec<ConnId> = (0..3)
        .map(|i| open_plain(&mut ep, now, addr(10 + i, 1000), 100 + u64::from(i)))
        .collect();
    // A fourth session would cross session_limit: refused once its address is proven
    // (plaintext mode asks every initiator for its cookie first), counted under Memory.
    assert_eq!(
        plain_attempt(&mut ep, now, addr(20, 1000), 99),
        Handled::Dropped(DropReason::Refused)
    );
    let stats = ep.admission().unwrap().stats();
    assert_eq!(stats.memory.sessions, 3);
    assert_eq!(stats.refused[RefusalReason::Memory], 1);
    // Queues: 4 x 1000 B on conns[0], 1 x 1000 on conns[1]: 8000 used, at shed_above.
    let payload = [7u8; 1000];
    for _ in 0..4 {
        assert_eq!(ep.send(now, conns[0], &payload), SendOutcome::Queued);
    }
    assert_eq!(ep.send(now, conns[1], &payload), SendOutcome::Queued);
    assert_eq!(ep.admission().unwrap().budget().used(), 3000 + 5000);
    // One more byte on conns[2] crosses shed_above: the largest queue (conns[0]) goes.
    assert_eq!(ep.send(now, conns[2], &payload), SendOutcome::Queued);
    assert!(ep.poll_timeout().is_some_and(|t| t <= now));
    ep.handle_timeout(now);
    assert_eq!(ep.stats().shed_messages, 4);
    let b = ep.admission().unwrap().stats().memory;
    assert_eq!((b.shed_queues, b.shed_bytes), (1, 4000));
    assert_eq!(ep.session_stats(conns[0]).unwrap().queue_depth, 0);
    assert_eq!(ep.session_stats(conns[1]).unwrap().queue_depth, 1);
    // Up to the hard limit, then refused and counted.
    let mut queued = 0;
    while ep.send(now, conns[1], &payload) == SendOutcome::Queued {
        queued += 1;
    }
    assert_eq!(
        queued, 7,
        "3000 sessions + 2000 queued + 7000 more = the 12000 limit"
    );
    assert_eq!(ep.admission().unwrap().stats().memory.queue_refused, 1);
    assert!(ep.admission().unwrap().stats().memory.peak <= 12_000);
    // Sending releases: everything drains, the budget is back to the sessions alone.
    let mut buf = vec![0u8; ep.config().max_datagram()];
    while ep.poll_transmit(now, &mut buf).is_some() {}
    assert_eq!(ep.admission().unwrap().budget().used(), 3000);
    // Closing releases the session.
    let _ = ep.close(now, conns[0], CloseReason::Normal);
    assert_eq!(ep.admission().unwrap().budget().used(), 2000);
    assert!(ep.admission().unwrap().budget().has_room_for_session());
}

/// Two shards, each seeing only its own sessions, keep the node within `max_sessions_node`
/// at every instant and bring it back within the high watermark by exchanging counts.
#[test]
fn two_shards_keep_the_node_within_its_cap_and_its_high_watermark() {
    let mut a = admission(1000);
    a.max_sessions_node = 40;
    let mgr = manager(20, 30);
    let mut sim = Sim::new(5, FaultConfig::default());
    let s = sim.add_node(addr(2, 2000), 2, server(Some(a), Some(mgr.clone())));
    let clients: Vec<usize> = (0..60)
        .map(|i| sim.add_node(addr(10 + i, 1000), 1, cfg_id(10 + i)))
        .collect();
    let mut peak = 0;
    for &c in &clients {
        sim.connect(c, sim.addr(s)).unwrap();
        // Arrivals over 3 s: the exchange (every 100 ms) runs meanwhile.
        let until = sim.now().saturating_add(Duration::from_millis(50));
        while sim.next_event().is_some_and(|t| t <= until) {
            sim.step();
            peak = peak.max(sim.session_count(s));
        }
    }
    let settle = mgr.grace_period + mgr.silence_period + Duration::from_millis(3 * 100);
    let until = sim.now().saturating_add(settle + Duration::from_secs(1));
    while sim.next_event().is_some_and(|t| t <= until) {
        sim.step();
        peak = peak.max(sim.session_count(s));
    }
    assert!(peak <= 40, "the node cap held at every step: peak {peak}");
    let total = sim.session_count(s);
    assert!(
        (20 - 2..=30).contains(&total),
        "settled within [L - N, H]: {total}"
    );
    for shard in 0..2 {
        let ep = sim.endpoint(s, shard);
        assert!(ep.session_count() > 0, "both shards hold sessions");
        assert!(ep.admission().unwrap().stats().node.rounds > 10);
    }
    let trims: u64 = (0..2)
        .map(|k| {
            sim.endpoint(s, k)
                .manager()
                .unwrap()
                .stats()
                .trimmed
                .total()
        })
        .sum();
    assert!(trims > 0);
}

/// Plaintext mode: an Initiation from `from`, its CookieReply, and the Initiation with mac2;
/// what the endpoint did with the second.
fn plain_attempt(ep: &mut Endpoint, now: Timestamp, from: SocketAddr, cid: u64) -> Handled {
    use ringwire_shard::session::{cookie, crypto, handshake};
    let mut buf = vec![0u8; ep.config().max_datagram()];
    let mut init = [0u8; wire::INITIATION_LEN];
    let n = handshake::write_plain_initiation(cid, 0, None, &mut init);
    assert_eq!(ep.handle_datagram(now, from, &init[..n]), Handled::Consumed);
    let t = ep.poll_transmit(now, &mut buf).unwrap();
    let wire::Body::CookieReply { nonce, sealed } = wire::parse(&buf[..t.len]).unwrap().body else {
        panic!("expected a CookieReply")
    };
    let mut mac1 = [0u8; 16];
    mac1.copy_from_slice(&init[wire::field::INIT_PLAIN_MAC1]);
    let c =
        crypto::open_cookie(&cookie::cookie_seal_key(&[0; 32]), &nonce, &mac1, &sealed).unwrap();
    let n = handshake::write_plain_initiation(cid, 1, Some(c), &mut init);
    ep.handle_datagram(now, from, &init[..n])
}
