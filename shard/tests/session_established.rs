//! Established sessions: replay window, timers, close, queues, drops, relay messages.
//! Deterministic: every time is virtual (seeded simulator, no wall clock).
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use common::*;

#[test]
fn duplicates_and_replays_are_rejected() {
    let (mut sim, cc, sc) = established(4, cfg(), cfg());
    let (c, s) = (0, 1);
    sim.set_capture(true);
    let _ = sim.send(c, cc, b"once");
    sim.run_for(Duration::from_millis(50));
    let data = sim
        .captured()
        .iter()
        .find(|d| d.bytes[0] & 0x0f == 4)
        .unwrap()
        .clone();
    for _ in 0..3 {
        sim.inject(data.from, data.to, data.bytes.clone());
    }
    sim.run_for(Duration::from_millis(50));
    assert_eq!(messages(&sim, s), vec![b"once".to_vec()]);
    let st = sim.endpoint(s, 0).session_stats(sc).unwrap();
    assert_eq!(st.drops[DropReason::Duplicate], 3);
    assert_eq!(sim.endpoint(s, 0).stats().drops[DropReason::Duplicate], 3);
    // The same bytes from another address never reach the session.
    sim.inject(addr(7, 7), data.to, data.bytes.clone());
    sim.run_for(Duration::from_millis(50));
    assert_eq!(
        sim.endpoint(s, 0).stats().drops[DropReason::AddressMismatch],
        1
    );
    assert_eq!(messages(&sim, s).len(), 1);
}

#[test]
fn reordered_within_window_accepted_and_too_old_rejected() {
    let (mut sim, cc, sc) = established(5, cfg(), cfg());
    let (c, s) = (0, 1);
    // Black-hole the network, record what the client sends, then deliver it backwards.
    sim.set_faults(FaultConfig {
        loss: 1.0,
        ..FaultConfig::default()
    });
    sim.set_capture(true);
    for i in 0..200u32 {
        assert_eq!(sim.send(c, cc, &i.to_be_bytes()), SendOutcome::Queued);
    }
    let sent: Vec<_> = sim.captured().to_vec();
    assert_eq!(sent.len(), 200);
    sim.set_faults(FaultConfig::default());
    for d in sent.iter().rev() {
        sim.inject(d.from, d.to, d.bytes.clone());
    }
    sim.run_for(Duration::from_millis(50));
    let got = messages(&sim, s);
    assert_eq!(got.len(), 200);
    assert_eq!(got[0], 199u32.to_be_bytes());
    assert_eq!(got[199], 0u32.to_be_bytes());
    assert_eq!(
        sim.endpoint(s, 0).session_stats(sc).unwrap().drops.total(),
        0
    );

    // Now push the window 1100 numbers ahead and replay an old, never-delivered one.
    sim.set_faults(FaultConfig {
        loss: 1.0,
        ..FaultConfig::default()
    });
    sim.set_capture(true);
    for i in 0..1100u32 {
        let _ = sim.send(c, cc, &i.to_be_bytes());
    }
    let held: Vec<_> = sim.captured().to_vec();
    sim.set_faults(FaultConfig::default());
    let last = held.last().unwrap();
    sim.inject(last.from, last.to, last.bytes.clone());
    sim.inject(held[0].from, held[0].to, held[0].bytes.clone());
    // 1000 behind the highest: inside the bitmap's reach only if within 960..1023.
    sim.inject(
        held[1099 - 900].from,
        held[0].to,
        held[1099 - 900].bytes.clone(),
    );
    sim.run_for(Duration::from_millis(50));
    let st = sim.endpoint(s, 0).session_stats(sc).unwrap();
    assert_eq!(st.drops[DropReason::TooOld], 1);
    assert_eq!(messages(&sim, s).len(), 202);
}

