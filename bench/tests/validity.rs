//! Which cells are reported: the validity rules, medians over the rounds in
//! which a cell is valid, old reports without the client's lag, what the
//! plot draws, and the caption every table of BENCHMARKS.md carries.

mod common;

use common::{load_report, loadavg, temp_dir, write};
use ringwire_bench::compare::{read_rounds, round_dirs, table};
use ringwire_bench::load::report::{LagUs, LoadReport};
use ringwire_bench::plot::{Point, series};
use ringwire_bench::report::{ReportArgs, markdown, read};
use ringwire_bench::validity::{
    MAX_CLIENT_LAG_P99_US, MAX_STEAL_PCT, Machine, Verdict, machine, verdict,
};
use std::path::Path;

/// An open-loop report at `rate` whose client lagged `lag_p99` us at p99.
fn open(rate: f64, p50: f64, lag_p99: f64) -> LoadReport {
    let mut r = load_report(rate, 0);
    r.loop_kind = "open".into();
    r.window = None;
    r.rate = Some(rate);
    r.latency_us.p50 = p50;
    r.latency_us.p99 = p50 * 4.0;
    r.latency_us.p999 = p50 * 8.0;
    r.client_lag_us = Some(LagUs {
        p50: lag_p99 / 4.0,
        p99: lag_p99,
        p999: lag_p99 * 2.0,
        max: lag_p99 * 3.0,
    });
    r.client_max_send_lag_us = lag_p99 * 3.0;
    r
}

