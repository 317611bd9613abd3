//! Protocol version 2's security properties, each as an attack on a live exchange: wrong or
//! unknown keys, tampering with any byte of any message, replays, reflection, rekeying under
//! loss, stateless resets, bounded Diffie-Hellman work, plaintext mode.
//! Deterministic: every time is virtual (seeded simulator, no wall clock).
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::collections::HashSet;

use common::*;
use ringwire_shard::session::sim::Captured;
use ringwire_shard::session::{NoiseConfig, Security};

fn ep(config: EndpointConfig, seed: u64) -> Endpoint {
    Endpoint::new(
        config,
        0,
        1,
        ConnIdGen::seed_from_u64(seed),
        Timestamp::ZERO,
    )
    .unwrap()
}

/// Drives `ep` like a loop turn at `now`: timers and handshake work, then every transmit.
fn turn(ep: &mut Endpoint, now: Timestamp) -> Vec<Vec<u8>> {
    ep.handle_timeout(now);
    let mut buf = vec![0u8; 4096];
    let mut out = Vec::new();
    while let Some(t) = ep.poll_transmit(now, &mut buf) {
        out.push(buf[..t.len].to_vec());
    }
    out
}

/// Client (identity 3) and server (identity 2) sims, the datagrams of one exchange captured.
fn captured_exchange(seed: u64) -> (Sim, ConnId, ConnId, Vec<Captured>) {
    let mut sim = Sim::new(seed, FaultConfig::default());
    sim.set_capture(true);
    let c = sim.add_node(addr(1, 1000), 1, cfg_id(3));
    let s = sim.add_node(addr(2, 2000), 1, cfg_id(2));
    let cc = sim.connect(c, sim.addr(s)).unwrap();
    sim.run_for(Duration::from_millis(100));
    let sc = server_conn(&sim, s).unwrap();
    let _ = sim.send(c, cc, b"to the server");
    let _ = sim.send(s, sc, b"to the client");
    sim.run_for(Duration::from_millis(100));
    let captured = sim.captured().to_vec();
    (sim, cc, sc, captured)
}

fn of_type(captured: &[Captured], ty: u8, to: SocketAddr) -> Vec<Captured> {
    captured
        .iter()
        .filter(|d| d.bytes[0] == 0x20 | ty && d.to == to)
        .cloned()
        .collect()
}

#[test]
fn wrong_responder_key_gets_nothing_and_costs_the_responder_no_dh() {
    let mut sim = Sim::new(1, FaultConfig::default());
    let c = sim.add_node(addr(1, 1000), 1, cfg_id(3));
    let s = sim.add_node(addr(2, 2000), 1, cfg_id(2));
    let wrong = keypair(7).public;
    let cc = sim.connect_with_key(c, sim.addr(s), Some(wrong)).unwrap();
    sim.run_for(Duration::from_secs(11));
    let st = sim.endpoint(s, 0).stats();
    assert_eq!(st.drops[DropReason::BadMac], 7, "every attempt, counted");
    assert_eq!((st.dh_operations, st.datagrams_out), (0, 0));
    assert_eq!(sim.session_count(s), 0);
    let d = disconnects(&sim, c);
    assert_eq!((d[0].1, d[0].2), (cc, CloseReason::HandshakeTimeout));
}