#[test]
fn idle_timeout_fires_exactly_once_and_frees_the_session() {
    let quiet = EndpointConfig {
        keepalive_interval: None,
        ..cfg()
    };
    let (mut sim, cc, sc) = established(6, quiet.clone(), quiet);
    let (c, s) = (0, 1);
    // Cut the wire so neither side hears the other's Close: both time out on their own.
    sim.set_faults(FaultConfig {
        loss: 1.0,
        ..FaultConfig::default()
    });
    sim.run_for(Duration::from_secs(120));
    let dc = disconnects(&sim, c);
    let ds = disconnects(&sim, s);
    assert_eq!(dc.len(), 1);
    assert_eq!(ds.len(), 1);
    assert_eq!(
        (dc[0].1, dc[0].2, dc[0].3),
        (cc, CloseReason::IdleTimeout, Closer::Local)
    );
    assert_eq!(
        (ds[0].1, ds[0].2, ds[0].3),
        (sc, CloseReason::IdleTimeout, Closer::Local)
    );
    // 30 s after the last datagram each side received, plus that session's jitter (at most
    // 1/16 of the timeout, never less): with 10 ms one way, Hello (0 ms), Cookie (10),
    // Hello+cookie reaches the server at 30 ms, Accept reaches the client at 40.
    let window = |last_recv_ms: u64| {
        Timestamp::from_millis(last_recv_ms + 30_000)
            ..=Timestamp::from_millis(last_recv_ms + 30_000 + 30_000 / 16)
    };
    assert!(window(40).contains(&dc[0].0), "{}", dc[0].0);
    assert!(window(30).contains(&ds[0].0), "{}", ds[0].0);
    assert_eq!(sim.session_count(c) + sim.session_count(s), 0);
    assert_eq!(sim.send(c, cc, b"late"), SendOutcome::UnknownConnection);
    assert!(sim.endpoint(c, 0).poll_timeout().is_none());
}

#[test]
fn keepalive_keeps_an_idle_session_alive_for_five_minutes() {
    let (mut sim, cc, sc) = established(7, cfg(), cfg());
    let (c, s) = (0, 1);
    sim.run_for(Duration::from_secs(300));
    assert!(disconnects(&sim, c).is_empty());
    assert!(disconnects(&sim, s).is_empty());
    let st = sim.endpoint(c, 0).session_stats(cc).unwrap();
    let ss = sim.endpoint(s, 0).session_stats(sc).unwrap();
    assert_eq!(st.state, SessionState::Established);
    assert!(st.unanswered_pings <= 1 && ss.unanswered_pings <= 1);
    // Pings at most every 10 s on a 20 ms round trip. Whichever side's (jittered) keepalive
    // comes first pings; the other hears it and need not, so at least one side has sampled
    // the round trip.
    assert!(
        [st.srtt, ss.srtt].contains(&Some(Duration::from_millis(20))),
        "{st:?} {ss:?}"
    );
    assert!(st.datagrams_in >= 10, "{st:?}");
    assert!(ss.datagrams_in >= 10, "{ss:?}");

    // And once the peer goes silent, keepalive stops helping: idle timeout after 30 s.
    sim.set_faults(FaultConfig {
        loss: 1.0,
        ..FaultConfig::default()
    });
    sim.run_for(Duration::from_secs(40));
    assert_eq!(disconnects(&sim, c).len(), 1);
    assert_eq!(disconnects(&sim, c)[0].2, CloseReason::IdleTimeout);
}

#[test]
fn close_tells_the_peer_and_frees_both_sides() {
    let (mut sim, cc, sc) = established(8, cfg(), cfg());
    let (c, s) = (0, 1);
    assert_eq!(
        sim.close(c, cc, CloseReason::Application(42)),
        CloseOutcome::Closed
    );
    assert_eq!(
        sim.close(c, cc, CloseReason::Normal),
        CloseOutcome::UnknownConnection
    );
    sim.run_for(Duration::from_millis(50));
    assert_eq!(disconnects(&sim, c).len(), 1);
    let ds = disconnects(&sim, s);
    assert_eq!(ds.len(), 1);
    assert_eq!(
        (ds[0].1, ds[0].2, ds[0].3),
        (sc, CloseReason::Application(42), Closer::Peer)
    );
    assert_eq!(sim.session_count(s), 0);
}