/// `base/round-{k + 1}`, created: the layout `scripts/bench.sh --rounds N` leaves.
fn round_dir(base: &Path, k: usize) -> std::path::PathBuf {
    let dir = base.join(format!("round-{}", k + 1));
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

#[test]
fn open_loop_is_invalid_only_past_the_p99_limit() {
    assert_eq!(verdict(&open(1000.0, 20.0, 3.0)), Verdict::Valid);
    assert_eq!(
        verdict(&open(1000.0, 20.0, MAX_CLIENT_LAG_P99_US)),
        Verdict::Valid
    );
    let late = verdict(&open(1000.0, 20.0, 18_600.0));
    assert_eq!(late, Verdict::Late { p99_us: 18_600.0 });
    assert_eq!(
        late.to_string(),
        "invalid: client 18.6 ms late at p99 (limit 1.00 ms)"
    );
    // A late max with an on-time p99 is still valid: the rule is p99.
    let mut spiky = open(1000.0, 20.0, 900.0);
    spiky.client_lag_us.as_mut().expect("set").max = 40_000.0;
    assert_eq!(verdict(&spiky), Verdict::Valid);
    let mut unknown = open(1000.0, 20.0, 3.0);
    unknown.client_lag_us = None;
    assert_eq!(verdict(&unknown), Verdict::UnknownLateness);
}

#[test]
fn closed_loop_is_never_invalidated_by_lag() {
    let mut r = load_report(100_000.0, 0);
    r.client_lag_us.as_mut().expect("set").p99 = 50_000.0;
    assert_eq!(verdict(&r), Verdict::Valid);
    r.client_lag_us = None;
    assert_eq!(verdict(&r), Verdict::Valid);
}

#[test]
fn steal_over_the_limit_invalidates_any_cell() {
    let mut closed = load_report(100_000.0, 0);
    closed.steal_pct = Some(MAX_STEAL_PCT);
    assert_eq!(
        verdict(&closed),
        Verdict::Valid,
        "the limit itself is allowed"
    );
    closed.steal_pct = Some(7.5);
    assert_eq!(verdict(&closed), Verdict::Stolen { pct: 7.5 });
    assert_eq!(
        verdict(&closed).to_string(),
        "invalid: the hypervisor took 7.5% of the CPU time (limit 2%)"
    );
    // Steal is judged before the client's lag: it is the cause.
    let mut open_late = open(1000.0, 20.0, 18_600.0);
    open_late.steal_pct = Some(3.0);
    assert_eq!(verdict(&open_late), Verdict::Stolen { pct: 3.0 });
    // Older reports without the field are judged as before.
    closed.steal_pct = None;
    assert_eq!(verdict(&closed), Verdict::Valid);
}

#[test]
fn medians_leave_out_the_rounds_the_hypervisor_disturbed() {
    let base = temp_dir("validity-steal");
    // sat: 100k, 60k (12% stolen), 110k; lat: stolen in every round.
    for (k, (rps, steal)) in [(100_000.0, 0.5), (60_000.0, 12.0), (110_000.0, 1.0)]
        .into_iter()
        .enumerate()
    {
        let dir = round_dir(&base, k);
        let mut sat = load_report(rps, 0);
        sat.steal_pct = Some(steal);
        write(&dir, "tokio.sat.json", &sat);
        let mut lat = load_report(50_000.0, 0);
        lat.window = Some(8);
        lat.steal_pct = Some(5.0 + k as f64);
        write(&dir, "tokio.lat.json", &lat);
    }
    let runs = read_rounds(&round_dirs(&base)).expect("reads");
    let t = table(&round_dirs(&base), "mmsg").expect("table");
    let _ = std::fs::remove_dir_all(&base);
    let tokio = &runs.1["tokio"];
    let sat = tokio.cell("sat").expect("cell");
    assert_eq!(sat.verdict, Verdict::Valid);
    assert_eq!(sat.valid_rounds(), 2);
    assert_eq!(
        tokio.saturation_rps(),
        Some(105_000.0),
        "median of 100k and 110k"
    );
    let lat = tokio.cell("lat").expect("cell");
    assert_eq!(lat.verdict, Verdict::Stolen { pct: 6.0 });
    assert!(tokio.valid("lat").is_none());
    assert!(
        t.contains("**invalid: the hypervisor took 6.0% of the CPU time (limit 2%)**"),
        "{t}"
    );
}

#[test]
fn quiet_only_below_the_limit() {
    assert!(matches!(machine(Some(loadavg(0.29))), Machine::Quiet(_)));
    assert!(matches!(machine(Some(loadavg(0.3))), Machine::Contended(_)));
    assert!(matches!(machine(Some(loadavg(4.2))), Machine::Contended(_)));
    assert_eq!(machine(None), Machine::Unknown);
}

/// A report as written before the client's lag percentiles, preemptions
/// and load averages were recorded.
const OLD_OPEN_LOOP: &str = r#"{
  "mode": "echo", "loop": "open", "target": "127.0.0.1:21000",
  "peers": 64, "distinct_source_ports": 64, "peers_responded": 64,
  "threads": 1, "payload_bytes": 32, "window": null, "rate": 38999.0,
  "duration_s": 10.0, "warmup_s": 2.0, "timeout_ms": 200,
  "sent": 389990, "received": 389990, "lost": 0,
  "timeouts": 0, "late": 0, "errors": 0, "misrouted": 0,
  "client_max_send_lag_us": 18600.0, "client_sent_late": 5200,
  "achieved_rps": 38999.0,
  "latency_us": { "p50": 39.9, "p90": 120.0, "p99": 6615.0, "p999": 18858.0, "max": 21000.0, "mean": 90.0 }
}"#;

#[test]
fn old_reports_parse_with_unknown_lateness() {
    let r: LoadReport = serde_json::from_str(OLD_OPEN_LOOP).expect("old report parses");
    assert_eq!(r.client_lag_us, None);
    assert_eq!(r.loadavg_before, None);
    assert_eq!(r.client_involuntary_switches, None);
    assert_eq!(verdict(&r), Verdict::UnknownLateness);

    let dir = temp_dir("validity-old");
    std::fs::write(dir.join("mmsg.open25.json"), OLD_OPEN_LOOP).expect("write");
    let t = table(std::slice::from_ref(&dir), "mmsg").expect("table");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(t.contains("39.9 / 6615.0 (client lateness unknown)"), "{t}");
    assert!(t.contains("1 of unknown lateness"), "{t}");
}

