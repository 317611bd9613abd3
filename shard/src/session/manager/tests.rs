//! Connection-manager unit tests, on a virtual clock.
#![allow(clippy::unwrap_used)] // tests may unwrap

use proptest::prelude::*;

use super::*;
use crate::session::admission::NodeView;

const GRACE: Duration = Duration::from_secs(60);
const SILENCE: Duration = Duration::from_secs(10);

fn cfg(low: usize, high: usize) -> ManagerConfig {
    ManagerConfig {
        low_watermark: low,
        high_watermark: high,
        ..ManagerConfig::default()
    }
}

fn secs(s: u64) -> Timestamp {
    Timestamp::from_secs(s)
}

/// `n` sessions opened at `at`, session `i` tagged with weight `i` (so `ConnId(i)` ranks i-th).
fn manager(c: ManagerConfig, n: u64, at: Timestamp) -> ConnManager {
    let mut m = ConnManager::new(c, n as usize).unwrap();
    for i in 0..n {
        assert!(m.insert(at, ConnId(i)));
        m.tag(ConnId(i), "value", i as i32).unwrap();
    }
    m
}

fn drain(m: &mut ConnManager, now: Timestamp) -> Vec<u64> {
    m.trim(now).map(|(c, _)| c.0).collect()
}

#[test]
fn defaults_are_valid_and_each_bad_value_is_named() {
    assert_eq!(ManagerConfig::default().validate(), Ok(()));
    let with = |f: fn(&mut ManagerConfig)| {
        let mut c = ManagerConfig::default();
        f(&mut c);
        c.validate().unwrap_err().key
    };
    assert_eq!(with(|c| c.high_watermark = 0), "high_watermark");
    assert_eq!(
        with(|c| c.low_watermark = c.high_watermark + 1),
        "low_watermark"
    );
    assert_eq!(with(|c| c.trim_batch = 0), "trim_batch");
    assert_eq!(with(|c| c.close_batch = 0), "close_batch");
    assert_eq!(with(|c| c.max_tags_per_session = 0), "max_tags_per_session");
    assert_eq!(with(|c| c.max_decaying_tags = 70_000), "max_decaying_tags");
}

#[test]
fn trims_to_the_low_watermark_within_one_call_lowest_first() {
    let mut m = manager(cfg(10, 15), 20, secs(0));
    let now = secs(61);
    assert_eq!(m.poll_timeout(now), Some(now));
    let trimmed: Vec<(ConnId, TrimReason)> = m.trim(now).collect();
    assert_eq!(
        trimmed,
        (0..10)
            .map(|i| (ConnId(i), TrimReason::Watermark))
            .collect::<Vec<_>>()
    );
    assert_eq!(m.len(), 10);
    assert!((10..20).all(|i| m.contains(ConnId(i))));
    let s = m.stats();
    assert_eq!(s.trimmed[TrimReason::Watermark], 10);
    assert_eq!((s.rounds, s.rounds_short, s.trimming), (1, 0, false));
    // Trimmed sessions are forgotten: the host's own close is a no-op.
    assert!(!m.remove(ConnId(0)));
    assert_eq!(m.poll_timeout(now), None, "at the low watermark");
}

#[test]
fn at_or_below_the_high_watermark_nothing_is_trimmed() {
    let mut m = manager(cfg(10, 15), 15, secs(0));
    assert!(drain(&mut m, secs(100)).is_empty());
    assert_eq!(m.stats().rounds, 0);
    assert_eq!(m.poll_timeout(secs(100)), None);
}

#[test]
fn protected_and_in_grace_sessions_are_spared() {
    // 20 sessions: 0..5 protected, 5..10 opened late (in grace at the trim), 10..20 old.
    let mut m = ConnManager::new(cfg(5, 15), 20).unwrap();
    for i in 0..20 {
        let opened = if (5..10).contains(&i) {
            secs(30)
        } else {
            secs(0)
        };
        assert!(m.insert(opened, ConnId(i)));
        m.tag(ConnId(i), "value", i as i32).unwrap();
    }
    for i in 0..5 {
        m.protect(ConnId(i), "pinned").unwrap();
    }
    assert_eq!(m.stats().protected, 5);
    let trimmed = drain(&mut m, secs(61));
    assert_eq!(
        trimmed,
        (10..20).collect::<Vec<_>>(),
        "only the old, unprotected ones"
    );
    let s = m.stats();
    assert_eq!((s.spared_protected, s.spared_grace), (5, 5));
    assert_eq!(
        s.rounds_short, 1,
        "target 5 not reachable: 10 are untouchable"
    );
    assert_eq!(m.len(), 10);
}