#[test]
fn control_frames_pass_a_full_data_queue() {
    let small = EndpointConfig {
        data_queue_capacity: 4,
        ..cfg()
    };
    // Plaintext mode: the test hand-crafts the server's Ping.
    let small = EndpointConfig {
        security: ringwire_shard::session::Security::None,
        ..small
    };
    let (mut sim, cc, _sc) = established(9, small, plain_cfg());
    let c = 0;
    let now = sim.now();
    let ep = sim.endpoint_mut(c, 0);
    for _ in 0..4 {
        assert_eq!(ep.send(now, cc, b"bulk"), SendOutcome::Queued);
    }
    assert_eq!(ep.send(now, cc, b"bulk"), SendOutcome::Full);
    assert_eq!(ep.send(now, cc, &[0u8; 1201]), SendOutcome::TooLarge);
    // The server pings the client while its data queue is full.
    let ping = plain_frame(cc.0, 999, &Message::Ping);
    assert_eq!(
        ep.handle_datagram(now, addr(2, 2000), &ping),
        Handled::Consumed
    );
    let mut buf = vec![0u8; 2048];
    let first = ep.poll_transmit(now, &mut buf).unwrap();
    assert_eq!(
        plain_message(&buf[..first.len]).1,
        Message::Pong { echo: 999 }
    );
    let st = ep.session_stats(cc).unwrap();
    assert_eq!((st.queue_depth, st.queue_high_water), (4, 4));
    for _ in 0..4 {
        let t = ep.poll_transmit(now, &mut buf).unwrap();
        assert_eq!(plain_message(&buf[..t.len]).1, Message::Data(b"bulk"));
    }
    assert!(ep.poll_transmit(now, &mut buf).is_none());
    assert_eq!(ep.send(now, cc, b"room again"), SendOutcome::Queued);
}

#[test]
fn data_is_round_robin_across_sessions() {
    let mut sim = Sim::new(10, FaultConfig::default());
    let s = sim.add_node(addr(2, 2000), 1, cfg());
    let clients: Vec<usize> = (0..3)
        .map(|i| sim.add_node(addr(10 + i, 1000), 1, cfg()))
        .collect();
    for &c in &clients {
        sim.connect(c, sim.addr(s)).unwrap();
    }
    sim.run_for(Duration::from_millis(100));
    let conns = connected(&sim, s);
    assert_eq!(conns.len(), 3);
    let now = sim.now();
    let ep = sim.endpoint_mut(s, 0);
    for (i, &conn) in conns.iter().enumerate() {
        for _ in 0..3 {
            assert_eq!(ep.send(now, conn, &[i as u8]), SendOutcome::Queued);
        }
    }
    // The Response and a Pong went out before.
    let before = ep.session_stats(conns[0]).unwrap();
    let mut buf = vec![0u8; 2048];
    let mut order = Vec::new();
    while let Some(t) = ep.poll_transmit(now, &mut buf) {
        order.push(t.conn.unwrap());
        ep.on_send_completed(t.conn.unwrap(), true);
    }
    let expected: Vec<ConnId> = (0..3).flat_map(|_| conns.iter().copied()).collect();
    assert_eq!(order, expected);
    let st = ep.session_stats(conns[0]).unwrap();
    assert_eq!(st.sends_confirmed, before.sends_confirmed + 3);
    assert_eq!(st.datagrams_out, before.datagrams_out + 3);
    // A failed completion moves one send from confirmed to failed; a success of an unknown
    // session, or a failure of one, changes nothing.
    ep.on_send_completed(conns[0], false);
    ep.on_send_completed(ConnId(u64::MAX), false);
    ep.on_send_completed(ConnId(u64::MAX), true);
    let failed = ep.session_stats(conns[0]).unwrap();
    assert_eq!(failed.sends_failed, st.sends_failed + 1);
    assert_eq!(failed.sends_confirmed, st.sends_confirmed - 1);
    assert_eq!(failed.datagrams_out, st.datagrams_out);
}

