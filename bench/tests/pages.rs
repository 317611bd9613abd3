//! The session-scale and rings pages from fixtures: every table carries
//! the caption (commit, kernel, load average at start and end, the
//! client's lateness), and a late row keeps its CPU and memory but not its
//! latency.

mod common;

use common::{load_report, loadavg, temp_dir, write};
use ringwire_bench::load::fanout::FanoutUs;
use ringwire_bench::load::report::{LagUs, LoadReport};
use ringwire_bench::rings::{RingsReport, Row, page};
use ringwire_bench::scale::{ScaleRun, ServerSample, markdown, markdown_with, read, rows};
use ringwire_bench::scale_reference::References;

const MACHINE: &str = "git: abc1234\nkernel: 6.1-test\n";

/// A session-mode open-loop report for `n` sessions whose client lagged
/// `lag_p99` us at p99.
fn session_load(n: usize, lag_p99: f64) -> LoadReport {
    let mut r = load_report(20_000.0, 0);
    r.mode = "session".into();
    r.loop_kind = "open".into();
    r.window = None;
    r.rate = Some(20_000.0);
    r.sent = 100_000;
    r.received = 100_000;
    r.peers = n;
    r.sessions_established = Some(n);
    r.handshake_failures = Some(0);
    r.handshake_ms = Some(n as f64 / 40.0);
    r.latency_us.p50 = 70.0;
    r.latency_us.p99 = 5_000.0;
    r.client_lag_us = Some(LagUs {
        p50: 1.0,
        p99: lag_p99,
        p999: lag_p99,
        max: lag_p99,
    });
    r.loadavg_before = Some(loadavg(0.2));
    r.loadavg_after = Some(loadavg(1.1));
    r
}

/// The part of a page after `heading` (the heading's table and everything below it).
fn section<'a>(md: &'a str, heading: &str) -> &'a str {
    md.split(heading)
        .nth(1)
        .unwrap_or_else(|| panic!("no {heading:?} in:\n{md}"))
}

/// The first line of `table` that starts with `start`.
fn row_of<'a>(table: &'a str, start: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no {start:?} row in:\n{table}"))
}

#[test]
fn scale_page_has_the_caption_and_hides_late_latency() {
    let dir = temp_dir("pages-scale");
    std::fs::write(dir.join("machine.txt"), MACHINE).expect("write");
    std::fs::write(dir.join("loadavg.start"), "0.20 0.25 0.30 1/9 9\n").expect("write");
    std::fs::write(dir.join("loadavg.end"), "1.10 0.60 0.40 1/9 9\n").expect("write");
    // RSS idle: 6 MiB at 1, 16 MiB at 10,001, 21 MiB at 20,001 sessions.
    for (n, rss_mib, lag) in [(1, 6, 5.0), (10_001, 16, 8.0), (20_001, 21, 40_000.0)] {
        write(&dir, &format!("load.{n}.json"), &session_load(n, lag));
        let server = ServerSample {
            n,
            rss_empty_kib: Some(5 * 1024),
            rss_idle_kib: Some(rss_mib * 1024),
            cpu_ticks: 160,
            measured: true,
            handshake_cpu_ticks: None,
            cpu_ns: None,
            counters: None,
        };
        write(&dir, &format!("server.{n}.json"), &server);
    }
    let run = read(&dir).expect("reads");
    let _ = std::fs::remove_dir_all(&dir);
    let r = rows(&run, 100.0);
    assert_eq!(
        r.iter().map(|r| r.sessions).collect::<Vec<_>>(),
        [1, 10_001, 20_001]
    );
    // 1.6 s of CPU over 100,000 requests.
    assert_eq!(r[0].server_cpu_us_per_request, Some(16.0));
    // 10 MiB over 10,000 sessions, then 5 MiB over the next 10,000.
    assert_eq!(r[1].bytes_per_session, Some(1048.576));
    assert_eq!(r[2].marginal_bytes_per_session, Some(524.288));
    assert_eq!(r[0].bytes_per_session, None);

    let md = markdown(&run, None, None, None, 100.0, None).expect("page");
    let caption = md
        .lines()
        .find(|l| l.starts_with("_Commit"))
        .unwrap_or_else(|| panic!("no caption:\n{md}"));
    for part in [
        "_Commit `abc1234`",
        "kernel `6.1-test`",
        "0.20 0.25 0.30 at start",
        "1.10 0.60 0.40 at end",
        "2 open-loop cells valid, 1 invalid",
    ] {
        assert!(caption.contains(part), "caption lacks {part:?}: {caption}");
    }
    let row = |start: &str| {
        md.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no {start:?} row:\n{md}"))
    };
    assert!(
        row("| 1 | ").contains("| 70.0 | 5000.0 | 5.0 | 0.20 → 1.10 (steal 0.2%) | valid |"),
        "{md}"
    );
    // The late row: CPU and memory stay, latency does not.
    let late = row("| 20001 | ");
    assert!(late.contains("| 16.00 | 1.00x | 21.0 |"), "{md}");
    assert!(late.contains("| invalid | invalid | 40000.0 |"), "{md}");
    assert!(!late.contains("5000.0"), "{md}");
    assert!(md.contains("**Machine: quiet"), "{md}");
    // No cpustat.start / cpustat.end in the directory: the run's steal is unknown, each row's
    // is its load report's.
    assert!(md.contains("**Hypervisor steal: not recorded.**"), "{md}");
    assert!(md.contains("**Valid rows: 2 of 3.**"), "{md}");
}

