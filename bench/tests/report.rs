//! BENCHMARKS.md and the latency SVG from a small fixture of a bench.sh
//! output directory; the engine's server report, callgrind totals and
//! sockperf output parsed from fixtures.

mod common;

use common::{load_report, temp_dir, write};
use ringwire_bench::callgrind::{CallgrindReport, parse_total};
use ringwire_bench::engine::{CpuSample, parse_log, report as engine_report};
use ringwire_bench::load::report::LoadReport;
use ringwire_bench::report::{ReportArgs, markdown, read};
use ringwire_bench::server::report::{ServerReport, ThreadReport};
use ringwire_bench::sys::cpu_time::CpuTime;
use ringwire_bench::sys::proc_stat::{ThreadStat, parse_stat};
use std::path::Path;

const SERVERS: [(&str, f64); 4] = [
    ("mmsg", 300_000.0),
    ("tokio", 230_000.0),
    ("glommio", 240_000.0),
    ("ringwire", 330_000.0),
];

const SOCKPERF_PING_PONG: &str =
    "sockperf: \u{1b}[2;35m====> avg-latency=101.512 (std-dev=306.813)\u{1b}[0m
sockperf: # dropped messages = 0; # duplicated messages = 0; # out-of-order messages = 0
sockperf: Summary: Latency is 101.512 usec
sockperf: \u{1b}[2;35mTotal 2689 observations\u{1b}[0m; each percentile contains 26.89 observations
sockperf: ---> percentile 99.900 = 2717.219
sockperf: ---> percentile 99.000 = 1775.711
sockperf: ---> percentile 50.000 =   40.825
";

fn open_loop(rate: f64, p50: f64) -> LoadReport {
    let mut r = load_report(rate, 0);
    r.loop_kind = "open".into();
    r.window = None;
    r.rate = Some(rate);
    r.latency_us.p50 = p50;
    r.latency_us.p99 = p50 * 4.0;
    r.latency_us.p999 = p50 * 8.0;
    r
}

/// One round of every server, with server reports, callgrind and sockperf.
fn fixture(dir: &Path) {
    std::fs::write(
        dir.join("machine.txt"),
        "date: 2026-01-01T00:00:00Z\ngit: abc1234\nnproc: 2\nkernel: 6.1-test\n",
    )
    .expect("write");
    std::fs::write(dir.join("loadavg.start"), "0.12 0.20 0.30 1/100 42\n").expect("write");
    std::fs::write(dir.join("loadavg.end"), "1.50 0.90 0.40 1/100 43\n").expect("write");
    for (name, sat) in SERVERS {
        write(dir, &format!("{name}.sat.json"), &load_report(sat, 0));
        write(dir, &format!("{name}.lat.json"), &load_report(sat / 4.0, 0));
        for (pct, p50) in [(25, 20.0), (50, 25.0), (75, 40.0), (90, 60.0)] {
            let r = open_loop(3000.0 * f64::from(pct), p50);
            write(dir, &format!("{name}.open{pct}.json"), &r);
        }
        let thread = ThreadReport {
            core: Some(0),
            served: 1_000_000,
            cpu: CpuTime {
                user_s: 1.0,
                sys_s: 7.0,
            },
        };
        let addr = "127.0.0.1:1".parse().expect("literal");
        let server = ServerReport::new(name, addr, 10.0, vec![thread]);
        write(dir, &format!("{name}.server.json"), &server);
    }
    let cg = dir.join("callgrind");
    std::fs::create_dir_all(&cg).expect("mkdir");
    for (name, instr) in [("mmsg", 1_240_000), ("ringwire", 10_090_000)] {
        let r = CallgrindReport::new(name, instr, 10_000);
        write(&cg, &format!("{name}.callgrind.json"), &r);
        write(&cg, &format!("{name}.load.json"), &open_loop(5000.0, 30.0));
    }
    let sp = dir.join("sockperf");
    std::fs::create_dir_all(&sp).expect("mkdir");
    std::fs::write(sp.join("loadavg.before"), "0.70 0.80 0.50 1/100 44\n").expect("write");
    std::fs::write(sp.join("loadavg.after"), "0.75 0.80 0.50 1/100 45\n").expect("write");
    for name in ["sockperf", "ringwire"] {
        std::fs::write(sp.join(format!("{name}.ping-pong.txt")), SOCKPERF_PING_PONG)
            .expect("write");
        std::fs::write(
            sp.join(format!("{name}.throughput.txt")),
            "sockperf: Summary: Message Rate is 96825 [msg/sec]\n",
        )
        .expect("write");
    }
}

fn args(dir: &Path) -> ReportArgs {
    ReportArgs {
        dir: dir.to_path_buf(),
        markdown: "-".into(),
        note: Some("smoke run".into()),
        svg: "bench-latency.svg".into(),
        floor: "mmsg".into(),
        engine: "ringwire".into(),
    }
}

fn row<'a>(md: &'a str, start: &str) -> &'a str {
    md.lines()
        .find(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no row starting {start:?} in:\n{md}"))
}

#[test]
fn markdown_has_every_server_ratio_and_sockperf_row() {
    let dir = temp_dir("report-md");
    fixture(&dir);
    let run = read(&dir).expect("reads");
    let md = markdown(&run, &args(&dir)).expect("markdown");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(md.contains("> **smoke run**"), "{md}");
    assert!(md.contains("kernel: 6.1-test"), "{md}");
    for (name, _) in SERVERS {
        row(&md, &format!("| {name} | "));
    }
    let has = |start: &str, cell: &str| {
        assert!(
            row(&md, start).contains(cell),
            "{start} row lacks {cell}:\n{md}"
        );
    };
    has("| mmsg | ", "| 300000 |");
    has("| ringwire | ", "| 20.0 / 80.0 / 160.0 |");
    assert!(row(&md, "| ringwire | ").ends_with("| 8.00 |"), "{md}");
    assert!(row(&md, "| tokio | ").ends_with("| 8.00 |"), "{md}");
    has(
        "| ringwire | 1009 |",
        "| 10000 | 5000 | 2.0 | 0.10 → 0.90 |",
    );
    assert!(md.contains("open 25% (75000/s)"), "{md}");
    // Ratios: ringwire over each baseline, never over itself.
    has("| ringwire / mmsg | ", "| 1.10 |");
    has("| ringwire / mmsg | ", "| 1.00 | 1.00 | 8.14 |");
    row(&md, "| ringwire / tokio | ");
    row(&md, "| ringwire / glommio | ");
    assert!(!md.contains("| ringwire / ringwire |"), "{md}");
    let ping = row(&md, "| ringwire | ping-pong | ");
    assert!(
        ping.contains("| 101.5 | 40.8 | 1775.7 | 2717.2 | 2689 | 0 | - |"),
        "{md}"
    );
    row(&md, "| sockperf | ping-pong | ");
    assert!(row(&md, "| sockperf | throughput | ").ends_with("| 96825 |"));
    assert!(md.contains("](bench-latency.svg)"), "{md}");
    assert!(md.contains("## How to read this"), "{md}");
}

#[test]
fn missing_parts_become_dashes_and_rounds_give_medians() {
    let base = temp_dir("report-rounds");
    for (k, scale) in [(1, 1.0), (2, 3.0), (3, 2.0)] {
        let dir = base.join(format!("round-{k}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        write(&dir, "mmsg.sat.json", &load_report(100_000.0 * scale, 0));
    }
    let run = read(&base).expect("reads");
    let md = markdown(&run, &args(&base)).expect("markdown");
    let _ = std::fs::remove_dir_all(&base);
    assert_eq!(run.rounds, 3);
    assert!(
        md.contains("medians over the rounds (of 3, interleaved) in which the cell is valid"),
        "{md}"
    );
    assert!(
        row(&md, "| mmsg | ").starts_with("| mmsg | 200000 | - |"),
        "{md}"
    );
    assert!(md.contains("ringwire did not run: no ratios."), "{md}");
    assert!(
        md.contains("Not run (`scripts/bench.sh --sockperf`)."),
        "{md}"
    );
}

#[test]
fn svg_has_every_server() {
    let dir = temp_dir("report-svg");
    fixture(&dir);
    let dirs = ringwire_bench::compare::round_dirs(&dir);
    let runs = ringwire_bench::compare::read_rounds(&dirs).expect("reads");
    let svg = ringwire_bench::plot::svg(&runs).expect("svg");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(svg.starts_with("<svg"), "{svg}");
    for (name, sat) in SERVERS {
        assert!(
            svg.contains(&format!("{name} (saturation {sat:.0}/s)")),
            "{name}"
        );
    }
    assert!(svg.contains("p50 (solid)") && svg.contains("p99 (dashed)"));
}

#[test]
fn a_malformed_callgrind_report_is_an_error() {
    let dir = temp_dir("report-bad");
    fixture(&dir);
    std::fs::write(dir.join("callgrind/tokio.callgrind.json"), "{").expect("write");
    let result = read(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(result.is_err());
}

#[test]
fn proc_stat_lines_parse_with_odd_names() {
    let line = "4242 (a) b (c)) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 3 0 100 \
                0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
    let t = parse_stat(line, 100.0).expect("parses");
    assert_eq!(t.tid, 4242);
    assert_eq!(t.comm, "a) b (c)");
    assert_eq!(t.core, Some(1));
    assert!((t.cpu.user_s - 2.5).abs() < 1e-9 && (t.cpu.sys_s - 0.5).abs() < 1e-9);
    assert_eq!(parse_stat("garbage", 100.0), None);
}

/// Threads of this process with these names, parked until the returned
/// sender is dropped.
fn named_threads(
    names: &[&str],
) -> (
    std::sync::mpsc::Sender<()>,
    Vec<std::thread::JoinHandle<()>>,
) {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let handles = names
        .iter()
        .map(|name| {
            let (rx, ready_tx) = (std::sync::Arc::clone(&rx), ready_tx.clone());
            std::thread::Builder::new()
                .name((*name).to_string())
                .spawn(move || {
                    // The name is set before this closure runs.
                    let _ = ready_tx.send(());
                    let _ = rx.lock().map(|rx| rx.recv());
                })
                .expect("spawn")
        })
        .collect();
    for _ in names {
        ready_rx.recv().expect("thread started");
    }
    (tx, handles)
}

#[test]
fn own_named_thread_is_found_in_proc() {
    let (stop, handles) = named_threads(&["rwbench-probe-thread"]);
    let threads = ringwire_bench::sys::proc_stat::threads(std::process::id(), &["rwbench-probe"])
        .expect("proc");
    drop(stop);
    handles.into_iter().for_each(|h| drop(h.join()));
    assert_eq!(threads.len(), 1, "{threads:?}");
    // The kernel keeps 15 bytes of a thread name.
    assert_eq!(threads[0].comm, "rwbench-probe-t");
}

#[test]
fn shard_threads_of_current_and_older_engines_are_both_sampled() {
    let (stop, handles) = named_threads(&["rw-shard-0", "ringwire-shard-1", "rw-other"]);
    let threads = ringwire_bench::sys::proc_stat::threads(
        std::process::id(),
        &ringwire_bench::engine::SHARD_COMM,
    )
    .expect("proc");
    drop(stop);
    handles.into_iter().for_each(|h| drop(h.join()));
    let mut names: Vec<&str> = threads.iter().map(|t| t.comm.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["ringwire-shard-", "rw-shard-0"], "{threads:?}");
}

const ENGINE_LOG: &str = "ringwire: listening on 127.0.0.1:21003 app=echo shards=1 cores=[0] io_uring=x kernel=y
ringwire: signal 2, stopping
final shard 0: datagrams_in=25871 bytes_in=827872 datagrams_out=25870 bytes_out=827840 send_errors=none
total datagrams_in=25871 datagrams_out=25870
";

fn sample(unix_s: f64, user_s: f64, sys_s: f64) -> CpuSample {
    CpuSample {
        unix_s,
        threads: vec![ThreadStat {
            tid: 7,
            comm: "rw-shard-0".into(),
            core: Some(0),
            cpu: CpuTime { user_s, sys_s },
        }],
    }
}

#[test]
fn engine_report_takes_cpu_between_samples() {
    let log = parse_log(ENGINE_LOG).expect("parses");
    assert_eq!(log.addr.port(), 21003);
    assert_eq!(log.served, vec![25870]);
    let r = engine_report(
        "ringwire",
        &log,
        &sample(100.0, 0.5, 1.0),
        &sample(110.0, 0.75, 1.5),
    )
    .expect("report");
    assert_eq!(r.served, 25870);
    assert!((r.wall_s - 10.0).abs() < 1e-9);
    assert!((r.cpu_user_s - 0.25).abs() < 1e-9 && (r.cpu_sys_s - 0.5).abs() < 1e-9);
    let per_million = r.cpu_s_per_million.expect("served > 0");
    assert!((per_million - 0.75 * 1e6 / 25870.0).abs() < 1e-6);
    assert!(parse_log("ringwire: listening on 127.0.0.1:1\n").is_err());
}

#[test]
fn callgrind_totals_and_per_request() {
    let text = "version: 1\nevents: Ir\nsummary: 2082064\ntotals: 2082256\n";
    assert_eq!(parse_total(text), Some(2_082_256));
    assert_eq!(parse_total("events: Ir\nsummary: 12\n"), Some(12));
    assert_eq!(parse_total("events: Ir\n"), None);
    let r = CallgrindReport::new("x", 1_000_000, 4000);
    assert_eq!(r.instructions_per_request, Some(250.0));
    assert_eq!(
        CallgrindReport::new("x", 5, 0).instructions_per_request,
        None
    );
}

/// The bulk phases: each server's `bulk` / `relay-bulk` cells and the CPU of their fresh
/// servers (`<server>.cpu-<phase>.json`) make the bulk table, with ratios to both floors and
/// the aims stated; a server with bulk phases only (`ringwire-no-offload`) is in no echo table.
#[test]
fn bulk_table_has_both_floors_and_only_bulk_servers_stay_out_of_the_echo_tables() {
    let dir = temp_dir("report-bulk");
    fixture(&dir);
    let bulk = |rps: f64| {
        let mut r = load_report(rps, 0);
        r.bulk = true;
        r.payload_bytes = 1200;
        r
    };
    let cpu = |name: &str, served: u64| {
        let thread = ThreadReport {
            core: Some(0),
            served,
            cpu: CpuTime {
                user_s: 0.5,
                sys_s: 1.5,
            },
        };
        ServerReport::new(
            name,
            "127.0.0.1:1".parse().expect("literal"),
            10.0,
            vec![thread],
        )
    };
    for (name, rps) in [
        ("mmsg", 100_000.0),
        ("mmsg-gso", 400_000.0),
        ("ringwire", 420_000.0),
        ("ringwire-no-offload", 90_000.0),
    ] {
        write(&dir, &format!("{name}.bulk.json"), &bulk(rps));
        write(
            &dir,
            &format!("{name}.cpu-bulk.json"),
            &cpu(name, 2_000_000),
        );
    }
    for (name, rps) in [("ringwire", 300_000.0), ("ringwire-no-offload", 80_000.0)] {
        let mut r = bulk(rps);
        r.mode = "relay".into();
        write(&dir, &format!("{name}.relay-bulk.json"), &r);
    }
    let run = read(&dir).expect("reads");
    let md = markdown(&run, &args(&dir)).expect("markdown");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(md.contains("## Bulk: GSO and GRO"), "{md}");
    let ringwire = row(&md, "| ringwire | 420000 |");
    assert!(ringwire.contains("| 4.20 | 1.05 |"), "{ringwire}");
    assert!(
        ringwire.contains("| 1.00 |"),
        "CPU per 1M of the bulk server: {ringwire}"
    );
    assert!(ringwire.contains("| 300000 |"), "{ringwire}");
    let off = row(&md, "| ringwire-no-offload | 90000 |");
    assert!(off.contains("| 80000 |"), "{off}");
    assert!(
        md.contains("4.20x `mmsg` (aim 1.3: met), 1.05x `mmsg-gso` (aim 1.0: met)"),
        "{md}"
    );
    // Bulk-only servers are not rows of the echo tables or baselines of the ratios.
    assert!(!md.contains("| ringwire / ringwire-no-offload |"), "{md}");
    assert!(!md.contains("vs ringwire-no-offload"), "{md}");
    // Its rows: its two cells in the per-cell client table, and its bulk row.
    assert_eq!(
        md.lines()
            .filter(|l| l.starts_with("| ringwire-no-offload |"))
            .count(),
        3,
        "{md}"
    );
    assert!(md.contains("| ringwire-no-offload | relay-bulk |"), "{md}");
}

/// A regenerated page keeps the "Secure sessions" block `scripts/bench-secure.sh` wrote.
#[test]
fn the_secure_sessions_section_is_found_between_its_markers() {
    use ringwire_bench::report::{SECURE_BEGIN, SECURE_END, secure_section};
    let block = format!("{SECURE_BEGIN}\n## Secure sessions\n\nfigures\n{SECURE_END}");
    let page = format!("# Benchmarks\n\ntables\n\n{block}\n\nafter\n");
    assert_eq!(secure_section(&page), Some(block.as_str()));
    assert_eq!(secure_section("# Benchmarks\n"), None);
    assert_eq!(
        secure_section(&format!("{SECURE_BEGIN} unterminated")),
        None
    );
}