#[test]
fn medians_use_only_the_rounds_in_which_a_cell_is_valid() {
    let base = temp_dir("validity-rounds");
    // open25: valid in rounds 1 and 3 (p50 20 and 40), late in round 2.
    // open50: late in every round.
    for (k, (p50, lag25)) in [(20.0, 5.0), (900.0, 30_000.0), (40.0, 8.0)]
        .into_iter()
        .enumerate()
    {
        let dir = round_dir(&base, k);
        write(&dir, "tokio.open25.json", &open(1000.0, p50, lag25));
        write(
            &dir,
            "tokio.open50.json",
            &open(2000.0, 50.0, 5000.0 * (k + 1) as f64),
        );
    }
    let runs = read_rounds(&round_dirs(&base)).expect("reads");
    let t = table(&round_dirs(&base), "mmsg").expect("table");
    let _ = std::fs::remove_dir_all(&base);
    let tokio = &runs.1["tokio"];
    let c25 = tokio.cell("open25").expect("cell");
    assert_eq!(c25.verdict, Verdict::Valid);
    assert_eq!(c25.valid_rounds(), 2);
    assert!(
        (c25.report.latency_us.p50 - 30.0).abs() < 1e-9,
        "median of 20 and 40"
    );
    assert_eq!(c25.worst_lag().expect("lag").p99, 30_000.0);
    let c50 = tokio.cell("open50").expect("cell");
    assert_eq!(c50.verdict, Verdict::Late { p99_us: 10_000.0 });
    assert!(tokio.valid("open50").is_none());
    assert!(t.contains("| 30.0 / 120.0 (2 of 3 rounds valid) |"), "{t}");
    assert!(
        t.contains("| **invalid: client 10.0 ms late at p99 (limit 1.00 ms)** |"),
        "{t}"
    );
}

#[test]
fn plot_takes_only_valid_open_loop_cells_and_marks_saturation_apart() {
    let dir = temp_dir("validity-plot");
    write(&dir, "mmsg.sat.json", &load_report(200_000.0, 0));
    write(&dir, "mmsg.lat.json", &load_report(50_000.0, 0));
    write(&dir, "mmsg.open25.json", &open(50_000.0, 20.0, 3.0));
    write(&dir, "mmsg.open50.json", &open(100_000.0, 25.0, 20_000.0));
    write(&dir, "mmsg.open75.json", &open(150_000.0, 40.0, 6.0));
    write(&dir, "mmsg.open90.json", &open(180_000.0, 80.0, 9.0));
    let mut unknown = open(50_000.0, 30.0, 1.0);
    unknown.client_lag_us = None;
    write(&dir, "tokio.open25.json", &unknown);
    let runs = read_rounds(&round_dirs(&dir)).expect("reads");
    let svg = ringwire_bench::plot::svg(&runs).expect("svg");
    let _ = std::fs::remove_dir_all(&dir);

    let s = series(&runs);
    let mmsg = s.iter().find(|s| s.name == "mmsg").expect("mmsg");
    let point = |offered: f64, p50: f64| Point {
        offered,
        p50,
        p99: p50 * 4.0,
    };
    // The late open50 cell splits the curve; the closed-loop phases are no
    // points of it.
    assert_eq!(
        mmsg.segments,
        vec![
            vec![point(50_000.0, 20.0)],
            vec![point(150_000.0, 40.0), point(180_000.0, 80.0)],
        ]
    );
    assert_eq!(mmsg.saturation, Some(200_000.0));
    // The client's lag is shown for every open-loop cell, the late one too.
    assert_eq!(
        mmsg.lag,
        vec![
            (50_000.0, 3.0),
            (100_000.0, 20_000.0),
            (150_000.0, 6.0),
            (180_000.0, 9.0)
        ]
    );
    let tokio = s.iter().find(|s| s.name == "tokio").expect("tokio");
    assert!(tokio.segments.is_empty() && tokio.lag.is_empty());
    assert_eq!(tokio.saturation, None);
    assert!(svg.contains("mmsg (saturation 200000/s)"), "{svg}");
    assert!(svg.contains("client lag p99 limit"), "{svg}");
}

/// A one-round run directory: `late_tokio` makes tokio's open50 cell late.
fn run_dir(dir: &Path, loadavg_start: &str, late_tokio: bool) {
    std::fs::write(
        dir.join("machine.txt"),
        "git: abc1234 (with uncommitted changes)\nkernel: 6.1-test\nnproc: 2\n",
    )
    .expect("write");
    std::fs::write(dir.join("loadavg.start"), loadavg_start).expect("write");
    for (name, sat) in [
        ("mmsg", 200_000.0),
        ("tokio", 150_000.0),
        ("ringwire", 190_000.0),
    ] {
        let mut s = load_report(sat, 0);
        s.loadavg_before = Some(loadavg(0.11));
        write(dir, &format!("{name}.sat.json"), &s);
        write(dir, &format!("{name}.lat.json"), &load_report(sat / 4.0, 0));
        for (pct, p50) in [(25, 20.0), (50, 25.0), (75, 40.0), (90, 70.0)] {
            let lag = if late_tokio && name == "tokio" && pct == 50 {
                18_600.0
            } else {
                4.0
            };
            let mut r = open(2000.0 * f64::from(pct), p50, lag);
            r.loadavg_after = Some(loadavg(1.25));
            write(dir, &format!("{name}.open{pct}.json"), &r);
        }
    }
}