#[test]
fn unknown_initiator_is_refused_by_the_allow_list_and_the_admission_callback() {
    let mut server = cfg_id(2);
    if let Security::Noise(n) = &mut server.security {
        n.allowed_peers = Some(HashSet::from([keypair(5).public]));
    }
    let mut sim = Sim::new(2, FaultConfig::default());
    let stranger = sim.add_node(addr(1, 1000), 1, cfg_id(3));
    let friend = sim.add_node(addr(3, 1000), 1, cfg_id(5));
    let s = sim.add_node(addr(2, 2000), 1, server);
    sim.connect(stranger, sim.addr(s)).unwrap();
    sim.connect(friend, sim.addr(s)).unwrap();
    sim.run_for(Duration::from_secs(11));
    let st = sim.endpoint(s, 0).stats();
    assert_eq!(
        st.drops[DropReason::NotAllowed],
        7,
        "each attempt authenticated, then refused by the allow list"
    );
    assert_eq!(
        st.drops[DropReason::NotAdmitted],
        0,
        "not the application's refusal"
    );
    assert_eq!(connected(&sim, s).len(), 1, "only the allowed key");
    assert_eq!(connected(&sim, stranger), vec![]);
    assert_eq!(
        disconnects(&sim, stranger)[0].2,
        CloseReason::HandshakeTimeout
    );

    // The application's callback sees the authenticated key and address, and decides.
    let mut server = ep(cfg_id(2), 1);
    let mut client = ep(cfg_id(3), 2);
    let _ = client
        .connect(Timestamp::ZERO, addr(2, 2000), Some(keypair(2).public))
        .unwrap();
    let init = turn(&mut client, Timestamp::ZERO).remove(0);
    assert_eq!(
        server.handle_datagram(Timestamp::ZERO, addr(1, 1000), &init),
        Handled::Consumed
    );
    let mut seen = Vec::new();
    server.handle_timeout_with(Timestamp::ZERO, &mut |key, from| {
        seen.push((*key, from));
        false
    });
    assert_eq!(seen, vec![(keypair(3).public, addr(1, 1000))]);
    assert_eq!(server.stats().drops[DropReason::NotAdmitted], 1);
    assert_eq!(server.stats().drops[DropReason::NotAllowed], 0);
    assert_eq!(server.session_count(), 0);
    assert_eq!(
        turn(&mut server, Timestamp::ZERO),
        Vec::<Vec<u8>>::new(),
        "no reply"
    );
}

/// Every byte of an Initiation that mac1 or Noise authenticates (0..152), changed: no session,
/// no reply, counted. (mac2, bytes 152..168, is only read under load: see the next test.)
#[test]
fn tampered_initiation_creates_nothing() {
    let mut client = ep(cfg_id(3), 2);
    let _ = client
        .connect(Timestamp::ZERO, addr(2, 2000), Some(keypair(2).public))
        .unwrap();
    let init = turn(&mut client, Timestamp::ZERO).remove(0);
    let mut server = ep(cfg_id(2), 1);
    for i in 0..152 {
        let mut b = init.clone();
        b[i] ^= 0x01;
        let h = server.handle_datagram(Timestamp::ZERO, addr(1, 1000), &b);
        assert!(
            matches!(h, Handled::Dropped(_) | Handled::Consumed),
            "byte {i}: {h:?}"
        );
        assert!(
            turn(&mut server, Timestamp::ZERO).is_empty(),
            "byte {i}: a reply"
        );
        assert_eq!(server.session_count(), 0, "byte {i}");
    }
    let st = server.stats();
    assert_eq!(st.drops.total(), 152, "each counted once: {:?}", st.drops);
    assert_eq!(st.handshakes_completed, 0);
    // The untouched one still works.
    let _ = server.handle_datagram(Timestamp::ZERO, addr(1, 1000), &init);
    assert_eq!(turn(&mut server, Timestamp::ZERO).len(), 1);
    assert_eq!(server.stats().handshakes_completed, 1);
}

