//! `ringwire-bench report DIR --markdown FILE`: `docs/BENCHMARKS.md` from
//! one `scripts/bench.sh` output directory.
//!
//! DIR holds `machine.txt`, the load and server JSON reports (directly, or in
//! `round-K/` subdirectories: then every cell is the median over the rounds),
//! `callgrind/<server>.callgrind.json` (with `--callgrind`) and
//! `sockperf/<server>.<test>.txt` (with `--sockperf`). Missing parts become
//! "-" cells or a line saying they were not run; a file that does not parse
//! is an error.

use crate::callgrind::CallgrindReport;
use crate::compare::{self, Error, Runs, latency_cell};
use crate::load::report::LoadReport;
use crate::sockperf::{self, SockperfSummary};
use clap::Args;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Arguments of `ringwire-bench report`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// A `scripts/bench.sh --out` directory.
    pub dir: PathBuf,
    /// Write the markdown here (`-`: stdout).
    #[arg(long)]
    pub markdown: PathBuf,
    /// A paragraph to put first (e.g. that this was a smoke run).
    #[arg(long)]
    pub note: Option<String>,
    /// Where the latency plot is, relative to the markdown file.
    #[arg(long, default_value = "bench-latency.svg")]
    pub svg: String,
    /// The baseline ratios' "floor" (sets the open-loop rates).
    #[arg(long, default_value = "mmsg")]
    pub floor: String,
    /// The server compared with every other one in the ratio table.
    #[arg(long, default_value = "ringwire")]
    pub engine: String,
}

/// Everything one bench.sh run left behind.
pub struct BenchRun {
    /// `machine.txt` as written.
    pub machine: String,
    /// How many rounds the cells are medians of.
    pub rounds: usize,
    /// Load and server reports (medians over rounds).
    pub runs: Runs,
    /// Instructions per request by server.
    pub callgrind: BTreeMap<String, CallgrindReport>,
    /// sockperf client summaries by (server, test), in file-name order.
    pub sockperf: Vec<(String, String, SockperfSummary)>,
}

/// Reads a bench.sh output directory.
pub fn read(dir: &Path) -> Result<BenchRun, Error> {
    let rounds = compare::round_dirs(dir);
    let runs = compare::read_rounds(&rounds)?;
    let machine = std::fs::read_to_string(dir.join("machine.txt")).unwrap_or_default();
    let mut callgrind = BTreeMap::new();
    for path in files(&dir.join("callgrind"), ".callgrind.json") {
        let r: CallgrindReport = serde_json::from_str(&crate::engine::read(&path)?)
            .map_err(|e| format!("{} does not parse: {e}", path.display()))?;
        callgrind.insert(r.server.clone(), r);
    }
    let mut sockperf = Vec::new();
    for path in files(&dir.join("sockperf"), ".txt") {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let Some((server, test)) = name.trim_end_matches(".txt").split_once('.') else {
            continue;
        };
        let summary = sockperf::parse(&crate::engine::read(&path)?);
        sockperf.push((server.to_string(), test.to_string(), summary));
    }
    Ok(BenchRun {
        machine,
        rounds: rounds.len(),
        runs,
        callgrind,
        sockperf,
    })
}

/// Files in `dir` whose names end with `suffix`, sorted (none if no `dir`).
fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.to_str().is_some_and(|s| s.ends_with(suffix)))
        .collect();
    v.sort();
    v
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.digits$}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "-".to_string(),
    }
}

/// Per-server figures the tables use.
struct Figures<'a> {
    sat: Option<f64>,
    loads: &'a BTreeMap<String, LoadReport>,
    cpu: Option<f64>,
    instr: Option<f64>,
}

impl BenchRun {
    fn figures(&self, name: &str) -> Option<Figures<'_>> {
        let r = self.runs.1.get(name)?;
        Some(Figures {
            sat: r.loads.get("sat").map(|s| s.achieved_rps),
            loads: &r.loads,
            cpu: r.server.as_ref().and_then(|s| s.cpu_s_per_million),
            instr: self
                .callgrind
                .get(name)
                .and_then(|c| c.instructions_per_request),
        })
    }

    fn p99(&self, name: &str, phase: &str) -> Option<f64> {
        Some(self.runs.1.get(name)?.loads.get(phase)?.latency_us.p99)
    }

    /// The open-loop rate offered in `phase` (the same for every server).
    fn offered(&self, phase: &str) -> Option<f64> {
        self.runs
            .1
            .values()
            .find_map(|r| r.loads.get(phase).and_then(|l| l.rate))
    }
}

