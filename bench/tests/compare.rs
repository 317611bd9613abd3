//! The comparison table: ratios to the floor, and a bad report is an error.

use ringwire_bench::load::report::{LatencyUs, LoadReport};

fn report(rps: f64, lost: u64) -> LoadReport {
    LoadReport {
        mode: "echo".into(),
        loop_kind: "closed".into(),
        target: "127.0.0.1:1".into(),
        peers: 64,
        distinct_source_ports: 64,
        peers_responded: 64,
        threads: 1,
        payload_bytes: 32,
        window: Some(256),
        rate: None,
        duration_s: 1.0,
        warmup_s: 0.0,
        timeout_ms: 200,
        sent: rps as u64 + lost,
        received: rps as u64,
        lost,
        timeouts: lost,
        late: 0,
        errors: 0,
        misrouted: 0,
        client_max_send_lag_us: 0.0,
        client_sent_late: 0,
        achieved_rps: rps,
        latency_us: LatencyUs {
            p50: 10.0,
            p90: 20.0,
            p99: 30.0,
            p999: 40.0,
            max: 50.0,
            mean: 12.0,
        },
        sessions_established: None,
        handshake_failures: None,
        handshake_ms: None,
    }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ringwire-compare-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn write(dir: &std::path::Path, file: &str, r: &LoadReport) {
    let json = serde_json::to_string(r).expect("serialises");
    std::fs::write(dir.join(file), json).expect("write");
}

#[test]
fn ratios_are_relative_to_the_floor() {
    let dir = temp_dir("ratio");
    write(&dir, "mmsg.sat.json", &report(200_000.0, 0));
    write(&dir, "tokio.sat.json", &report(100_000.0, 3));
    write(&dir, "tokio.lat.json", &report(50_000.0, 0));
    let table = ringwire_bench::compare::table(std::slice::from_ref(&dir), "mmsg").expect("table");
    let _ = std::fs::remove_dir_all(&dir);
    let mmsg = table
        .lines()
        .find(|l| l.starts_with("| mmsg "))
        .expect("mmsg row");
    let tokio = table
        .lines()
        .find(|l| l.starts_with("| tokio "))
        .expect("tokio row");
    assert!(mmsg.contains("| 200000 | 1.00 |"), "{table}");
    assert!(tokio.contains("| 100000 (3 lost) | 0.50 |"), "{table}");
    assert!(tokio.contains("| 10.0 / 30.0 |"), "{table}");
}

#[test]
fn a_malformed_report_is_an_error() {
    let dir = temp_dir("bad");
    write(&dir, "mmsg.sat.json", &report(1.0, 0));
    std::fs::write(dir.join("tokio.sat.json"), "{\"sent\": ").expect("write");
    let result = ringwire_bench::compare::table(std::slice::from_ref(&dir), "mmsg");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(result.is_err());
}

#[test]
fn several_rounds_give_medians() {
    let dirs: Vec<_> = (0..3).map(|i| temp_dir(&format!("round{i}"))).collect();
    for (dir, (floor, tokio)) in dirs.iter().zip([
        (100_000.0, 90_000.0),
        (300_000.0, 10_000.0),
        (200_000.0, 50_000.0),
    ]) {
        write(dir, "mmsg.sat.json", &report(floor, 0));
        write(dir, "tokio.sat.json", &report(tokio, 0));
    }
    let table = ringwire_bench::compare::table(&dirs, "mmsg").expect("table");
    for d in &dirs {
        let _ = std::fs::remove_dir_all(d);
    }
    let mmsg = table
        .lines()
        .find(|l| l.starts_with("| mmsg "))
        .expect("mmsg row");
    let tokio = table
        .lines()
        .find(|l| l.starts_with("| tokio "))
        .expect("tokio row");
    assert!(mmsg.contains("| 200000 | 1.00 |"), "{table}");
    assert!(tokio.contains("| 50000 | 0.25 |"), "{table}");
}