#[test]
fn under_load_a_tampered_mac2_gets_a_cookie_not_a_session() {
    let mut config = cfg_id(2);
    config.handshakes_per_second = 1;
    let mut server = ep(config, 1);
    let mut client = ep(cfg_id(3), 2);
    let key = Some(keypair(2).public);
    // Exhaust the one token with another initiator's handshake.
    let mut other = ep(cfg_id(4), 3);
    let _ = other.connect(Timestamp::ZERO, addr(2, 2000), key).unwrap();
    let first = turn(&mut other, Timestamp::ZERO).remove(0);
    let _ = server.handle_datagram(Timestamp::ZERO, addr(4, 4000), &first);
    let _ = turn(&mut server, Timestamp::ZERO);
    // Now under load: the client's Initiation draws a CookieReply; it answers with mac2.
    let cc = client.connect(Timestamp::ZERO, addr(2, 2000), key).unwrap();
    let init = turn(&mut client, Timestamp::ZERO).remove(0);
    let _ = server.handle_datagram(Timestamp::ZERO, addr(1, 1000), &init);
    let reply = turn(&mut server, Timestamp::ZERO);
    assert_eq!(
        (reply.len(), reply[0][0], reply[0].len()),
        (1, 0x23, wire::COOKIE_REPLY_LEN)
    );
    // Any byte of the CookieReply changed: dropped, and the client sends nothing.
    for i in 0..reply[0].len() {
        let mut b = reply[0].clone();
        b[i] ^= 0x01;
        let h = client.handle_datagram(Timestamp::ZERO, addr(2, 2000), &b);
        assert!(matches!(h, Handled::Dropped(_)), "byte {i}: {h:?}");
        assert!(turn(&mut client, Timestamp::ZERO).is_empty(), "byte {i}");
    }
    assert_eq!(
        client.handle_datagram(Timestamp::ZERO, addr(2, 2000), &reply[0]),
        Handled::Consumed
    );
    let with_mac2 = turn(&mut client, Timestamp::ZERO).remove(0);
    assert_ne!(&with_mac2[152..], &[0u8; 16]);
    let dh_before = server.stats().dh_operations;
    for i in 152..168 {
        let mut b = with_mac2.clone();
        b[i] ^= 0x80;
        let _ = server.handle_datagram(Timestamp::ZERO, addr(1, 1000), &b);
        let out = turn(&mut server, Timestamp::ZERO);
        assert!(
            out.iter().all(|d| d[0] == 0x23),
            "byte {i}: only a CookieReply"
        );
    }
    assert_eq!(
        server.stats().dh_operations,
        dh_before,
        "no DH for a bad mac2"
    );
    assert_eq!(
        server.stats().handshakes_completed,
        1,
        "only the other initiator's"
    );
    // The genuine mac2 passes.
    let _ = server.handle_datagram(Timestamp::ZERO, addr(1, 1000), &with_mac2);
    let out = turn(&mut server, Timestamp::ZERO);
    assert_eq!(out[0][0], 0x22, "a Response");
    assert_eq!(
        client.handle_datagram(Timestamp::ZERO, addr(2, 2000), &out[0]),
        Handled::Consumed
    );
    assert_eq!(
        client.session_stats(cc).unwrap().state,
        SessionState::Established
    );
}

/// Every byte of a Response, changed: the initiator drops it (mac1) without spending its
/// handshake, which the genuine Response then completes.
#[test]
fn tampered_response_is_dropped_and_the_genuine_one_still_completes() {
    let mut client = ep(cfg_id(3), 2);
    let mut server = ep(cfg_id(2), 1);
    let cc = client
        .connect(Timestamp::ZERO, addr(2, 2000), Some(keypair(2).public))
        .unwrap();
    let init = turn(&mut client, Timestamp::ZERO).remove(0);
    let _ = server.handle_datagram(Timestamp::ZERO, addr(1, 1000), &init);
    let resp = turn(&mut server, Timestamp::ZERO).remove(0);
    for i in 0..resp.len() {
        let mut b = resp.clone();
        b[i] ^= 0x01;
        let h = client.handle_datagram(Timestamp::ZERO, addr(2, 2000), &b);
        assert!(matches!(h, Handled::Dropped(_)), "byte {i}: {h:?}");
    }
    assert_eq!(
        client.stats().dh_operations,
        3,
        "only writing the Initiation"
    );
    assert_eq!(
        client.session_stats(cc).unwrap().state,
        SessionState::Handshaking
    );
    assert_eq!(
        client.handle_datagram(Timestamp::ZERO, addr(2, 2000), &resp),
        Handled::Consumed
    );
    assert_eq!(
        client.session_stats(cc).unwrap().state,
        SessionState::Established
    );
}

