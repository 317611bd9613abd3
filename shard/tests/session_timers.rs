//! 60,000 sessions opened together: their keepalives and idle timeouts come due together.
//! Zero control frames dropped, every keepalive sent, every idle close delivered exactly once.
//!
//! Deterministic: one seeded endpoint, virtual time, and a hand-driven loop that models the
//! shard's: each turn runs the endpoint's (bounded) timers, then sends what `SLOTS` free send
//! slots allow; a turn that leaves work is followed by another at the same instant, and an idle
//! loop wakes at most every `TICK`. The tick is coarser than the jitter's spread, so sessions
//! whose base deadlines coincide (all of them) fall due in one wake: far more frames than the
//! control queue holds, as when 60,000 sessions fired in one turn and 9,458 frames were lost.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, HashMap};

use common::*;

const SESSIONS: usize = 60_000;
/// Send slots the loop frees per turn (fewer than `timer_batch`, so the control queue fills
/// to the timers' share and the room check is exercised, not only the per-call bound).
const SLOTS: usize = 128;
/// The loop wakes at most this often.
const TICK: Duration = Duration::from_secs(2);

/// What one client saw from the server, in order.
#[derive(Default)]
struct PeerLog {
    pings: Vec<Timestamp>,
    closes: Vec<(Timestamp, CloseReason)>,
    /// Frames after the Close (there must be none).
    after_close: usize,
}

fn client_addr(i: usize) -> SocketAddr {
    let i = i as u32;
    SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8),
        40_000,
    ))
}

/// The first wake at or after `d`.
fn wake(d: Timestamp) -> Timestamp {
    let tick = TICK.as_nanos() as u64;
    Timestamp(d.0.div_ceil(tick) * tick)
}

/// Opens `SESSIONS` sessions at `t0`, one handshake each, as clients at distinct addresses
/// would. Plaintext mode: this test is about timers, and 60,000 Noise handshakes would spend
/// its time on Diffie-Hellman. Returns the endpoint and the client CID of each server session.
fn open_all(t0: Timestamp) -> (Endpoint, HashMap<ConnId, u64>) {
    let config = plain_cfg();
    let mut ep = Endpoint::new(config, 0, 1, ConnIdGen::seed_from_u64(60_000), t0).unwrap();
    let mut client_of = HashMap::with_capacity(SESSIONS);
    for i in 0..SESSIONS {
        let (from, cid) = (client_addr(i), i as u64 + 1);
        let server = open_plain(&mut ep, t0, from, cid);
        client_of.insert(server, cid);
    }
    let mut connected = 0;
    while let Some(e) = ep.poll_event() {
        assert!(matches!(e, Event::Connected { .. }));
        connected += 1;
    }
    assert_eq!(connected, SESSIONS);
    assert_eq!(ep.session_count(), SESSIONS);
    (ep, client_of)
}

