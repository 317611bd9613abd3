//! The live view as JSON: `/stats.json` (every shard's cumulative counters; rates are the
//! difference of two reads) and `/sessions.json` (the worst sessions by a rank, with their
//! flight recorders). `ringwire stats` reads both.
#![forbid(unsafe_code)]

use std::time::UNIX_EPOCH;

use ringwire_shard::counters::errno_name;
use serde_json::{Map, Value, json};

use super::snapshot::Snapshot;
use crate::engine::Worst;

/// `/stats.json`: `{"unix_ms", "shards": [{"shard", "counters", "send_errors", "lanes", "app",
/// "turns"}]}`. `app` and `turns` are `null` for a shard that did not answer in time (or,
/// for `turns`, does not record them).
pub fn stats_json(snapshot: &Snapshot) -> Value {
    let unix_ms = snapshot
        .at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let shards: Vec<Value> = snapshot
        .shards
        .iter()
        .map(|s| {
            let counters: Map<String, Value> = s
                .stats
                .counters()
                .iter()
                .map(|(n, v)| ((*n).to_string(), json!(v)))
                .collect();
            let send_errors: Map<String, Value> = s
                .stats
                .send_errors
                .iter()
                .map(|(e, n)| (errno_name(*e), json!(n)))
                .collect();
            let lanes: Vec<Value> = s
                .stats
                .lanes
                .iter()
                .map(|l| {
                    json!({
                        "from": l.from, "to": l.to,
                        "lane": if l.lane == 0 { "control" } else { "data" },
                        "sent": l.sent, "full": l.full, "closed": l.closed,
                        "max_depth": l.max_depth, "wakes": l.wakes,
                    })
                })
                .collect();
            let app = s.app.as_ref().map(|app| {
                let mut m = Map::new();
                for (n, v) in app {
                    m.insert((*n).to_string(), json!(v));
                }
                Value::Object(m)
            });
            let turns = s.turn_nanos.as_ref().map(|h| {
                json!({
                    "count": h.len(),
                    "p50_ns": h.value_at_quantile(0.5),
                    "p99_ns": h.value_at_quantile(0.99),
                    "p999_ns": h.value_at_quantile(0.999),
                    "max_ns": h.max(),
                })
            });
            json!({
                "shard": s.stats.shard,
                "counters": counters,
                "send_errors": send_errors,
                "lanes": lanes,
                "app": app,
                "turns": turns,
            })
        })
        .collect();
    json!({ "unix_ms": unix_ms, "shards": shards })
}

/// `/sessions.json`: `{"by", "top", "sessions": [{"shard", "conn", "score", "fields"}],
/// "incomplete": [shards]}`, worst first.
pub fn sessions_json(by: ringwire_shard::Rank, top: usize, worst: &Worst) -> Value {
    let sessions: Vec<Value> = worst
        .items
        .iter()
        .map(|(shard, item)| {
            let fields: Map<String, Value> = item
                .fields
                .iter()
                .map(|(n, v)| ((*n).to_string(), json!(v)))
                .collect();
            json!({
                "shard": shard,
                "kind": item.kind,
                "conn": format!("{:#018x}", item.key),
                "score": item.score,
                "fields": fields,
            })
        })
        .collect();
    json!({
        "by": by.name(),
        "top": top,
        "sessions": sessions,
        "incomplete": worst.incomplete,
    })
}