/// Every byte of every transport message (Data and Ping from the client, Pong and Data from
/// the server), changed and delivered to its receiver: never accepted, never delivered,
/// always counted.
#[test]
fn tampered_transport_messages_are_never_delivered() {
    let (mut sim, cc, sc, captured) = captured_exchange(3);
    let (c, s) = (0, 1);
    let mut to_check: Vec<Captured> = Vec::new();
    for (ty, to) in [
        (4u8, sim.addr(s)),
        (5, sim.addr(s)),
        (6, sim.addr(c)),
        (4, sim.addr(c)),
    ] {
        to_check.push(of_type(&captured, ty, to)[0].clone());
    }
    let messages_before = (messages(&sim, c).len(), messages(&sim, s).len());
    for d in &to_check {
        let node = if d.to == sim.addr(s) { s } else { c };
        for i in 0..d.bytes.len() {
            let mut b = d.bytes.clone();
            b[i] ^= 0x01;
            let now = sim.now();
            let before = sim.endpoint(node, 0).stats().drops.total();
            let h = sim.endpoint_mut(node, 0).handle_datagram(now, d.from, &b);
            assert!(
                matches!(h, Handled::Dropped(_)),
                "type {:#x} byte {i}: {h:?}",
                d.bytes[0]
            );
            assert_eq!(sim.endpoint(node, 0).stats().drops.total(), before + 1);
        }
    }
    sim.flush();
    assert_eq!(
        (messages(&sim, c).len(), messages(&sim, s).len()),
        messages_before
    );
    assert!(sim.endpoint(s, 0).session_stats(sc).unwrap().drops[DropReason::DecryptFailed] > 0);
    assert!(sim.endpoint(c, 0).session_stats(cc).is_some());
}

/// A captured Initiation replayed creates no session: not while the session lives, not after
/// it closed, not from another address.
#[test]
fn replayed_initiation_creates_no_session_even_after_close() {
    let (mut sim, cc, sc, captured) = captured_exchange(4);
    let (c, s) = (0, 1);
    let init = of_type(&captured, 1, sim.addr(s))[0].clone();
    sim.inject(init.from, init.to, init.bytes.clone());
    sim.inject(addr(9, 9), init.to, init.bytes.clone());
    sim.run_for(Duration::from_millis(50));
    assert_eq!(sim.session_count(s), 1);
    let _ = sim.close(c, cc, CloseReason::Normal);
    sim.run_for(Duration::from_millis(50));
    assert_eq!(disconnects(&sim, s)[0].1, sc);
    assert_eq!(sim.session_count(s), 0);
    for _ in 0..3 {
        sim.inject(init.from, init.to, init.bytes.clone());
    }
    sim.run_for(Duration::from_secs(1));
    let st = sim.endpoint(s, 0).stats();
    assert_eq!(
        st.drops[DropReason::ReplayedInitiation],
        5,
        "{:?}",
        st.drops
    );
    assert_eq!(sim.session_count(s), 0);
    assert_eq!(st.handshakes_completed, 1);
    assert_eq!(connected(&sim, s).len(), 1);
    // Once the replay window has passed, the clock check refuses it.
    sim.run_for(Duration::from_secs(200));
    sim.inject(init.from, init.to, init.bytes.clone());
    sim.run_for(Duration::from_secs(1));
    let st = sim.endpoint(s, 0).stats();
    assert_eq!(st.drops[DropReason::StaleTimestamp], 1);
    assert_eq!(st.replay_entries, 0, "forgotten after the window");
}

/// A session's own datagram sent back to it is never accepted: the server's Data to the
/// client, returned to the server (it names the client's ID: unknown there), or re-addressed
/// to the server's own ID (a packet number already seen, or, with a fresh one, keys that are
/// per direction: it does not decrypt).
#[test]
fn reflected_data_is_not_accepted() {
    let (mut sim, _cc, sc, captured) = captured_exchange(5);
    let s = 1;
    let back = of_type(&captured, 4, sim.addr(0))[0].clone();
    let now = sim.now();
    let h = sim
        .endpoint_mut(s, 0)
        .handle_datagram(now, back.to, &back.bytes);
    assert_eq!(h, Handled::Dropped(DropReason::UnknownConnection));
    let mut readdressed = back.bytes.clone();
    readdressed[4..12].copy_from_slice(&sc.0.to_be_bytes());
    let h = sim
        .endpoint_mut(s, 0)
        .handle_datagram(now, back.to, &readdressed);
    // Its packet number was already seen from the client: refused before decryption.
    assert_eq!(h, Handled::Dropped(DropReason::Duplicate));
    // With a number the server has not seen, it still does not decrypt.
    readdressed[12..20].copy_from_slice(&1000u64.to_be_bytes());
    let h = sim
        .endpoint_mut(s, 0)
        .handle_datagram(now, back.to, &readdressed);
    assert_eq!(h, Handled::Dropped(DropReason::DecryptFailed));
    sim.flush();
    assert_eq!(messages(&sim, s), vec![b"to the server".to_vec()]);
}