#[test]
fn a_protection_added_during_a_round_is_honoured() {
    let mut c = cfg(4, 8);
    c.trim_batch = 4;
    c.close_batch = 4;
    let mut m = manager(c, 12, secs(0));
    let now = secs(61);
    // 12 sessions, batch 4: two calls score 8 of them, none named yet.
    for _ in 0..2 {
        assert!(drain(&mut m, now).is_empty());
        assert!(m.stats().trimming);
    }
    assert_eq!(m.stats().scanned, 8);
    // Session 1 was scored low; it is protected before it is named.
    m.protect(ConnId(1), "late").unwrap();
    // The third call scores the last 4 and pops 4 candidates: 0, 1 (spared), 2, 3.
    assert_eq!(drain(&mut m, now), [0, 2, 3]);
    assert_eq!(drain(&mut m, now), [4, 5, 6, 7]);
    assert!(drain(&mut m, now).is_empty());
    assert!(!m.stats().trimming);
    assert!(m.contains(ConnId(1)));
    assert_eq!(
        m.len(),
        5,
        "one short of the target: the protected one stays"
    );
    assert_eq!(m.stats().rounds_short, 1);
    assert_eq!(m.stats().spared_protected, 1);
}

#[test]
fn no_trim_inside_the_silence_period() {
    let mut m = manager(cfg(10, 15), 20, secs(0));
    let t = secs(61);
    assert_eq!(drain(&mut m, t).len(), 10);
    // Over the high watermark again at once.
    for i in 100..110 {
        assert!(m.insert(secs(0), ConnId(i)));
    }
    let end = t.saturating_add(SILENCE);
    assert_eq!(m.poll_timeout(t), Some(end));
    let just_before = Timestamp(end.as_nanos() - 1);
    assert!(drain(&mut m, just_before).is_empty());
    assert_eq!(m.len(), 20);
    assert_eq!(drain(&mut m, end).len(), 10);
    assert_eq!(m.stats().rounds, 2);
}

#[test]
fn a_forced_trim_ignores_silence_and_the_high_watermark_but_not_protection() {
    let mut m = manager(cfg(10, 15), 20, secs(0));
    assert_eq!(drain(&mut m, secs(61)).len(), 10);
    // 10 sessions, at the low watermark, inside the silence period: a forced trim still
    // runs, but only down to the low share, so it has nothing to do...
    m.force_trim();
    assert_eq!(m.poll_timeout(secs(62)), Some(secs(62)));
    assert!(drain(&mut m, secs(62)).is_empty());
    // ...until the low watermark is lowered below the count (here: a fresh manager).
    let mut m = manager(cfg(2, 100), 6, secs(0));
    m.protect(ConnId(0), "pinned").unwrap();
    m.force_trim();
    let trimmed: Vec<_> = m.trim(secs(61)).collect();
    assert_eq!(
        trimmed,
        (1..5)
            .map(|i| (ConnId(i), TrimReason::Forced))
            .collect::<Vec<_>>()
    );
    assert_eq!(m.stats().trimmed[TrimReason::Forced], 4);
    assert!(m.contains(ConnId(0)) && m.contains(ConnId(5)));
}

#[test]
fn unprotect_says_whether_the_session_is_still_protected() {
    let mut m = manager(cfg(10, 15), 2, secs(0));
    let c = ConnId(1);
    m.protect(c, "a").unwrap();
    m.protect(c, "b").unwrap();
    m.protect(c, "b").unwrap();
    assert!(m.is_protected(c) && m.is_protected_by(c, "a"));
    assert_eq!(m.stats().protected, 1);
    assert!(m.unprotect(c, "a"));
    assert!(!m.unprotect(c, "b"));
    assert!(!m.is_protected(c));
    assert_eq!(m.stats().protected, 0);
    assert!(!m.unprotect(ConnId(99), "a"));
    assert_eq!(m.protect(ConnId(99), "a"), Err(TagError::UnknownSession));
    // Removing a protected session keeps the count right.
    m.protect(c, "a").unwrap();
    assert!(m.remove(c));
    assert_eq!(m.stats().protected, 0);
}

#[test]
fn tags_upsert_and_untag() {
    let mut m = manager(cfg(10, 15), 1, secs(0));
    let c = ConnId(0);
    assert_eq!(m.upsert_tag(c, "hits", |v| v + 1), Ok(1));
    assert_eq!(m.upsert_tag(c, "hits", |v| v * 10), Ok(10));
    assert_eq!(m.tag_weight(c, "hits"), Some(10));
    assert_eq!(m.score(secs(0), c), Some(10), "value 0 + hits 10");
    assert!(m.untag(c, "hits"));
    assert!(!m.untag(c, "hits"));
    assert_eq!(m.tag(ConnId(5), "x", 1), Err(TagError::UnknownSession));
    assert_eq!(m.score(secs(0), ConnId(5)), None);
}