/// The hot-subset table: its own caption, the active count, and the CPU per request over the
/// sessions table's 1-session row.
#[test]
fn scale_page_shows_the_hot_subset_against_one_session() {
    let write_run = |name: &str, rows: &[(usize, Option<usize>, i64)]| {
        let dir = temp_dir(name);
        std::fs::write(dir.join("machine.txt"), MACHINE).expect("write");
        std::fs::write(dir.join("loadavg.start"), "0.10 0.10 0.10 1/9 9\n").expect("write");
        std::fs::write(dir.join("loadavg.end"), "0.50 0.20 0.10 1/9 9\n").expect("write");
        for &(n, active, cpu_ticks) in rows {
            let mut load = session_load(n, 5.0);
            load.active = active;
            write(&dir, &format!("load.{n}.json"), &load);
            let server = ServerSample {
                n,
                rss_empty_kib: Some(5 * 1024),
                rss_idle_kib: Some(6 * 1024),
                cpu_ticks,
                measured: true,
                handshake_cpu_ticks: None,
                cpu_ns: None,
                counters: None,
            };
            write(&dir, &format!("server.{n}.json"), &server);
        }
        let run = read(&dir).expect("reads");
        let _ = std::fs::remove_dir_all(&dir);
        run
    };
    // 100,000 requests each: 1.0 s of CPU at 1 session, 1.1 s and 1.25 s with 1,000 active.
    let all = write_run("pages-hot-all", &[(1, None, 100)]);
    let hot = write_run(
        "pages-hot",
        &[(1_000, Some(1_000), 110), (100_000, Some(1_000), 125)],
    );
    let md = markdown(&all, Some(&hot), None, None, 100.0, None).expect("page");
    let table = section(&md, "### Hot subset");
    assert!(table.contains("_Commit `abc1234`"), "{md}");
    let row = |start: &str| row_of(table, start);
    assert!(
        row("| 1000 | 1000 | ").contains("| 11.00 | 1.10x |"),
        "{md}"
    );
    assert!(
        row("| 100000 | 1000 | ").contains("| 12.50 | 1.25x |"),
        "{md}"
    );
    assert!(md.contains("**Valid rows: 3 of 3.**"), "{md}");
}

/// A scale.sh output directory with one row per `(sessions, client sockets, server CPU ns,
/// GSO sends)`, 100,000 requests each.
fn scale_run(name: &str, rows: &[(usize, usize, i64, u64)]) -> ScaleRun {
    let dir = temp_dir(name);
    std::fs::write(dir.join("machine.txt"), MACHINE).expect("write");
    std::fs::write(dir.join("loadavg.start"), "0.10 0.10 0.10 1/9 9\n").expect("write");
    std::fs::write(dir.join("loadavg.end"), "0.20 0.10 0.10 1/9 9\n").expect("write");
    for &(n, peers, cpu_ns, coalesced) in rows {
        let mut load = session_load(n, 5.0);
        load.peers = peers;
        write(&dir, &format!("load.{n}.json"), &load);
        let server = ServerSample {
            n,
            rss_empty_kib: Some(5 * 1024),
            rss_idle_kib: Some(6 * 1024),
            cpu_ticks: 0,
            measured: true,
            handshake_cpu_ticks: None,
            cpu_ns: Some(cpu_ns),
            counters: Some([("send_coalesced".to_string(), coalesced)].into()),
        };
        write(&dir, &format!("server.{n}.json"), &server);
    }
    let run = read(&dir).expect("reads");
    let _ = std::fs::remove_dir_all(&dir);
    run
}