/// Keys rotate every 50 datagrams in each direction while 30% of datagrams are lost and some
/// reordered: every Data that reaches its receiver is delivered (no authentic datagram is
/// dropped), the session keeps its IDs, and both sides rotated many times.
#[test]
fn rekey_under_loss_loses_no_datagram_that_arrives() {
    let mut config = cfg();
    config.rekey_after_messages = 50;
    let faults = FaultConfig {
        loss: 0.3,
        reorder: 0.1,
        reorder_delay: Duration::from_millis(30),
        ..FaultConfig::default()
    };
    let (mut sim, cc, sc) = established(6, config.clone(), config);
    let (c, s) = (0, 1);
    sim.set_faults(faults);
    for i in 0..2000u32 {
        let _ = sim.send(c, cc, &i.to_be_bytes());
        let _ = sim.send(s, sc, &i.to_be_bytes());
        sim.run_for(Duration::from_millis(2));
    }
    sim.set_faults(FaultConfig::default());
    sim.run_for(Duration::from_millis(200));
    for (node, conn) in [(c, cc), (s, sc)] {
        let st = sim.endpoint(node, 0).session_stats(conn).unwrap();
        assert_eq!(st.drops.total(), 0, "node {node}: {:?}", st.drops);
        let e = sim.endpoint(node, 0).stats();
        assert!(e.key_updates >= 2000 / 50 - 1, "node {node}: {e:?}");
        assert!(
            e.key_updates_received >= 2000 / 50 - 1,
            "node {node}: {e:?}"
        );
        // Each side received what arrived: about 70% of 2000 Data.
        let got = messages(&sim, 1 - node).len();
        assert!(got > 1000, "node {node} delivered {got}");
    }
    assert!(disconnects(&sim, c).is_empty() && disconnects(&sim, s).is_empty());
}

