//! The metrics endpoint of a running engine: every line parses as Prometheus text, the
//! counters that moved with the traffic the test sent say so exactly, and the JSON views parse.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::net::UdpSocket;

use common::{HANG, os};
use ringwire::Engine;
use ringwire::apps::Echo;
use ringwire::kernel::available_or_explain;
use ringwire::metrics::MetricsServer;

fn get(url: &str) -> String {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(HANG))
        .build()
        .into();
    agent
        .get(url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap()
}

/// One sample line: `name{label="value",...} number`.
fn parse_sample(line: &str) -> (String, HashMap<String, String>, f64) {
    let (series, value) = line
        .rsplit_once(' ')
        .unwrap_or_else(|| panic!("no value: {line}"));
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
    };
    let (name, labels) = match series.split_once('{') {
        None => (series, HashMap::new()),
        Some((name, rest)) => {
            let body = rest
                .strip_suffix('}')
                .unwrap_or_else(|| panic!("unclosed labels: {line}"));
            let mut labels = HashMap::new();
            for pair in body.split(',').filter(|p| !p.is_empty()) {
                let (k, v) = pair
                    .split_once('=')
                    .unwrap_or_else(|| panic!("label: {line}"));
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or_else(|| panic!("unquoted label value: {line}"));
                assert!(valid_name(k), "label name {k:?} in {line}");
                labels.insert(k.to_string(), v.to_string());
            }
            (name, labels)
        }
    };
    assert!(valid_name(name), "metric name {name:?} in {line}");
    (name.to_string(), labels, value)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Every line is a `# HELP`, a `# TYPE` (with a known type) or a sample whose family was
/// declared; returns the samples.
fn parse(text: &str) -> Vec<(String, HashMap<String, String>, f64)> {
    let mut types = HashMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(valid_name(name), "{line}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            types.insert(name.to_string(), kind.to_string());
        } else {
            assert!(
                !line.starts_with('#') && !line.is_empty(),
                "stray line {line:?}"
            );
            let sample = parse_sample(line);
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| sample.0.strip_suffix(s))
                .filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
                .unwrap_or(&sample.0);
            assert!(types.contains_key(family), "sample before its TYPE: {line}");
            samples.push(sample);
        }
    }
    samples
}

fn sum(samples: &[(String, HashMap<String, String>, f64)], name: &str) -> f64 {
    samples
        .iter()
        .filter(|(n, _, _)| n == name)
        .map(|(_, _, v)| v)
        .sum()
}

#[test]
fn a_scrape_parses_and_shows_the_traffic_sent() {
    if !available_or_explain() {
        return;
    }
    const SENT: u64 = 200;
    let mut config = common::config(2);
    config.shard.turn_histogram = true;
    config.shard.max_datagram = 64;
    let engine = Engine::start(&config, |_| Echo).unwrap();
    let metrics = MetricsServer::start("127.0.0.1:0".parse().unwrap(), engine.observer()).unwrap();
    let base = format!("http://{}", metrics.local_addr());

    let before = parse(&get(&format!("{base}/metrics")));
    assert_eq!(sum(&before, "ringwire_datagrams_in_total"), 0.0);

    // SENT echoes, one at a time (nothing in flight can be lost), and one datagram too large
    // for the shards' buffers: a drop by reason.
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(HANG)).unwrap();
    let mut buf = [0u8; 64];
    for i in 0..SENT {
        client
            .send_to(&i.to_be_bytes(), engine.local_addr())
            .unwrap();
        client.recv_from(&mut buf).unwrap();
    }
    client.send_to(&[0u8; 100], engine.local_addr()).unwrap();
    // The shards publish at the end of a turn: wait until they have (the sends completed).
    os::wait_until("the shards to publish the echoes and the drop", || {
        let s = engine.stats();
        s.iter().map(|s| s.datagrams_out).sum::<u64>() == SENT
            && s.iter().map(|s| s.recv_truncated).sum::<u64>() == 1
    });

    // The server waits 2 s for each shard's report; on a loaded host a shard can be starved
    // that long, and the scrape then says so (`scrape_shards_unanswered`) and lacks that
    // shard's handler counters and turn histogram. Scrape again until every shard answered
    // (a late reply to an earlier scrape is discarded as stale, never mistaken for this one's).
    let mut text = String::new();
    os::wait_until("a scrape that every shard answered", || {
        text = get(&format!("{base}/metrics"));
        parse(&text)
            .iter()
            .any(|(n, _, v)| n == "ringwire_scrape_shards_unanswered" && *v == 0.0)
    });
    let after = parse(&text);
    assert_eq!(
        sum(&after, "ringwire_datagrams_in_total"),
        SENT as f64,
        "{text}"
    );
    assert_eq!(sum(&after, "ringwire_datagrams_out_total"), SENT as f64);
    assert_eq!(sum(&after, "ringwire_bytes_out_total"), (SENT * 8) as f64);
    let truncated: f64 = after
        .iter()
        .filter(|(n, l, _)| n == "ringwire_drops_total" && l["reason"] == "recv_truncated")
        .map(|(_, _, v)| v)
        .sum();
    assert_eq!(truncated, 1.0, "{text}");
    assert!(
        after
            .iter()
            .any(|(n, _, _)| n == "ringwire_kernel_drops_total")
    );
    assert_eq!(sum(&after, "ringwire_shards"), 2.0);
    assert_eq!(
        sum(&after, "ringwire_scrape_shards_unanswered"),
        0.0,
        "{text}"
    );
    // Every turn that handled a datagram was recorded: at least one per echo.
    assert!(
        sum(&after, "ringwire_loop_turn_seconds_count") >= SENT as f64,
        "{text}"
    );
    // Mesh lanes are exported per ordered pair and lane.
    assert!(
        after
            .iter()
            .any(|(n, l, _)| n == "ringwire_lane_sent_total" && l["lane"] == "data"),
        "{text}"
    );

    // The same for the JSON view: a shard that did not answer has `app` and `turns` null.
    let mut stats = serde_json::Value::Null;
    os::wait_until("a /stats.json that every shard answered", || {
        stats = serde_json::from_str(&get(&format!("{base}/stats.json"))).unwrap();
        stats["shards"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| !s["app"].is_null())
    });
    let shards = stats["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 2);
    let json_in: u64 = shards
        .iter()
        .map(|s| s["counters"]["datagrams_in"].as_u64().unwrap())
        .sum();
    assert_eq!(json_in, SENT);
    assert!(
        shards
            .iter()
            .all(|s| s["turns"]["count"].as_u64().is_some())
    );
    let sessions: serde_json::Value =
        serde_json::from_str(&get(&format!("{base}/sessions.json?top=5&by=queue"))).unwrap();
    assert_eq!(sessions["by"], "queue");
    assert_eq!(
        sessions["sessions"].as_array().unwrap().len(),
        0,
        "echo has none"
    );
    metrics.stop();
    common::shutdown(engine);
}