/// The whole markdown document.
pub fn markdown(run: &BenchRun, args: &ReportArgs) -> Result<String, Error> {
    let mut md = String::new();
    writeln!(md, "# Benchmarks\n")?;
    writeln!(
        md,
        "Generated by `scripts/bench.sh` (`ringwire-bench report`); do not edit by hand. \
         The full run: `scripts/bench.sh --rounds 3 --sockperf --callgrind` on a quiet machine.\n"
    )?;
    if let Some(note) = &args.note {
        writeln!(md, "> **{note}**\n")?;
    }
    writeln!(md, "## Command and machine\n\n```")?;
    write!(md, "{}", run.machine)?;
    writeln!(md, "```\n")?;
    writeln!(
        md,
        "Every server runs pinned to one core and the load generator (one thread, busy-polling) \
         to another; phases per server: `sat` closed loop window 256, `lat` closed loop window 8, \
         then open loop at 25/50/75% of the `{}` floor's saturation rate. Cells are {}.\n",
        args.floor,
        if run.rounds > 1 {
            format!("medians over {} interleaved rounds", run.rounds)
        } else {
            "from one round".to_string()
        }
    )?;
    absolute_table(&mut md, run)?;
    ratio_table(&mut md, run, args)?;
    sockperf_table(&mut md, run)?;
    writeln!(md, "## Latency against load\n")?;
    writeln!(
        md,
        "p50 (solid) and p99 (dashed) against the achieved rate of the window-8 and \
         open-loop phases, log latency axis:\n\n![p50 and p99 latency against load]({})\n",
        args.svg
    )?;
    how_to_read(&mut md)?;
    Ok(md)
}