/// A server that restarted (same identity, no sessions) answers a datagram for a session it
/// no longer has with a Reset, no larger than the datagram; the client ends the session at
/// once. Resets are rate-limited, and forged ones are ignored.
#[test]
fn restart_is_not_silent_the_client_learns_at_once() {
    let (mut sim, cc, _sc) = established(7, cfg_id(3), cfg_id(2));
    let (c, s) = (0, 1);
    let (client_addr, server_addr) = (sim.addr(c), sim.addr(s));
    // Restart: a fresh endpoint with the same configuration (same identity).
    let restarted =
        Endpoint::new(cfg_id(2), 0, 1, ConnIdGen::seed_from_u64(99), sim.now()).unwrap();
    *sim.endpoint_mut(s, 0) = restarted;
    let now = sim.now();
    let mut buf = vec![0u8; 2048];
    assert_eq!(
        sim.endpoint_mut(c, 0).send(now, cc, b"anyone there?"),
        SendOutcome::Queued
    );
    let t = sim.endpoint_mut(c, 0).poll_transmit(now, &mut buf).unwrap();
    let data = buf[..t.len].to_vec();
    let h = sim
        .endpoint_mut(s, 0)
        .handle_datagram(now, client_addr, &data);
    assert_eq!(h, Handled::Dropped(DropReason::UnknownConnection));
    let t = sim.endpoint_mut(s, 0).poll_transmit(now, &mut buf).unwrap();
    assert_eq!((t.dst, t.conn), (client_addr, None));
    let reset = buf[..t.len].to_vec();
    assert_eq!(reset[0], 0x28);
    assert!(reset.len() < data.len(), "no larger than its trigger");
    assert_eq!(sim.endpoint(s, 0).stats().resets_sent, 1);
    // Every byte of the Reset changed: ignored, the session stays.
    for i in 0..reset.len() {
        let mut b = reset.clone();
        b[i] ^= 0x01;
        let h = sim.endpoint_mut(c, 0).handle_datagram(now, server_addr, &b);
        assert!(matches!(h, Handled::Dropped(_)), "byte {i}: {h:?}");
    }
    assert!(sim.endpoint(c, 0).session_stats(cc).is_some(), "still open");
    // The genuine one ends it at once.
    assert_eq!(
        sim.endpoint_mut(c, 0)
            .handle_datagram(now, server_addr, &reset),
        Handled::Consumed
    );
    sim.flush();
    let d = disconnects(&sim, c);
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].1, d[0].2, d[0].3),
        (cc, CloseReason::Reset, Closer::Peer)
    );

    // Through the network: the same, end to end.
    let (mut sim, cc, _sc) = established(17, cfg_id(3), cfg_id(2));
    let restarted =
        Endpoint::new(cfg_id(2), 0, 1, ConnIdGen::seed_from_u64(98), sim.now()).unwrap();
    *sim.endpoint_mut(s, 0) = restarted;
    let _ = sim.send(c, cc, b"anyone there?");
    sim.run_for(Duration::from_millis(50));
    assert_eq!(disconnects(&sim, c)[0].2, CloseReason::Reset);

    // A forged Reset (wrong token) for a live session is ignored.
    let (mut sim, cc, sc) = established(8, cfg_id(3), cfg_id(2));
    let mut forged = vec![0x28, 0, 0, 0];
    forged.extend_from_slice(&sc.0.to_be_bytes());
    forged.extend_from_slice(&[0xaa; 16]);
    let now = sim.now();
    let from = sim.addr(s);
    assert_eq!(
        sim.endpoint_mut(c, 0).handle_datagram(now, from, &forged),
        Handled::Dropped(DropReason::BadMac)
    );
    assert!(sim.endpoint(c, 0).session_stats(cc).is_some());

    // Rate limit: a flood of datagrams for unknown IDs draws at most the burst.
    let mut config = cfg_id(2);
    config.resets_per_second = 100;
    let mut server = ep(config, 1);
    let mut unknown = vec![0u8; 64];
    wire::write_header(
        &mut unknown,
        wire::MsgType::Data,
        0,
        0x0000_0000_dead_beef,
        1,
    );
    for _ in 0..1000 {
        let _ = server.handle_datagram(Timestamp::ZERO, addr(9, 9), &unknown);
    }
    let out = turn(&mut server, Timestamp::ZERO);
    let st = server.stats();
    assert_eq!(out.len() as u64, st.resets_sent);
    assert_eq!(st.resets_sent, 100, "the burst of resets_per_second");
    assert_eq!(st.resets_suppressed, 900);
    assert!(out.iter().all(|r| r.len() == wire::RESET_LEN));
}

/// Authenticated Data longer than the receiver's `max_payload` is dropped under `TooLarge`,
/// never delivered.
#[test]
fn oversized_data_is_dropped_and_counted() {
    let mut big = cfg();
    big.max_payload = 1500;
    let (mut sim, cc, sc) = established(9, big, cfg());
    assert_eq!(sim.send(0, cc, &[7u8; 1500]), SendOutcome::Queued);
    assert_eq!(sim.send(0, cc, &[7u8; 1200]), SendOutcome::Queued);
    sim.run_for(Duration::from_millis(50));
    let st = sim.endpoint(1, 0).session_stats(sc).unwrap();
    assert_eq!(st.drops[DropReason::TooLarge], 1);
    assert_eq!(messages(&sim, 1), vec![vec![7u8; 1200]]);
}