#[test]
fn tags_per_session_are_bounded_and_dead_decaying_values_make_room() {
    let mut c = cfg(10, 15);
    c.max_tags_per_session = 3;
    let mut m = ConnManager::new(c, 1).unwrap();
    let s = ConnId(7);
    m.insert(secs(0), s);
    let d = m
        .register_decaying_tag(
            secs(0),
            "seen",
            Duration::from_secs(1),
            Decay::Fixed(1),
            Bump::Sum,
        )
        .unwrap();
    m.tag(s, "a", 1).unwrap();
    m.protect(s, "p").unwrap();
    assert_eq!(m.bump(secs(0), d, s, 2), Ok(2));
    assert_eq!(m.tag(s, "b", 1), Err(TagError::TooManyTags(3)));
    m.tag(s, "a", 5).unwrap(); // overwriting needs no room
    assert_eq!(m.stats().tags_refused, 1);
    // Two ticks later the decaying value is gone, and its slot is reused.
    assert_eq!(m.decaying_value(secs(2), d, s), None);
    m.insert(secs(2), ConnId(8)); // any call that tells the manager the time
    m.tag(s, "b", 1).unwrap();
    assert_eq!(m.score(secs(2), s), Some(6));
}

#[test]
fn decaying_tags_decay_and_bump_as_configured_and_rank_sessions() {
    let mut m = ConnManager::new(cfg(1, 2), 4).unwrap();
    let (a, b, c) = (ConnId(1), ConnId(2), ConnId(3));
    for s in [a, b, c] {
        m.insert(secs(0), s);
    }
    let d = m
        .register_decaying_tag(
            secs(0),
            "usefulness",
            Duration::from_secs(10),
            Decay::Linear(0.5),
            Bump::SumBounded { min: 0, max: 100 },
        )
        .unwrap();
    assert_eq!(m.decaying_tag_name(d), Some("usefulness"));
    assert_eq!(m.bump(secs(1), d, a, 80), Ok(80));
    assert_eq!(m.bump(secs(1), d, a, 80), Ok(100), "bounded");
    assert_eq!(m.bump(secs(5), d, b, 30), Ok(30));
    assert_eq!(m.decaying_value(secs(9), d, a), Some(100));
    assert_eq!(m.decaying_value(secs(10), d, a), Some(50));
    assert_eq!(m.decaying_value(secs(30), d, a), Some(12));
    assert_eq!(m.decaying_value(secs(30), d, b), Some(3));
    // Bumping decayed `b` at 35 s: 3 + 40.
    assert_eq!(m.bump(secs(35), d, b, 40), Ok(43));
    // At 61 s (tick 6): a = 100/2^6 = 1, b = 43/2^3 = 5, c = 0. Two must go: c, then a.
    assert_eq!(m.score(secs(61), a), Some(1));
    assert_eq!(m.score(secs(61), b), Some(5));
    assert_eq!(drain(&mut m, secs(61)), [3, 1]);
    assert!(m.remove_decaying(d, b));
    assert!(m.unregister_decaying_tag(d));
    assert_eq!(m.bump(secs(62), d, b, 1), Err(TagError::UnknownDecayingTag));
}

#[test]
fn unregistering_a_decaying_tag_stops_its_values_counting() {
    let mut m = ConnManager::new(cfg(1, 2), 1).unwrap();
    m.insert(secs(0), ConnId(1));
    let d = m
        .register_decaying_tag(secs(0), "x", Duration::from_secs(1), Decay::None, Bump::Sum)
        .unwrap();
    m.bump(secs(0), d, ConnId(1), 50).unwrap();
    assert_eq!(m.score(secs(0), ConnId(1)), Some(50));
    assert!(m.unregister_decaying_tag(d));
    assert_eq!(m.score(secs(0), ConnId(1)), Some(0));
    assert_eq!(m.decaying_value(secs(0), d, ConnId(1)), None);
}

#[test]
fn pressure_lowers_the_score_and_the_rank() {
    let mut m = manager(cfg(2, 3), 4, secs(0));
    // Session 3 has the highest tag but has not answered 3 pings: 3 - 30.
    assert!(m.set_pressure(
        ConnId(3),
        Pressure {
            unanswered_pings: 3,
            ..Pressure::default()
        }
    ));
    assert!(!m.set_pressure(ConnId(9), Pressure::default()));
    assert_eq!(m.score(secs(0), ConnId(3)), Some(-27));
    assert_eq!(drain(&mut m, secs(61)), [3, 0]);
}