fn args(dir: &Path) -> ReportArgs {
    ReportArgs {
        dir: dir.to_path_buf(),
        markdown: "-".into(),
        note: None,
        svg: "bench-latency.svg".into(),
        floor: "mmsg".into(),
        engine: "ringwire".into(),
    }
}

#[test]
fn every_table_says_commit_kernel_load_average_and_lateness() {
    let dir = temp_dir("validity-caption");
    run_dir(&dir, "0.12 0.20 0.30 1/99 7\n", true);
    let md = markdown(&read(&dir).expect("reads"), &args(&dir)).expect("markdown");
    let _ = std::fs::remove_dir_all(&dir);
    let lines: Vec<&str> = md.lines().collect();
    let mut tables = 0;
    for (i, line) in lines.iter().enumerate() {
        let starts_table = line.starts_with('|') && i > 0 && lines[i - 1].is_empty();
        if !starts_table {
            continue;
        }
        tables += 1;
        let section = lines[..i]
            .iter()
            .rev()
            .take_while(|l| !l.starts_with("## "))
            .find(|l| l.starts_with("_Commit"));
        let caption = section.unwrap_or_else(|| panic!("table {line:?} has no caption:\n{md}"));
        for part in [
            "_Commit `abc1234 (with uncommitted changes)`",
            "kernel `6.1-test`",
            "0.12 0.20 0.30 at start",
            "1.25 1.25 1.25 at end",
            "client lag p99: open loop 4 us to 18.6 ms",
            "11 open-loop cells valid, 1 invalid",
        ] {
            assert!(caption.contains(part), "caption lacks {part:?}: {caption}");
        }
    }
    assert_eq!(tables, 3, "absolute, per cell, ratios:\n{md}");
    assert!(
        md.contains("**Machine: quiet (1-minute load average 0.12"),
        "{md}"
    );
    assert!(
        md.contains("**Open-loop cells: 11 valid, 1 invalid**"),
        "{md}"
    );
}

#[test]
fn an_invalid_cell_is_marked_not_reported_and_not_compared() {
    let dir = temp_dir("validity-invalid");
    run_dir(&dir, "0.35 0.20 0.30 1/99 7\n", true);
    let md = markdown(&read(&dir).expect("reads"), &args(&dir)).expect("markdown");
    let _ = std::fs::remove_dir_all(&dir);
    let row = |start: &str| {
        md.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no {start:?} row:\n{md}"))
    };
    let tokio = row("| tokio | ");
    assert!(
        tokio.contains("| **invalid: client 18.6 ms late at p99 (limit 1.00 ms)** |"),
        "{md}"
    );
    // tokio's open50 figures (p50 25 / p99 100) are not in its row.
    assert!(!tokio.contains("25.0 / 100.0"), "{md}");
    assert!(
        row("| ringwire | ").contains("| 25.0 / 100.0 / 200.0 |"),
        "{md}"
    );
    // No ratio against an invalid cell: p99 at 50% of ringwire / tokio.
    assert!(
        row("| ringwire / tokio | ")
            .starts_with("| ringwire / tokio | 1.27 | 1.00 | invalid | 1.00 | 1.00 |"),
        "{md}"
    );
    assert!(
        row("| tokio | open50 | ").contains("**invalid: client 18.6 ms late"),
        "{md}"
    );
    assert!(
        row("| tokio | open50 | ").contains("| 0.10 → 1.25 (steal 0.2%) |"),
        "{md}"
    );
    assert!(
        md.contains("**Machine: contended (1-minute load average 0.35"),
        "{md}"
    );
    assert!(md.contains("not comparable: p99 at 50% (invalid)"), "{md}");
    assert!(md.contains("- vs tokio: ahead on saturation 1.27"), "{md}");
}