/// The 1-session reference's table: the 1-session row first and again last (the reference is
/// their mean, and the drift between them is stated), N sessions over one client socket beside
/// the same N over many, and the growth split into session state and client sockets.
#[test]
fn scale_page_splits_the_growth_into_session_state_and_client_sockets() {
    // 10.0 us at 1 session first, 12.0 again last (reference 11.0); 1,000 sessions: 12.1 us
    // over one socket, 14.52 over 1,000.
    let all = scale_run(
        "pages-ref-all",
        &[(1, 1, 1_000_000_000, 900), (1_000, 1_000, 1_452_000_000, 2)],
    );
    let one = scale_run("pages-ref-one", &[(1_000, 1, 1_210_000_000, 700)]);
    let again = scale_run("pages-ref-again", &[(1, 1, 1_200_000_000, 800)]);
    let refs = References {
        one_socket: Some(&one),
        again: Some(&again),
    };
    let md = markdown_with(&all, refs, None, None, None, 100.0, None).expect("page");
    let table = section(&md, "### The 1-session reference");
    assert!(table.contains("_Commit `abc1234`"), "{md}");
    let row = |start: &str| row_of(table, start);
    assert!(
        row("| 1 session (first) | 1 | 1 | ").contains("| 10.00 | 0.91x | 900 |"),
        "{md}"
    );
    assert!(
        row("| 1000 over one socket | 1000 | 1 | ").contains("| 12.10 | 1.10x | 700 |"),
        "{md}"
    );
    assert!(
        row("| 1000 over 1000 sockets | 1000 | 1000 | ").contains("| 14.52 | 1.32x | 2 |"),
        "{md}"
    );
    assert!(
        row("| 1 session (again, last) | 1 | 1 | ").contains("| 12.00 | 1.09x | 800 |"),
        "{md}"
    );
    assert!(
        table.contains("10.00 then 12.00 us per request (+20% over the phase)"),
        "{md}"
    );
    assert!(table.contains("their mean, 11.00 us"), "{md}");
    assert!(
        table.contains("**1000 sessions:** +10% from 1 session to 1000 sessions over one socket"),
        "{md}"
    );
    assert!(table.contains("+20% from one socket to many"), "{md}");
    assert!(table.contains("+32% in all"), "{md}");
    // The sessions table's *vs 1 session* is over the same reference.
    let sessions_row = md
        .lines()
        .find(|l| l.starts_with("| 1000 | 1000 | "))
        .unwrap_or_else(|| panic!("no sessions row:\n{md}"));
    assert!(sessions_row.contains("| 14.52 | 1.32x |"), "{md}");
    // Without the reference runs, no reference table.
    let plain = markdown(&all, None, None, None, 100.0, None).expect("page");
    assert!(!plain.contains("### The 1-session reference"), "{plain}");
}

