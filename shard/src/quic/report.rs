//! The QUIC host's live view: one report item per connection (SIGUSR1, the metrics
//! endpoint's `/sessions.json`, `ringwire stats --top`), read from quinn's connection stats.
//! A page reads only the connections it names (the request's scan of the keys).
#![forbid(unsafe_code)]

use std::time::Duration;

use quinn_proto::Connection;

use crate::report::{Rank, ReportItem, ReportRequest, worst_of};

/// One connection as the report sees it.
pub(super) struct Row<'a> {
    pub key: u64,
    pub conn: &'a Connection,
    pub connected: bool,
}

/// The items of one page: in key order, or the `limit` worst under the request's rank.
/// `find(key)` gives the row of a key among `keys`.
pub(super) fn items<'a>(
    request: &ReportRequest,
    keys: &[u64],
    find: impl Fn(u64) -> Option<Row<'a>>,
) -> Vec<ReportItem> {
    let rows = keys.iter().filter_map(|&k| find(k));
    match request.rank() {
        None => rows.map(|r| item(&r, 0)).collect(),
        Some(rank) => {
            let ranked = rows.map(|r| ReportItem {
                kind: "quic",
                key: r.key,
                score: score(rank, &r),
                fields: Vec::new(),
            });
            worst_of(request.limit(), ranked)
                .into_iter()
                .filter_map(|i| Some(item(&find(i.key)?, i.score)))
                .collect()
        }
    }
}

/// How bad a connection is under `rank` (higher is worse): lost packets, or smoothed RTT.
/// Queue and age are not read from quinn (0: every connection ties).
fn score(rank: Rank, r: &Row<'_>) -> u64 {
    let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    match rank {
        Rank::Drops => r.conn.stats().path.lost_packets,
        Rank::Rtt => nanos(r.conn.rtt()),
        _ => 0,
    }
}

fn item(r: &Row<'_>, score: u64) -> ReportItem {
    let s = r.conn.stats();
    let state = if r.conn.is_closed() {
        "closing"
    } else if r.connected {
        "connected"
    } else {
        "handshaking"
    };
    ReportItem {
        kind: "quic",
        key: r.key,
        score,
        fields: vec![
            ("peer", r.conn.remote_address().to_string()),
            ("state", state.to_string()),
            ("rtt_us", r.conn.rtt().as_micros().to_string()),
            ("cwnd", s.path.cwnd.to_string()),
            ("mtu", s.path.current_mtu.to_string()),
            ("sent_packets", s.path.sent_packets.to_string()),
            ("lost_packets", s.path.lost_packets.to_string()),
            ("datagrams_in", s.udp_rx.datagrams.to_string()),
            ("datagrams_out", s.udp_tx.datagrams.to_string()),
            ("bytes_in", s.udp_rx.bytes.to_string()),
            ("bytes_out", s.udp_tx.bytes.to_string()),
        ],
    }
}
