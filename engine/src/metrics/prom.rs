//! A [`Snapshot`] in the Prometheus text format, built with `prometheus-client` (a collector
//! that encodes the snapshot's values as constant metrics on each scrape).
#![forbid(unsafe_code)]

use std::collections::HashMap;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use ringwire_shard::ShardStats;
use ringwire_shard::counters::errno_name;
use ringwire_shard::quic::stats as quic_stats;
use ringwire_shard::session::DropReason;
use ringwire_shard::session::host::{REFUSALS_PREFIX, TRIMS_PREFIX};

use super::snapshot::{Snapshot, drops_by_reason, is_drop_counter};

/// Bucket bounds of `ringwire_loop_turn_seconds`, in seconds.
const TURN_BUCKETS: [f64; 16] = [
    1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 5e-2, 0.1, 1.0,
];

/// The Prometheus text exposition (version 0.0.4) of `snapshot`; its content type is
/// [`CONTENT_TYPE`](prometheus_client::encoding::prometheus_text::CONTENT_TYPE).
pub fn prometheus_text(snapshot: &Snapshot) -> String {
    let mut registry = Registry::with_prefix("ringwire");
    registry.register_collector(Box::new(SnapshotCollector(snapshot.clone())));
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

#[derive(Debug)]
struct SnapshotCollector(Snapshot);

type Labels = Vec<(&'static str, String)>;

/// Writes one metric family: `name` with `help`, one value per label set.
fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    values: impl IntoIterator<Item = (Labels, M)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in values {
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

fn shard_label(s: &ShardStats) -> Labels {
    vec![("shard", s.shard.to_string())]
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snap = &self.0;
        let stats: Vec<&ShardStats> = snap.shards.iter().map(|s| &s.stats).collect();
        family(
            &mut e,
            "shards",
            "Shards in the engine.",
            MetricType::Gauge,
            [(Vec::new(), ConstGauge::new(stats.len() as i64))],
        )?;
        // Every plain shard counter by its own name, except the drops (below, by reason).
        for (i, (name, _)) in ShardStats::default().counters().iter().enumerate() {
            if is_drop_counter(name) {
                continue;
            }
            let help = ShardStats::describe(name).unwrap_or("A shard counter.");
            family(
                &mut e,
                name,
                help,
                MetricType::Counter,
                stats
                    .iter()
                    .map(|s| (shard_label(s), ConstCounter::new(s.counters()[i].1))),
            )?;
        }
        family(
            &mut e,
            "drops",
            "Datagrams ringwire dropped, by reason (send_error is summed over errnos; see \
             ringwire_send_errors_total).",
            MetricType::Counter,
            stats.iter().flat_map(|s| {
                drops_by_reason(s).into_iter().map(|(reason, n)| {
                    let mut l = shard_label(s);
                    l.push(("reason", reason.to_string()));
                    (l, ConstCounter::new(n))
                })
            }),
        )?;
        family(
            &mut e,
            "kernel_drops",
            "Datagrams the kernel dropped at the shard's socket before ringwire read them (a \
             full receive buffer), from SO_RXQ_OVFL; seen when the next datagram is read.",
            MetricType::Counter,
            stats
                .iter()
                .map(|s| (shard_label(s), ConstCounter::new(s.kernel_drops))),
        )?;
        family(
            &mut e,
            "send_errors",
            "Sends the kernel failed, by errno.",
            MetricType::Counter,
            stats.iter().flat_map(|s| {
                s.send_errors.iter().map(|(errno, n)| {
                    let mut l = shard_label(s);
                    l.push(("errno", errno_name(*errno)));
                    (l, ConstCounter::new(*n))
                })
            }),
        )?;
        lanes(&mut e, &stats)?;
        app_counters(&mut e, snap)?;
        turns(&mut e, snap)?;
        family(
            &mut e,
            "scrape_shards_unanswered",
            "Shards that did not answer this scrape's report request in time (their handler \
             counters and turn histogram are missing from it).",
            MetricType::Gauge,
            [(Vec::new(), ConstGauge::new(snap.unanswered() as i64))],
        )?;
        family(
            &mut e,
            "report_replies_dropped",
            "Report replies shards dropped because a requester's reply channel was full.",
            MetricType::Counter,
            [(Vec::new(), ConstCounter::new(snap.replies_dropped))],
        )?;
        Ok(())
    }
}

/// Per mesh lane (ordered shard pair, control or data).
fn lanes(e: &mut DescriptorEncoder<'_>, stats: &[&ShardStats]) -> Result<(), std::fmt::Error> {
    let labels = |l: &ringwire_shard::mesh::LaneStats| -> Labels {
        vec![
            ("from", l.from.to_string()),
            ("to", l.to.to_string()),
            (
                "lane",
                if l.lane == 0 { "control" } else { "data" }.to_string(),
            ),
        ]
    };
    let all: Vec<_> = stats.iter().flat_map(|s| s.lanes.iter()).collect();
    type Read = fn(&ringwire_shard::mesh::LaneStats) -> u64;
    let counters: [(&str, &str, Read); 4] = [
        ("lane_sent", "Mesh messages sent on the lane.", |l| l.sent),
        (
            "lane_full",
            "Mesh sends refused because the lane was full.",
            |l| l.full,
        ),
        (
            "lane_closed",
            "Mesh sends refused because the receiver had stopped.",
            |l| l.closed,
        ),
        (
            "lane_wakes",
            "Wakes of the parked receiver after sends on the lane.",
            |l| l.wakes,
        ),
    ];
    for (name, help, value) in counters {
        family(
            e,
            name,
            help,
            MetricType::Counter,
            all.iter().map(|l| (labels(l), ConstCounter::new(value(l)))),
        )?;
    }
    family(
        e,
        "lane_max_depth",
        "The most messages ever waiting on the lane at once.",
        MetricType::Gauge,
        all.iter().map(|l| {
            (
                labels(l),
                ConstGauge::new(i64::try_from(l.max_depth).unwrap_or(i64::MAX)),
            )
        }),
    )
}

/// The handlers' named counters: session drop reasons, admission refusals and trims as one
/// family each by reason, every other name as its own gauge (some are levels, such as
/// `sessions`), so counters an application or the session layer adds later appear without
/// changes here.
fn app_counters(e: &mut DescriptorEncoder<'_>, snap: &Snapshot) -> Result<(), std::fmt::Error> {
    let is_session_drop = |name: &str| DropReason::ALL.iter().any(|r| r.name() == name);
    let mut by_name: HashMap<&'static str, Vec<(Labels, ConstGauge)>> = HashMap::new();
    let mut session_drops = Vec::new();
    let mut refusals = Vec::new();
    let mut trims = Vec::new();
    let mut quic_refusals = Vec::new();
    let mut quic_trims = Vec::new();
    for s in &snap.shards {
        let Some(app) = &s.app else { continue };
        for (name, value) in app {
            let v = i64::try_from(*value).unwrap_or(i64::MAX);
            let labelled = |reason: &str| {
                let mut l = shard_label(&s.stats);
                l.push(("reason", reason.to_string()));
                (l, ConstCounter::new(*value))
            };
            if is_session_drop(name) {
                session_drops.push(labelled(name));
            } else if let Some(reason) = name.strip_prefix(REFUSALS_PREFIX) {
                refusals.push(labelled(reason));
            } else if let Some(reason) = name.strip_prefix(TRIMS_PREFIX) {
                trims.push(labelled(reason));
            } else if let Some(reason) = name.strip_prefix(quic_stats::REFUSALS_PREFIX) {
                quic_refusals.push(labelled(reason));
            } else if let Some(reason) = name.strip_prefix(quic_stats::TRIMS_PREFIX) {
                quic_trims.push(labelled(reason));
            } else {
                by_name
                    .entry(name)
                    .or_default()
                    .push((shard_label(&s.stats), ConstGauge::new(v)));
            }
        }
    }
    if !session_drops.is_empty() {
        family(
            e,
            "session_drops",
            "Datagrams the session layer dropped, by reason (a reason shows once it happened).",
            MetricType::Counter,
            session_drops,
        )?;
    }
    if !refusals.is_empty() {
        family(
            e,
            "session_refusals",
            "New sessions admission control refused, by reason (memory, shard_full, node_full, \
             pending_full, prefix_full, prefix_rate, prefix_table_full).",
            MetricType::Counter,
            refusals,
        )?;
    }
    if !trims.is_empty() {
        family(
            e,
            "session_trims",
            "Sessions the connection manager closed with Close(Trimmed), by reason (watermark, \
             forced).",
            MetricType::Counter,
            trims,
        )?;
    }
    if !quic_refusals.is_empty() {
        family(
            e,
            "quic_refusals",
            "New QUIC connections admission control refused at their first Initial, by reason \
             (the reasons of session_refusals).",
            MetricType::Counter,
            quic_refusals,
        )?;
    }
    if !quic_trims.is_empty() {
        family(
            e,
            "quic_trims",
            "QUIC connections the connection manager closed (application code 0x52570001, \
             `trimmed`), by reason (watermark, forced).",
            MetricType::Counter,
            quic_trims,
        )?;
    }
    let mut names: Vec<_> = by_name.into_iter().collect();
    names.sort_by_key(|(n, _)| *n);
    for (name, values) in names {
        let metric = format!("app_{}", sanitize(name));
        family(
            e,
            &metric,
            "A counter the shard's handler reports (Handler::counters), as of this scrape.",
            MetricType::Gauge,
            values,
        )?;
    }
    Ok(())
}

/// The opt-in loop-turn histogram, with fixed buckets from the shard's HDR histogram.
fn turns(e: &mut DescriptorEncoder<'_>, snap: &Snapshot) -> Result<(), std::fmt::Error> {
    let shards: Vec<_> = snap
        .shards
        .iter()
        .filter_map(|s| Some((&s.stats, s.turn_nanos.as_ref()?)))
        .collect();
    if shards.is_empty() {
        return Ok(());
    }
    let mut metric = e.encode_descriptor(
        "loop_turn_seconds",
        "How long each loop turn's work took (shard.turn_histogram).",
        None,
        MetricType::Histogram,
    )?;
    for (stats, h) in shards {
        let mut buckets = Vec::with_capacity(TURN_BUCKETS.len() + 1);
        let mut below = 0;
        for bound in TURN_BUCKETS {
            let upto = h.count_between(0, (bound * 1e9) as u64);
            buckets.push((bound, upto - below));
            below = upto;
        }
        buckets.push((f64::INFINITY, h.len() - below));
        let sum = h.mean() * h.len() as f64 / 1e9;
        let labels = shard_label(stats);
        metric.encode_family(&labels)?.encode_histogram(
            sum,
            h.len(),
            &buckets,
            None::<&HashMap<usize, Exemplar<Labels, f64>>>,
        )?;
    }
    Ok(())
}

/// A metric name part: ASCII letters, digits and `_`.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::metrics::snapshot::ShardSnapshot;

    #[test]
    fn refusals_and_trims_are_families_by_reason() {
        let app = vec![
            ("sessions", 7),
            ("session_refusals_prefix_full", 3),
            ("session_refusals_memory", 0),
            ("session_trims_forced", 2),
            ("quic_refusals_prefix_rate", 4),
            ("quic_trims_watermark", 5),
            ("quic_connections", 6),
        ];
        let snap = Snapshot {
            at: SystemTime::now(),
            shards: vec![ShardSnapshot {
                stats: ShardStats::default(),
                app: Some(app),
                turn_nanos: None,
            }],
            replies_dropped: 0,
        };
        let text = prometheus_text(&snap);
        for want in [
            "# TYPE ringwire_session_refusals_total counter",
            "ringwire_session_refusals_total{shard=\"0\",reason=\"prefix_full\"} 3",
            "ringwire_session_refusals_total{shard=\"0\",reason=\"memory\"} 0",
            "ringwire_session_trims_total{shard=\"0\",reason=\"forced\"} 2",
            "ringwire_app_sessions{shard=\"0\"} 7",
            "ringwire_quic_refusals_total{shard=\"0\",reason=\"prefix_rate\"} 4",
            "ringwire_quic_trims_total{shard=\"0\",reason=\"watermark\"} 5",
            "ringwire_app_quic_connections{shard=\"0\"} 6",
        ] {
            assert!(text.contains(want), "{want} missing from:\n{text}");
        }
        assert!(!text.contains("app_session_refusals"), "{text}");
    }
}