#[test]
fn sixty_thousand_coinciding_sessions_lose_no_timer_action() {
    let t0 = Timestamp::ZERO;
    let (mut ep, client_of) = open_all(t0);
    let config = ep.config().clone();
    let k = config.keepalive_interval.unwrap();
    let idle = config.idle_timeout;

    // The peers fall silent. Run the loop until every session is gone and every frame sent.
    let mut buf = vec![0u8; config.max_datagram()];
    let mut logs: HashMap<u64, PeerLog> = HashMap::with_capacity(SESSIONS);
    let mut ended: HashMap<ConnId, Vec<(Timestamp, CloseReason, Closer)>> = HashMap::new();
    let mut frames_at: BTreeMap<Timestamp, usize> = BTreeMap::new();
    let mut now = t0;
    loop {
        // One loop turn at `now`.
        if ep.poll_timeout().is_some_and(|d| d <= now) && ep.can_run_timers() {
            let before = ep.stats().control_queue_depth;
            ep.handle_timeout(now);
            let queued = ep.stats().control_queue_depth - before;
            assert!(queued <= config.timer_batch, "{queued} frames in one call");
        }
        for _ in 0..SLOTS {
            let Some(t) = ep.poll_transmit(now, &mut buf) else {
                break;
            };
            ep.on_send_completed(t.conn.unwrap(), true);
            *frames_at.entry(now).or_default() += 1;
            let (dst, message) = plain_message(&buf[..t.len]);
            let log = logs.entry(dst).or_default();
            if !log.closes.is_empty() {
                log.after_close += 1;
            }
            match message {
                Message::Ping => log.pings.push(now),
                Message::Close(reason) => log.closes.push((now, reason)),
                other => panic!("unexpected {other:?}"),
            }
        }
        while let Some(e) = ep.poll_event() {
            let Event::Disconnected { conn, reason, by } = e else {
                panic!("unexpected {e:?}");
            };
            ended.entry(conn).or_default().push((now, reason, by));
        }
        // Work left at this instant: the next turn comes at once. Otherwise sleep to the next
        // wake after the next deadline.
        let due = ep.poll_timeout().is_some_and(|d| d <= now);
        if ep.stats().control_queue_depth > 0 || due {
            continue;
        }
        match ep.poll_timeout() {
            Some(d) => now = wake(d),
            None => break,
        }
    }

    let stats = ep.stats();
    assert_eq!(stats.control_dropped, 0, "no control frame dropped");
    assert_eq!(stats.drops.total(), 0);
    assert_eq!(ep.session_count(), 0);
    let busiest = frames_at.values().copied().max().unwrap();
    assert!(
        busiest > config.control_queue_capacity,
        "timers coincided beyond the control queue ({busiest} frames at one instant)"
    );
    assert!(
        stats.timers_deferred > 0,
        "the per-call bound carried work over"
    );

    // Every idle close delivered exactly once: one event, one Close frame, nothing after it.
    assert_eq!(ended.len(), SESSIONS);
    assert_eq!(logs.len(), SESSIONS);
    let (k_min, slack) = (k - k / 8, TICK);
    let mut first_pings = Vec::with_capacity(SESSIONS);
    for (conn, events) in &ended {
        let [(at, reason, by)] = events[..] else {
            panic!("{conn:?} ended {} times", events.len());
        };
        assert_eq!((reason, by), (CloseReason::IdleTimeout, Closer::Local));
        let log = &logs[&client_of[conn]];
        assert_eq!(log.closes, [(at, CloseReason::IdleTimeout)], "{conn:?}");
        assert_eq!(log.after_close, 0);
        // Closed no earlier than the idle timeout, no later than its jitter and one wake.
        let quiet = at.saturating_since(t0);
        assert!(
            quiet >= idle && quiet < idle + idle / 16 + slack,
            "{quiet:?}"
        );

        // Every keepalive sent: the first one within its (jittered) interval of the last
        // datagram received, each next one within its interval of the previous, and none due
        // and skipped before the close.
        let mut last = t0;
        for (n, &p) in log.pings.iter().enumerate() {
            let gap = p.saturating_since(last);
            assert!(
                gap >= k_min && gap < k + slack,
                "{conn:?}: ping {n} {gap:?} after the previous"
            );
            last = p;
        }
        assert!(!log.pings.is_empty(), "{conn:?} never pinged");
        assert!(
            at.saturating_since(last) < k + slack,
            "{conn:?}: keepalive skipped"
        );
        first_pings.push(log.pings[0]);
    }
    // Every keepalive came due in the first wake after the sessions opened.
    first_pings.sort_unstable();
    assert_eq!(first_pings.first(), first_pings.last());
}

/// The jitter spreads what coincides: with a loop that wakes for every deadline, the first
/// keepalives of sessions opened together span most of the jitter's window, and a seed fixes
/// them exactly.
#[test]
fn jitter_spreads_keepalives_deterministically() {
    fn first_pings(seed: u64) -> Vec<(u64, Timestamp)> {
        let mut ep = Endpoint::new(
            plain_cfg(),
            0,
            1,
            ConnIdGen::seed_from_u64(seed),
            Timestamp::ZERO,
        )
        .unwrap();
        let mut buf = vec![0u8; ep.config().max_datagram()];
        for i in 0..1000 {
            let (from, cid) = (client_addr(i), i as u64 + 1);
            let _ = open_plain(&mut ep, Timestamp::ZERO, from, cid);
        }
        let mut pings = Vec::new();
        while pings.len() < 1000 {
            let now = ep.poll_timeout().unwrap();
            ep.handle_timeout(now);
            while let Some(t) = ep.poll_transmit(now, &mut buf) {
                let (dst, message) = plain_message(&buf[..t.len]);
                assert!(matches!(message, Message::Ping));
                pings.push((dst, now));
            }
        }
        pings.sort_unstable();
        pings
    }
    let a = first_pings(1);
    let k = plain_cfg().keepalive_interval.unwrap();
    let earliest = a.iter().map(|p| p.1).min().unwrap();
    let latest = a.iter().map(|p| p.1).max().unwrap();
    assert!(earliest >= Timestamp::ZERO.saturating_add(k - k / 8));
    assert!(latest <= Timestamp::ZERO.saturating_add(k));
    assert!(
        latest.saturating_since(earliest) > k / 16,
        "1000 sessions' keepalives spread over {:?}",
        latest.saturating_since(earliest)
    );
    assert_eq!(a, first_pings(1), "a seed fixes every deadline");
    assert_ne!(a, first_pings(2));
}