fn absolute_table(md: &mut String, run: &BenchRun) -> Result<(), Error> {
    let head = |p: &str, pct: &str| match run.offered(p) {
        Some(r) => format!("open {pct}% ({r:.0}/s) p50 / p99 / p99.9 us"),
        None => format!("open {pct}% p50 / p99 / p99.9 us"),
    };
    writeln!(md, "## Absolute figures\n")?;
    writeln!(
        md,
        "| server | saturation resp/s (window 256) | window 8 p50 / p99 us | {} | {} | {} | server CPU s per 1M datagrams | user-space instructions per request |",
        head("open25", "25"),
        head("open50", "50"),
        head("open75", "75"),
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|")?;
    for name in &run.runs.0 {
        let Some(f) = run.figures(name) else { continue };
        let sat = f.loads.get("sat").map_or("-".to_string(), |s| {
            let lost = if s.lost > 0 {
                format!(" ({} lost)", s.lost)
            } else {
                String::new()
            };
            format!("{:.0}{lost}", s.achieved_rps)
        });
        writeln!(
            md,
            "| {name} | {sat} | {} | {} | {} | {} | {} | {} |",
            latency_cell(f.loads.get("lat"), false),
            latency_cell(f.loads.get("open25"), true),
            latency_cell(f.loads.get("open50"), true),
            latency_cell(f.loads.get("open75"), true),
            opt(f.cpu, 2),
            opt(f.instr, 0),
        )?;
    }
    writeln!(md)?;
    Ok(())
}

fn ratio_table(md: &mut String, run: &BenchRun, args: &ReportArgs) -> Result<(), Error> {
    writeln!(md, "## {} relative to each baseline\n", args.engine)?;
    let Some(engine) = run.figures(&args.engine) else {
        writeln!(md, "{} did not run: no ratios.\n", args.engine)?;
        return Ok(());
    };
    writeln!(
        md,
        "Each cell is {} divided by the baseline: above 1 is better for saturation, below 1 is \
         better for everything else.\n",
        args.engine
    )?;
    writeln!(
        md,
        "| {e} / baseline | saturation resp/s | p99 at 25% | p99 at 50% | p99 at 75% | CPU per 1M datagrams | instructions per request |",
        e = args.engine
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|")?;
    for name in run.runs.0.iter().filter(|n| **n != args.engine) {
        let Some(b) = run.figures(name) else { continue };
        let p99 = |phase| ratio(run.p99(&args.engine, phase), run.p99(name, phase));
        writeln!(
            md,
            "| {} / {name} | {} | {} | {} | {} | {} | {} |",
            args.engine,
            ratio(engine.sat, b.sat),
            p99("open25"),
            p99("open50"),
            p99("open75"),
            ratio(engine.cpu, b.cpu),
            ratio(engine.instr, b.instr),
        )?;
    }
    writeln!(md)?;
    Ok(())
}

fn sockperf_table(md: &mut String, run: &BenchRun) -> Result<(), Error> {
    writeln!(md, "## sockperf side by side\n")?;
    if run.sockperf.is_empty() {
        writeln!(md, "Not run (`scripts/bench.sh --sockperf`).\n")?;
        return Ok(());
    }
    writeln!(
        md,
        "The `sockperf` client against `sockperf server` and against `ringwire serve --app \
         sockperf`, same cores, 32-byte messages, figures as sockperf prints them (usec; \
         under-load samples only the messages sockperf asks a reply for).\n"
    )?;
    writeln!(
        md,
        "| server | test | avg us | p50 us | p99 us | p99.9 us | observations | dropped | msg/s |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|")?;
    let mut rows: Vec<&(String, String, SockperfSummary)> = run.sockperf.iter().collect();
    let test_order = |t: &str| {
        ["ping-pong", "under-load", "throughput"]
            .iter()
            .position(|x| *x == t)
    };
    rows.sort_by_key(|(server, test, _)| (test_order(test), test.clone(), server.clone()));
    for (server, test, s) in rows {
        let int = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        writeln!(
            md,
            "| {server} | {test} | {} | {} | {} | {} | {} | {} | {} |",
            opt(s.avg_us, 1),
            opt(s.p50_us, 1),
            opt(s.p99_us, 1),
            opt(s.p999_us, 1),
            int(s.observations),
            int(s.dropped),
            opt(s.msg_per_s, 0),
        )?;
    }
    writeln!(md)?;
    Ok(())
}

fn how_to_read(md: &mut String) -> Result<(), Error> {
    writeln!(md, "## How to read this\n")?;
    for line in [
        "- **Compare only numbers from one run.** Absolute figures drift from machine to machine \
         and from minute to minute; the ratios are what carries over.",
        "- **Noise.** On a shared machine other processes preempt the pinned server and client for \
         milliseconds: p99 and p99.9 then measure the scheduler, not the server. The load \
         average lines above say how busy the machine was before each server.",
        "- **One run is one sample.** With `--rounds N` the servers run interleaved in time \
         (every server once per round) and each cell is the median over the rounds, so a busy \
         spell hits every server instead of one; prefer those numbers.",
        "- **Open loop.** Latency counts from the intended send time; \"client up to N ms late\" \
         means the load generator itself fell behind, and that lag is inside the figure. \
         \"(N lost)\" means echoes never came back within the timeout.",
        "- **CPU per 1M datagrams** is user + system time of the serving thread over the whole \
         server run (baselines: `getrusage`; ringwire: its `rw-shard-N` thread in \
         `/proc/PID/task/*/stat`). Loopback UDP puts most of it in the kernel.",
        "- **Instructions per request** come from `valgrind --tool=callgrind` (user space only, \
         every thread of the server process): counters dumped once the server listens and again \
         after a fixed open-loop load, the second dump divided by the echoes received. Kernel \
         work is not in it. It depends on batching (more requests per wake-up, fewer \
         instructions each), and valgrind slows the server by tens of times, so a busy machine \
         still moves it; compare servers within one run only.",
        "- **sockperf** is an outside client with its own measuring: its figures are not \
         comparable with ringwire-bench's, only with each other.",
        "- **History:** the first comparison of the baselines alone (before the engine joined) \
         is in [BENCHMARKS-load.md](BENCHMARKS-load.md).",
        "",
        "## Other benchmarks",
        "",
        "- Cross-core rings (`ringwire-bench rings`: ringwire's SPSC ring against rtrb, \
         crossbeam's ArrayQueue and tokio mpsc; eventfd against MSG_RING wake latency): \
         [BENCHMARKS-rings.md](BENCHMARKS-rings.md).",
        "- Sessions at scale (`scripts/scale.sh`: CPU per request and memory per session from \
         1 to the most sessions the file-descriptor limit allows): \
         [BENCHMARKS-scale.md](BENCHMARKS-scale.md).",
    ] {
        writeln!(md, "{line}")?;
    }
    Ok(())
}

/// Writes the markdown.
pub fn run(args: ReportArgs) -> crate::CmdResult {
    let bench = read(&args.dir)?;
    let md = markdown(&bench, &args)?;
    if args.markdown.as_os_str() == "-" {
        print!("{md}");
    } else {
        std::fs::write(&args.markdown, md)
            .map_err(|e| format!("writing {}: {e}", args.markdown.display()))?;
    }
    Ok(())
}