/// No violation draws a Close(ProtocolError) (PROTOCOL.md §8): oversized authenticated Data, a
/// replayed and a tampered Data, a truncated datagram, unknown version and type, non-zero flag
/// bits, all from the peer's own address on a live session, are each dropped and counted; the
/// server sends nothing back, and the session lives on. (A reflected datagram names the
/// peer's CID, not one of ours: `reflected_data_is_not_accepted`.)
#[test]
fn violations_draw_no_close_and_the_session_lives_on() {
    let mut big = cfg_id(3);
    big.max_payload = 1500;
    let mut sim = Sim::new(19, FaultConfig::default());
    sim.set_capture(true);
    let c = sim.add_node(addr(1, 1000), 1, big);
    let s = sim.add_node(addr(2, 2000), 1, cfg_id(2));
    let cc = sim.connect(c, sim.addr(s)).unwrap();
    sim.run_for(Duration::from_millis(100));
    assert!(server_conn(&sim, s).is_some());
    assert_eq!(sim.send(c, cc, &[7u8; 1500]), SendOutcome::Queued);
    assert_eq!(sim.send(c, cc, b"fine"), SendOutcome::Queued);
    sim.run_for(Duration::from_millis(50));
    let (client, server) = (sim.addr(c), sim.addr(s));
    let data = of_type(sim.captured(), 4, server).pop().unwrap().bytes;
    let mut bad = vec![data.clone(), data[..10].to_vec()];
    let mut tampered = data.clone();
    *tampered.last_mut().unwrap() ^= 1;
    bad.push(tampered);
    for (at, value) in [(0, 0x34), (0, 0x29), (1, 0x02)] {
        let mut d = data.clone();
        d[at] = value;
        bad.push(d);
    }
    let before = sim.captured().len();
    let drops_before = sim.endpoint(s, 0).stats().drops.total();
    for d in &bad {
        sim.inject(client, server, d.clone());
    }
    sim.run_for(Duration::from_millis(50));
    let st = sim.endpoint(s, 0).stats();
    assert_eq!(st.drops.total() - drops_before, bad.len() as u64, "{st:?}");
    assert_eq!(st.drops[DropReason::TooLarge], 1);
    let sent_after: Vec<&Captured> = sim.captured()[before..]
        .iter()
        .filter(|d| d.from == server)
        .collect();
    assert!(
        sent_after.is_empty(),
        "no reply to any violation: {sent_after:?}"
    );
    assert!(
        of_type(sim.captured(), 7, client).is_empty(),
        "never a Close"
    );
    assert_eq!(sim.send(c, cc, b"still here"), SendOutcome::Queued);
    sim.run_for(Duration::from_millis(50));
    assert_eq!(
        messages(&sim, s),
        vec![b"fine".to_vec(), b"still here".to_vec()]
    );
}

/// Diffie-Hellman work per turn is bounded: with `handshakes_per_turn` 2, ten queued
/// Initiations take five turns, and a live session's datagram is handled at once meanwhile.
#[test]
fn dh_work_per_turn_is_bounded() {
    let mut config = cfg_id(2);
    config.handshakes_per_turn = 2;
    let mut server = ep(config, 1);
    let key = Some(keypair(2).public);
    let mut inits = Vec::new();
    for i in 0..10u8 {
        let mut client = ep(cfg_id(10 + i), u64::from(i) + 10);
        let _ = client.connect(Timestamp::ZERO, addr(2, 2000), key).unwrap();
        inits.push(turn(&mut client, Timestamp::ZERO).remove(0));
    }
    for (i, b) in inits.iter().enumerate() {
        assert_eq!(
            server.handle_datagram(Timestamp::ZERO, addr(50 + i as u8, 1), b),
            Handled::Consumed
        );
    }
    assert_eq!(
        server.stats().dh_operations,
        0,
        "nothing inside handle_datagram"
    );
    assert_eq!(server.poll_timeout(), Some(Timestamp::ZERO), "due now");
    for turn_no in 1..=5u64 {
        let out = turn(&mut server, Timestamp::ZERO);
        assert_eq!(out.len(), 2, "turn {turn_no}");
        assert_eq!(server.stats().handshakes_completed, 2 * turn_no);
        assert_eq!(server.stats().dh_operations, 5 * 2 * turn_no);
    }
    assert_eq!(server.stats().handshake_queue_depth, 0);
}

