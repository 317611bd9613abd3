//! A session host's report page: the endpoint's summary, then sessions' flight recorders, in
//! connection-ID order or the worst of a scanned page by a [`Rank`]. One pass over the table's
//! keys; only the page's sessions are read, and only the reported ones are formatted.
#![forbid(unsafe_code)]

use std::fmt::Write;
use std::time::Instant;

use super::{SessionApp, SessionHost};
use crate::report::{Rank, ReportItem, ReportPage, ReportRequest, worst_of};
use crate::session::{ConnId, SessionStats, Timestamp};

impl<A: SessionApp> SessionHost<A> {
    pub(super) fn write_report(
        &self,
        request: &ReportRequest,
        page: &mut ReportPage,
    ) -> Option<u64> {
        let e = self.ep.stats();
        let _ = write!(
            page.summary,
            "sessions={} accepted={} handshakes={} dh_ops={} cookies_sent={} resets_sent={} \
             drops={} control_dropped={} handed_off={} handoffs_received={} refused_draining={}",
            e.sessions,
            e.sessions_accepted,
            e.handshakes_completed,
            e.dh_operations,
            e.cookies_sent,
            e.resets_sent,
            e.drops.total(),
            e.control_dropped,
            self.stats.handed_off,
            self.stats.handoffs_received,
            self.stats.refused_draining,
        );
        let now = self.clock.stamp(Instant::now());
        let scanned = request.scan(self.ep.conn_ids().map(|c| c.0));
        let sessions = scanned
            .keys
            .iter()
            .filter_map(|&c| Some((c, self.ep.session_stats(ConnId(c))?)));
        page.items = match request.rank() {
            None => sessions.map(|(c, s)| item(c, 0, &s, now)).collect(),
            Some(rank) => {
                let ranked = sessions.map(|(c, s)| ReportItem {
                    kind: "session",
                    key: c,
                    score: score(rank, &s, now),
                    fields: Vec::new(),
                });
                worst_of(request.limit(), ranked)
                    .into_iter()
                    .filter_map(|i| {
                        let s = self.ep.session_stats(ConnId(i.key))?;
                        Some(item(i.key, i.score, &s, now))
                    })
                    .collect()
            }
        };
        scanned.next
    }
}

/// How bad a session is under `rank` (higher is worse).
fn score(rank: Rank, s: &SessionStats, now: Timestamp) -> u64 {
    let nanos = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    match rank {
        Rank::Drops => s.drops.total(),
        Rank::Queue => u64::from(s.queue_depth),
        Rank::Rtt => s.srtt.map_or(0, nanos),
        // Never heard from is the stalest.
        Rank::Age => s
            .last_recv
            .map_or(u64::MAX, |t| nanos(now.saturating_since(t))),
        // A rank added later and not known here ranks nothing.
        #[allow(unreachable_patterns)]
        _ => 0,
    }
}

/// One session's flight recorder.
fn item(conn: u64, score: u64, s: &SessionStats, now: Timestamp) -> ReportItem {
    let idle = s.last_recv.map_or("never".to_string(), |t| {
        format!("{:?}", now.saturating_since(t))
    });
    let srtt = s.srtt.map_or("-".to_string(), |d| format!("{d:?}"));
    ReportItem {
        kind: "session",
        key: conn,
        score,
        fields: vec![
            ("peer", s.peer.to_string()),
            ("state", format!("{:?}", s.state)),
            ("in", format!("{}/{}B", s.datagrams_in, s.bytes_in)),
            ("out", format!("{}/{}B", s.datagrams_out, s.bytes_out)),
            ("queue", s.queue_depth.to_string()),
            ("hwm", s.queue_high_water.to_string()),
            ("drops", s.drops.total().to_string()),
            ("last_recv_ago", idle),
            ("unanswered_pings", s.unanswered_pings.to_string()),
            ("srtt", srtt),
            ("confirmed", s.sends_confirmed.to_string()),
            ("failed", s.sends_failed.to_string()),
        ],
    }
}