/// The fan-out tables: CPU per delivery from the server's ns (not its ticks), and the split
/// of a delivery's time (first and last copy out, the server's time per copy, the client's
/// delay) beside the counters that say whether a pool held the copies back.
#[test]
fn scale_page_splits_fan_out_time_and_shows_the_pool_counters() {
    let dir = temp_dir("pages-fanout");
    std::fs::write(dir.join("machine.txt"), MACHINE).expect("write");
    std::fs::write(dir.join("loadavg.start"), "0.10 0.10 0.10 1/9 9\n").expect("write");
    std::fs::write(dir.join("loadavg.end"), "0.20 0.10 0.10 1/9 9\n").expect("write");
    let lag = |p50: f64, p99: f64| LagUs {
        p50,
        p99,
        p999: p99,
        max: p99,
    };
    let mut load = session_load(11, 5.0);
    load.mode = "fanout".into();
    load.sent = 250;
    load.received = 250;
    load.fanout = Some(FanoutUs {
        publishes: 25,
        untimed: 0,
        first_copy: lag(150.0, 300.0),
        last_copy: lag(200.0, 400.0),
        per_copy: Some(lag(5.5, 7.25)),
        client_delay: lag(20.0, 60.0),
    });
    write(&dir, "load.10.json", &load);
    let counters = [
        ("enobufs", 0),
        ("send_queue_full", 0),
        ("session_backlogged", 3),
        ("relay_fanout_dropped", 0),
        ("kernel_drops", 0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let server = ServerSample {
        n: 10,
        rss_empty_kib: Some(5 * 1024),
        rss_idle_kib: Some(6 * 1024),
        // 1 tick, but 2.5 ms on the CPU: 10 us per delivery.
        cpu_ticks: 1,
        measured: true,
        handshake_cpu_ticks: None,
        cpu_ns: Some(2_500_000),
        counters: Some(counters),
    };
    write(&dir, "server.10.json", &server);
    let run = read(&dir).expect("reads");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(rows(&run, 100.0)[0].server_cpu_us_per_request, Some(10.0));
    let md = markdown(&run, None, Some(&run), Some(&run), 100.0, None).expect("page");
    let split = section(&md, "#### Fan-out: server time per publish");
    let row = row_of(split, "| 10 | ");
    assert!(
        row.contains(
            "| 25 | 150.0 | 200.0 | 400.0 | 5.50 | 7.25 | 20.0 | 60.0 | 0 | 0 | 3 | 0 | 0 |"
        ),
        "{row}"
    );
    // The same run as its own floor: every ratio 1.
    let floor = section(&md, "#### Fan-out against the kernel floor");
    let row = row_of(floor, "| 10 | ");
    assert!(row.contains("| 5.50 / 5.50 = 1.00x |"), "{row}");
    assert!(row.contains("| 10.00 / 10.00 = 1.00x |"), "{row}");
    assert!(row.contains("| 400 / 400 = 1.00x |"), "{row}");
}

#[test]
fn rings_page_captions_both_tables() {
    let report = RingsReport {
        nproc: 2,
        cpu: "test cpu".into(),
        cores: [0, 1],
        capacity: 1024,
        batch: 64,
        items: 1000,
        processes: 5,
        process_runs: 3,
        rows: vec![
            Row {
                section: "throughput single",
                ring: "ringwire",
                value: 2e8,
                unit: "items/s",
                runs: vec![1e8, 2e8, 2e8, 2.5e8, 3e8],
                processes: 5,
            },
            Row {
                section: "throughput single",
                ring: "rtrb",
                value: 3e8,
                unit: "items/s",
                runs: vec![3e8, 3e8, 2e8, 3e8, 3e8],
                processes: 5,
            },
        ],
        loadavg_before: Some(loadavg(0.5)),
        loadavg_after: Some(loadavg(0.7)),
        steal_pct: Some(0.4),
    };
    let md = page(&report, MACHINE, "ringwire-bench rings");
    let captions = md.lines().filter(|l| l.starts_with("_Commit `abc1234`, kernel `6.1-test`; load average (1, 5, 15 min) 0.50 0.50 0.50 at start, 0.70 0.70 0.70 at end; client lateness: not applicable")).count();
    let tables = md.lines().filter(|l| l.starts_with("| measure |")).count();
    assert_eq!((captions, tables), (2, 2), "{md}");
    assert!(
        md.contains("**Machine: contended (1-minute load average 0.50"),
        "{md}"
    );
    // The rings record the run's steal only, and say so (no per-figure rule to promise).
    assert!(
        md.contains(
            "**Hypervisor steal: 0.4% of the machine's CPU time over the run** (only the run's \
             steal is recorded here"
        ),
        "{md}"
    );
    assert!(md.contains("hypervisor steal 0.4% of the CPU time"), "{md}");
    assert!(
        md.contains("| throughput single | items/s | 200.0M | 300.0M |"),
        "{md}"
    );
    // The spread over processes, as the page's reader needs it to judge the ratio.
    assert!(
        md.contains(
            "| throughput single | ringwire | items/s | 200.0M | 100.0M | 300.0M | 5 processes' medians |"
        ),
        "{md}"
    );
}