#[test]
fn the_share_follows_the_other_shards_counts() {
    let mut m = manager(cfg(80, 100), 60, secs(0));
    // Alone, 60 sessions are under the high watermark of 100.
    assert_eq!(m.shares(), (100, 80));
    assert!(drain(&mut m, secs(61)).is_empty());
    // The other shards hold 60: the node (120) is over 100; this shard's share of the low
    // watermark is 80 x 60 / 120 = 40.
    m.set_node_view(NodeView::new(600, secs(60), 60, 60, true));
    assert_eq!(m.shares(), (50, 40));
    assert_eq!(m.poll_timeout(secs(61)), Some(secs(61)));
    assert_eq!(drain(&mut m, secs(61)).len(), 20);
    assert_eq!(m.stats().peer_sessions, 60);
    // The same view again is not acted on twice (it shows the counts before the trim)...
    m.set_node_view(NodeView::new(600, secs(60), 60, 60, true));
    assert_eq!(m.poll_timeout(secs(62)), None);
    // ...nor a new one inside the silence period, judged at the view's round start.
    m.set_node_view(NodeView::new(601, secs(69), 40, 100, true));
    assert_eq!(m.poll_timeout(secs(75)), None);
    m.set_node_view(NodeView::new(602, secs(70), 40, 100, true));
    assert_eq!(m.poll_timeout(secs(75)), Some(secs(75)));
    // Share of L: 80 x 40 / 140 = 22.
    assert_eq!(drain(&mut m, secs(75)).len(), 40 - 22);
}

#[test]
fn each_call_does_bounded_work() {
    let mut c = cfg(100, 500);
    c.trim_batch = 64;
    c.close_batch = 64;
    let mut m = manager(c, 1000, secs(0));
    let now = secs(61);
    let mut calls = 0;
    let mut named = 0;
    loop {
        let scanned = m.stats().scanned;
        let n = drain(&mut m, now).len();
        assert!(m.stats().scanned - scanned <= 64);
        assert!(n <= 64);
        named += n;
        calls += 1;
        if m.poll_timeout(now).is_none_or(|t| t > now) {
            break;
        }
    }
    assert_eq!(named, 900);
    assert_eq!(m.len(), 100);
    // 16 calls score the 1000 (the last also names 64), then 64 a call.
    assert_eq!(calls, 16 + (900 - 64_usize).div_ceil(64));
}

#[test]
fn sessions_closing_during_a_round_end_it_early_at_the_target() {
    let mut c = cfg(10, 15);
    c.trim_batch = 5;
    c.close_batch = 5;
    let mut m = manager(c, 20, secs(0));
    let now = secs(61);
    for _ in 0..3 {
        assert!(drain(&mut m, now).is_empty());
    }
    // Eight close on their own meanwhile (the highest scored): only two more are needed.
    for i in 12..20 {
        assert!(m.remove(ConnId(i)));
    }
    assert_eq!(drain(&mut m, now), [0, 1]);
    assert_eq!(m.len(), 10);
    assert!(!m.stats().trimming);
    assert_eq!(m.stats().rounds_short, 0);
}

proptest! {
    /// Whatever the scores, protections, ages and batch size, one round trims exactly the
    /// `count - share(L)` lowest (score, ID) among the sessions neither protected nor in grace
    /// (or all of them, if fewer), and nothing else.
    #[test]
    fn a_round_trims_exactly_the_lowest_eligible(
        sessions in proptest::collection::vec((-50i32..50, any::<bool>(), 0u64..120), 1..200),
        low in 1usize..200,
        batch in 1usize..50,
    ) {
        let mut c = cfg(low, low);
        c.trim_batch = batch;
        c.close_batch = batch.div_ceil(3);
        let mut m = ConnManager::new(c, sessions.len()).unwrap();
        let now = secs(200);
        let mut eligible = Vec::new();
        for (i, &(w, protected, opened)) in sessions.iter().enumerate() {
            let conn = ConnId(i as u64 * 7919 % 1000);
            if !m.insert(secs(opened), conn) { continue; }
            m.tag(conn, "w", w).unwrap();
            if protected { m.protect(conn, "p").unwrap(); }
            if !protected && now.saturating_since(secs(opened)) >= GRACE {
                eligible.push((i64::from(w), conn));
            }
        }
        let count = m.len();
        eligible.sort();
        let want = count.saturating_sub(low);
        let expect: Vec<ConnId> = eligible.iter().take(want).map(|&(_, c)| c).collect();
        let mut got = Vec::new();
        for _ in 0..10_000 {
            got.extend(m.trim(now).map(|(c, _)| c));
            if !m.stats().trimming { break; }
        }
        prop_assert_eq!(got, expect);
        prop_assert_eq!(m.len(), count - want.min(eligible.len()));
    }
}

#[test]
fn per_session_footprint_is_small() {
    // docs/CONFIG.md counts on these: 64 bytes per managed session, 40 per tag.
    assert_eq!(std::mem::size_of::<Entry>(), 64);
    assert_eq!(tags::ITEM_SIZE, 40);
}