#[test]
fn plaintext_mode_works_and_does_not_talk_to_noise() {
    let (mut sim, cc, sc) = established(10, plain_cfg(), plain_cfg());
    assert_eq!(sim.send(0, cc, b"clear"), SendOutcome::Queued);
    sim.run_for(Duration::from_millis(50));
    assert_eq!(messages(&sim, 1), vec![b"clear".to_vec()]);
    assert_eq!(sim.endpoint(1, 0).session_stats(sc).unwrap().peer_key, None);
    assert_eq!(sim.endpoint(0, 0).stats().dh_operations, 0);

    let mut sim = Sim::new(11, FaultConfig::default());
    let c = sim.add_node(addr(1, 1000), 1, plain_cfg());
    let s = sim.add_node(addr(2, 2000), 1, cfg());
    sim.connect(c, sim.addr(s)).unwrap();
    sim.run_for(Duration::from_secs(11));
    assert_eq!(
        sim.endpoint(s, 0).stats().drops[DropReason::SecurityMismatch],
        7
    );
    assert_eq!(disconnects(&sim, c)[0].2, CloseReason::HandshakeTimeout);
}

/// With the uniform v2 steering rule (byte 4 mod N), Initiations reach the shard their route
/// byte names directly: nothing is handed over, and each session lives on the shard that
/// owns its ID.
#[test]
fn uniform_steering_needs_no_handoff() {
    let mut sim = Sim::new(12, FaultConfig::default());
    sim.set_uniform_steering(true);
    let s = sim.add_node(addr(2, 2000), 4, cfg_id(2));
    let clients: Vec<usize> = (0..8)
        .map(|i| sim.add_node(addr(10 + i, 1000), 1, cfg_id(3)))
        .collect();
    for &c in &clients {
        sim.connect(c, sim.addr(s)).unwrap();
    }
    sim.run_for(Duration::from_millis(100));
    assert_eq!(connected(&sim, s).len(), 8);
    let forwarded: u64 = (0..4).map(|k| sim.endpoint(s, k).stats().forwarded).sum();
    assert_eq!(forwarded, 0);
    let shards: HashSet<u16> = connected(&sim, s).iter().map(|c| c.shard()).collect();
    assert!(
        shards.len() > 1,
        "one key's sessions spread over shards: {shards:?}"
    );
}

#[test]
fn debug_output_never_prints_key_material() {
    let mut n = NoiseConfig::new(keypair(9));
    n.psk = [0x77; 32];
    let s = format!("{n:?}");
    assert!(!s.contains("119") && s.contains("psk: true"), "{s}");
    let mut config = cfg_id(9);
    config.cookie_key = [0x66; 32];
    config.security = Security::Noise(Box::new(n));
    let (mut sim, _cc, _sc) = established(30, config.clone(), config.clone());
    let all = format!("{config:?} {:?}", sim.endpoint_mut(0, 0));
    // 0x66 = 102, 0x77 = 119, private key bytes 9.
    for secret in ["102, 102", "119, 119", "9, 9, 9", "[9; 32]"] {
        assert!(!all.contains(secret), "{secret} in {all}");
    }
    assert!(all.contains("Key(..)"), "{all}");
}

/// A multi-shard client places sessions to a server on `connect_shard(server, N)`; a Reset
/// from that server arrives wherever byte 4 (the server's shard) steers it and is handed to
/// that shard.
#[test]
fn a_reset_reaches_the_client_shard_that_holds_the_session() {
    use ringwire_shard::session::connect_shard;
    let server_addr = (2000..)
        .map(|p| addr(2, p))
        .find(|a| connect_shard(*a, 4) != 0)
        .unwrap();
    let mut sim = Sim::new(21, FaultConfig::default());
    let c = sim.add_node(addr(1, 1000), 4, cfg_id(3));
    let s = sim.add_node(server_addr, 1, cfg_id(2));
    let cc = sim.connect(c, server_addr).unwrap();
    assert_ne!(cc.shard(), 0);
    sim.run_for(Duration::from_millis(100));
    *sim.endpoint_mut(s, 0) =
        Endpoint::new(cfg_id(2), 0, 1, ConnIdGen::seed_from_u64(5), sim.now()).unwrap();
    let _ = sim.send(c, cc, b"hello?");
    sim.run_for(Duration::from_millis(50));
    assert_eq!(disconnects(&sim, c)[0].2, CloseReason::Reset);
    assert_eq!(
        sim.endpoint(c, 0).stats().forwarded,
        1,
        "steered to shard 0, handed over"
    );
}