#[test]
fn drops_are_counted_by_reason() {
    let (mut sim, cc, _sc) = established(11, plain_cfg(), plain_cfg());
    let now = sim.now();
    let ep = sim.endpoint_mut(0, 0);
    let from = addr(2, 2000);
    let ping = plain_frame(cc.0, 5000, &Message::Ping);
    let n = ping.len();
    let cases: Vec<(Vec<u8>, DropReason)> = vec![
        (vec![], DropReason::Truncated),
        (ping[..19].to_vec(), DropReason::Truncated),
        (
            {
                let mut b = ping[..n].to_vec();
                b[0] = 0x15;
                b
            },
            DropReason::UnknownVersion,
        ),
        (
            {
                let mut b = ping[..n].to_vec();
                b[0] = 0x2c;
                b
            },
            DropReason::UnknownType,
        ),
        (
            {
                let mut b = ping[..n].to_vec();
                b[2] = 1;
                b
            },
            DropReason::Malformed,
        ),
        (
            {
                let mut b = ping[..n].to_vec();
                b[11] ^= 1;
                b
            },
            DropReason::UnknownConnection,
        ),
        (
            {
                let mut b = ping[..n].to_vec();
                b[4] = 200; // a shard that does not exist
                b
            },
            DropReason::UnknownConnection,
        ),
    ];
    for (bytes, reason) in cases {
        assert_eq!(
            ep.handle_datagram(now, from, &bytes),
            Handled::Dropped(reason),
            "{bytes:?}"
        );
    }
    assert_eq!(ep.stats().drops.total(), 7);
    let mut buf = vec![0u8; 2048];
    assert!(
        ep.poll_transmit(now, &mut buf).is_none(),
        "no reply to anything dropped"
    );
}

#[test]
fn undrained_events_drop_data_but_not_lifecycle() {
    let small = EndpointConfig {
        event_queue_capacity: 2,
        ..cfg()
    };
    let small = EndpointConfig {
        security: ringwire_shard::session::Security::None,
        ..small
    };
    let (mut sim, _cc, sc) = established(13, plain_cfg(), small);
    let now = sim.now();
    let ep = sim.endpoint_mut(1, 0);
    let from = addr(1, 1000);
    let mut results = Vec::new();
    for pn in 100..104u64 {
        results.push(ep.handle_datagram(now, from, &plain_frame(sc.0, pn, &Message::Data(b"x"))));
    }
    assert_eq!(
        results,
        vec![
            Handled::Consumed,
            Handled::Consumed,
            Handled::Dropped(DropReason::EventQueueFull),
            Handled::Dropped(DropReason::EventQueueFull)
        ]
    );
    // A Close still gets its Disconnected event through.
    let close = plain_frame(sc.0, 200, &Message::Close(CloseReason::Normal));
    assert_eq!(ep.handle_datagram(now, from, &close), Handled::Consumed);
    let events: Vec<Event> = std::iter::from_fn(|| ep.poll_event()).collect();
    assert_eq!(events.len(), 3);
    assert!(matches!(
        events[2],
        Event::Disconnected {
            by: Closer::Peer,
            ..
        }
    ));
}

#[test]
fn close_all_ends_every_session_once() {
    let mut sim = Sim::new(15, FaultConfig::default());
    let s = sim.add_node(addr(2, 2000), 1, cfg());
    let clients: Vec<usize> = (0..3)
        .map(|i| sim.add_node(addr(10 + i, 1000), 1, cfg()))
        .collect();
    for &c in &clients {
        sim.connect(c, sim.addr(s)).unwrap();
    }
    sim.run_for(Duration::from_millis(100));
    let now = sim.now();
    sim.endpoint_mut(s, 0)
        .close_all(now, CloseReason::ShuttingDown);
    sim.flush();
    sim.run_for(Duration::from_millis(100));
    assert_eq!(disconnects(&sim, s).len(), 3);
    for &c in &clients {
        let d = disconnects(&sim, c);
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].2, d[0].3), (CloseReason::ShuttingDown, Closer::Peer));
        assert_eq!(sim.session_count(c), 0);
    }
}

/// A responder endpoint with one established Noise session (fixed seeds, so two calls give
/// identical endpoints), its client and the server's connection ID.
fn echo_pair() -> (Endpoint, Endpoint, ConnId, ConnId) {
    let now = Timestamp::ZERO;
    let mut server = Endpoint::new(cfg_id(2), 0, 1, ConnIdGen::seed_from_u64(1), now).unwrap();
    let mut client = Endpoint::new(cfg_id(3), 0, 1, ConnIdGen::seed_from_u64(2), now).unwrap();
    let (c_addr, s_addr) = (addr(1, 1000), addr(2, 2000));
    let cc = client
        .connect(now, s_addr, Some(keypair(2).public))
        .unwrap();
    let mut sc = None;
    exchange_until_quiet(&mut client, &mut server, c_addr, s_addr, now);
    while let Some(e) = server.poll_event() {
        if let Event::Connected { conn, .. } = e {
            sc = Some(conn);
        }
    }
    while client.poll_event().is_some() {}
    (server, client, sc.unwrap(), cc)
}

/// `send_direct` writes exactly the datagram `send` then `poll_transmit` would, and writes
/// nothing while anything would leave before it: Data queued, a control frame pending.
#[test]
fn direct_send_is_the_queued_send_without_the_queue() {
    let now = Timestamp::ZERO;
    let s_addr = addr(2, 2000);
    let (mut a, mut client, conn, cc) = echo_pair();
    let (mut b, _, conn_b, _) = echo_pair();
    assert_eq!(conn, conn_b, "same seeds, same endpoint");
    let (mut out_a, mut out_b) = (vec![0u8; 2048], vec![0u8; 2048]);
    let ta = a.send_direct(now, conn, b"hello", &mut out_a).unwrap();
    assert_eq!(b.send(now, conn, b"hello"), SendOutcome::Queued);
    let tb = b.poll_transmit(now, &mut out_b).unwrap();
    assert_eq!((ta.dst, ta.conn), (tb.dst, tb.conn));
    assert_eq!(out_a[..ta.len], out_b[..tb.len]);
    assert_eq!(a.session_stats(conn), b.session_stats(conn));
    assert_eq!(a.stats().datagrams_out, b.stats().datagrams_out);
    assert_eq!(
        client.handle_datagram(now, s_addr, &out_a[..ta.len]),
        Handled::Consumed
    );
    assert!(matches!(
        client.poll_event(),
        Some(Event::Message { conn, bytes }) if conn == cc && bytes == b"hello"
    ));

    // Data queued ahead: nothing direct until it has left.
    assert_eq!(a.send(now, conn, b"first"), SendOutcome::Queued);
    assert!(a.send_direct(now, conn, b"second", &mut out_a).is_none());
    assert!(a.poll_transmit(now, &mut out_a).is_some());
    assert!(a.send_direct(now, conn, b"second", &mut out_a).is_some());
    // A control frame pending (an Initiation of a new session): it leaves first.
    let _ = a
        .connect(now, addr(9, 9000), Some(keypair(9).public))
        .unwrap();
    assert!(a.send_direct(now, conn, b"third", &mut out_a).is_none());
    while a.poll_transmit(now, &mut out_a).is_some() {}
    assert!(a.send_direct(now, conn, b"third", &mut out_a).is_some());
    // Unknown session, too large a payload, too small a buffer: nothing written.
    assert!(a.send_direct(now, ConnId(1), b"x", &mut out_a).is_none());
    let big = vec![0u8; a.config().max_payload + 1];
    assert!(a.send_direct(now, conn, &big, &mut out_a).is_none());
    assert!(a.send_direct(now, conn, b"x", &mut [0u8; 8]).is_none());
}
