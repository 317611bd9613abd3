//! `ringwire-bench report DIR --markdown FILE`: `docs/BENCHMARKS.md` from
//! one `scripts/bench.sh` output directory.
//!
//! DIR holds `machine.txt`, `loadavg.start` and `loadavg.end` (copies of
//! `/proc/loadavg` taken just before the first server and at the end), the
//! load and server JSON reports (directly, or in `round-K/` subdirectories:
//! then every cell is the median over the rounds in which it is valid),
//! `callgrind/<server>.callgrind.json` and `.load.json` (with
//! `--callgrind`) and `sockperf/<server>.<test>.txt` with
//! `sockperf/loadavg.before` and `.after` (with `--sockperf`). Missing parts
//! become "-" cells or a line saying they were not run; a file that does not
//! parse is an error.
//!
//! Every table is preceded by its [`Caption`]: commit, kernel, load average
//! at its start and end, and how late the client was. Cells follow
//! [`crate::validity`]: an open-loop cell whose client was over the limit
//! is shown as invalid, never as figures, and no ratio is taken from it.

use crate::callgrind::CallgrindReport;
use crate::compare::{
    self, Cell, Error, GSO_FLOOR, OPEN_PHASES, PHASES, Runs, ServerRuns, latency_cell,
    saturation_cell,
};
use crate::load::report::LoadReport;
use crate::sockperf::{self, SockperfSummary};
use crate::sys::loadavg::{self, LoadAvg};
use crate::sys::steal;
use crate::validity::{self, Machine, Verdict};
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

/// The commit and kernel a run was taken on, from `machine.txt`'s `git:`
/// and `kernel:` lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunHeader {
    /// `git rev-parse --short HEAD`, plus a note if the tree was dirty.
    pub commit: Option<String>,
    /// `uname -r`.
    pub kernel: Option<String>,
}

impl RunHeader {
    /// Reads the `key: value` lines of a `machine.txt`.
    #[must_use]
    pub fn parse(machine: &str) -> Self {
        let value = |key: &str| {
            machine
                .lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        Self {
            commit: value("git"),
            kernel: value("kernel"),
        }
    }
}

/// What every table states about the run it comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Caption {
    /// Commit and kernel.
    pub header: RunHeader,
    /// Load average when the table's first measurement started.
    pub start: Option<LoadAvg>,
    /// Load average when its last measurement ended.
    pub end: Option<LoadAvg>,
    /// How late the client was (a sentence).
    pub lateness: String,
    /// Hypervisor steal over the whole run, % of the machine's CPU time (`None`: not
    /// recorded).
    pub steal_pct: Option<f64>,
}

impl std::fmt::Display for Caption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let or_unknown = |v: &Option<String>| v.clone().unwrap_or_else(|| "unknown".into());
        let load = |l: Option<LoadAvg>| l.map_or("unknown".to_string(), |l| l.to_string());
        write!(
            f,
            "_Commit `{}`, kernel `{}`; load average (1, 5, 15 min) {} at start, {} at end; {}{}_",
            or_unknown(&self.header.commit),
            or_unknown(&self.header.kernel),
            load(self.start),
            load(self.end),
            self.lateness,
            validity::steal_sentence(self.steal_pct).map_or(String::new(), |s| format!("; {s}"))
        )
    }
}

/// Everything one bench.sh run left behind.
pub struct BenchRun {
    /// `machine.txt` as written.
    pub machine: String,
    /// Commit and kernel.
    pub header: RunHeader,
    /// How many rounds the cells are medians of.
    pub rounds: usize,
    /// Load and server reports (medians over rounds).
    pub runs: Runs,
    /// Load average just before the first server (`loadavg.start`, else
    /// the first cell's): what decides whether the run was quiet.
    pub loadavg_start: Option<LoadAvg>,
    /// Load average at the end of the whole run (`loadavg.end`).
    pub loadavg_end: Option<LoadAvg>,
    /// Hypervisor steal from the first server to the end, % of the machine's CPU time
    /// (`cpustat.start` and `cpustat.end`, copies of `/proc/stat`'s first line).
    pub steal_pct: Option<f64>,
    /// Instructions per request by server.
    pub callgrind: BTreeMap<String, CallgrindReport>,
    /// The load generator's report of each callgrind run, by server.
    pub callgrind_loads: BTreeMap<String, LoadReport>,
    /// sockperf client summaries by (server, test), in file-name order.
    pub sockperf: Vec<(String, String, SockperfSummary)>,
    /// Load average before and after the sockperf runs.
    pub sockperf_loadavg: (Option<LoadAvg>, Option<LoadAvg>),
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
    let mut callgrind_loads = BTreeMap::new();
    for path in files(&dir.join("callgrind"), ".load.json") {
        let r: LoadReport = serde_json::from_str(&crate::engine::read(&path)?)
            .map_err(|e| format!("{} does not parse: {e}", path.display()))?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".load.json"))
            .unwrap_or_default();
        callgrind_loads.insert(name.to_string(), r);
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
    let (first, last) = cell_span(&runs);
    Ok(BenchRun {
        header: RunHeader::parse(&machine),
        machine,
        rounds: rounds.len(),
        loadavg_start: loadavg::read(&dir.join("loadavg.start")).or(first),
        loadavg_end: loadavg::read(&dir.join("loadavg.end")).or(last),
        steal_pct: steal::percent(
            steal::read(&dir.join("cpustat.start")),
            steal::read(&dir.join("cpustat.end")),
        ),
        runs,
        callgrind,
        callgrind_loads,
        sockperf,
        sockperf_loadavg: (
            loadavg::read(&dir.join("sockperf/loadavg.before")),
            loadavg::read(&dir.join("sockperf/loadavg.after")),
        ),
    })
}

/// The load average before the first cell run and after the last one
/// (servers in run order, phases in [`PHASES`] order, rounds in order).
#[must_use]
pub fn cell_span(runs: &Runs) -> (Option<LoadAvg>, Option<LoadAvg>) {
    let cells = |name: &String| {
        let r = &runs.1[name];
        PHASES
            .iter()
            .filter_map(|p| r.cell(p))
            .collect::<Vec<&Cell>>()
    };
    let first = runs
        .0
        .iter()
        .flat_map(cells)
        .find_map(|c| c.rounds.first()?.loadavg_before);
    let last = runs
        .0
        .iter()
        .rev()
        .flat_map(|n| cells(n).into_iter().rev())
        .find_map(|c| c.rounds.last()?.loadavg_after);
    (first, last)
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

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// "2 us to 18.6 ms" over some lags (us); `None` if there are none.
#[must_use]
pub fn lag_range(lags: impl Iterator<Item = f64>) -> Option<String> {
    let v: Vec<f64> = lags.collect();
    if v.is_empty() {
        return None;
    }
    let lo = validity::duration_us(v.iter().copied().fold(f64::INFINITY, f64::min));
    let hi = validity::duration_us(v.iter().copied().fold(0.0, f64::max));
    Some(if lo == hi {
        lo
    } else {
        format!("{lo} to {hi}")
    })
}

/// One sentence on the client's lag over some cells: the open-loop p99
/// range and verdicts, and the closed-loop turnaround.
#[must_use]
pub fn lateness_sentence<'a>(cells: impl Iterator<Item = &'a Cell>) -> String {
    let mut open_p99 = Vec::new();
    let mut closed_p99 = Vec::new();
    let mut n = compare::CellCount::default();
    for c in cells {
        let is_open = c.report.rate.is_some();
        for r in &c.rounds {
            if let Some(l) = r.client_lag_us {
                if is_open {
                    open_p99.push(l.p99);
                } else {
                    closed_p99.push(l.p99);
                }
            }
        }
        if is_open {
            n.add(c.verdict);
        }
    }
    let range = |v: &[f64]| lag_range(v.iter().copied()).unwrap_or_default();
    let mut s = String::from("client lag p99: ");
    if n.total() > 0 {
        if open_p99.is_empty() {
            s.push_str("open loop not recorded");
        } else {
            let _ = write!(s, "open loop {}", range(&open_p99));
        }
        let _ = write!(
            s,
            " ({} open-loop cells valid, {} invalid for over {} late",
            n.valid,
            n.late,
            validity::duration_us(validity::MAX_CLIENT_LAG_P99_US)
        );
        if n.stolen > 0 {
            let _ = write!(
                s,
                ", {} invalid for hypervisor steal over {}%",
                n.stolen,
                validity::MAX_STEAL_PCT
            );
        }
        if n.unknown > 0 {
            let _ = write!(s, ", {} of unknown lateness", n.unknown);
        }
        s.push(')');
    }
    if !closed_p99.is_empty() {
        if n.total() > 0 {
            s.push_str("; ");
        }
        let _ = write!(s, "closed-loop re-send turnaround {}", range(&closed_p99));
    }
    if n.total() == 0 && closed_p99.is_empty() {
        s.push_str("not recorded");
    }
    s
}

impl BenchRun {
    /// Whether the run was quiet, from the load average before it.
    #[must_use]
    pub fn machine_verdict(&self) -> Machine {
        validity::machine(self.loadavg_start)
    }

    fn all_cells(&self) -> impl Iterator<Item = &Cell> {
        self.runs.1.values().flat_map(|r| r.loads.values())
    }

    /// The caption of the tables built from the load runs.
    #[must_use]
    pub fn servers_caption(&self) -> Caption {
        Caption {
            header: self.header.clone(),
            start: self.loadavg_start,
            end: cell_span(&self.runs).1,
            lateness: lateness_sentence(self.all_cells()),
            steal_pct: self.steal_pct,
        }
    }

    fn p99(&self, name: &str, phase: &str) -> Option<f64> {
        Some(self.runs.1.get(name)?.valid(phase)?.latency_us.p99)
    }

    /// The open-loop rate offered in `phase` (the same for every server).
    fn offered(&self, phase: &str) -> Option<f64> {
        self.runs
            .1
            .values()
            .find_map(|r| r.cell(phase).and_then(|c| c.report.rate))
    }

    fn cpu(&self, name: &str) -> Option<f64> {
        self.runs
            .1
            .get(name)?
            .server
            .as_ref()
            .and_then(|s| s.cpu_s_per_million)
    }

    fn instr(&self, name: &str) -> Option<f64> {
        self.callgrind
            .get(name)
            .and_then(|c| c.instructions_per_request)
    }

    fn sat(&self, name: &str) -> Option<f64> {
        self.runs.1.get(name)?.saturation_rps()
    }

    fn bulk(&self, name: &str) -> Option<f64> {
        self.runs.1.get(name)?.rps("bulk")
    }

    /// Whether the cell is invalid: its client late, or the hypervisor's steal over the limit
    /// in every round.
    fn invalid(&self, name: &str, phase: &str) -> bool {
        self.runs
            .1
            .get(name)
            .and_then(|r| r.cell(phase))
            .is_some_and(|c| matches!(c.verdict, Verdict::Late { .. } | Verdict::Stolen { .. }))
    }
}

/// The whole markdown document.
pub fn markdown(run: &BenchRun, args: &ReportArgs) -> Result<String, Error> {
    let mut md = String::new();
    writeln!(md, "# Benchmarks\n")?;
    writeln!(
        md,
        "Generated by `scripts/bench.sh` (`ringwire-bench report`); do not edit by hand. \
         The full run: `scripts/bench.sh --rounds 3 --all` on a quiet machine (it writes every `docs/BENCHMARKS*.md` page).\n"
    )?;
    if let Some(note) = &args.note {
        writeln!(md, "> **{note}**\n")?;
    }
    verdict_section(&mut md, run)?;
    writeln!(md, "## Command and machine\n\n```")?;
    write!(md, "{}", run.machine)?;
    writeln!(md, "```\n")?;
    let rates: Vec<String> = OPEN_PHASES.iter().map(|(_, p)| p.to_string()).collect();
    writeln!(
        md,
        "Every server runs pinned to one core and the load generator (one thread, busy-polling) \
         to another; phases per server: `sat` closed loop window 256, `lat` closed loop window 8, \
         then open loop at {}% of the `{}` floor's saturation rate. Cells are {}.\n",
        rates.join("/"),
        args.floor,
        if run.rounds > 1 {
            format!(
                "medians over the rounds (of {}, interleaved) in which the cell is valid",
                run.rounds
            )
        } else {
            "from one round".to_string()
        }
    )?;
    absolute_table(&mut md, run)?;
    cells_table(&mut md, run)?;
    ratio_table(&mut md, run, args)?;
    ahead_and_behind(&mut md, run, args)?;
    bulk_section(&mut md, run, args)?;
    callgrind_table(&mut md, run)?;
    sockperf_table(&mut md, run)?;
    writeln!(md, "## Latency against load\n")?;
    writeln!(
        md,
        "p50 (solid) and p99 (dashed) against the offered rate of the open-loop cells whose \
         client kept its schedule (invalid cells are left out, and a line never joins across \
         one); each server's saturation throughput as a dotted vertical line; the client's p99 \
         lag in every open-loop cell as a cross, against the {} limit (red line). Log latency \
         axis.\n\n![p50 and p99 latency against offered load]({})\n",
        validity::duration_us(validity::MAX_CLIENT_LAG_P99_US),
        args.svg
    )?;
    how_to_read(&mut md)?;
    Ok(md)
}

fn verdict_section(md: &mut String, run: &BenchRun) -> Result<(), Error> {
    writeln!(md, "## Can these figures be trusted?\n")?;
    let machine = run.machine_verdict();
    let n = compare::open_cells(&run.runs);
    writeln!(md, "- **Machine: {machine}.**")?;
    if !matches!(machine, Machine::Quiet(_)) {
        writeln!(
            md,
            "  Other processes competed for the cores: tails measure the scheduler as much as \
             the servers. Do not quote these figures as the engine's; re-run on a quiet machine."
        )?;
    }
    steal_bullet(
        md,
        run.steal_pct,
        compare::closed_cells(&run.runs).stolen,
        true,
    )?;
    writeln!(
        md,
        "- **Open-loop cells: {} valid, {} invalid**{}{}. A cell is invalid when the load \
         generator sent more than {} behind its schedule at p99: its latency would be the \
         client's lateness, so it is not reported.",
        n.valid,
        n.late + n.stolen,
        if n.stolen > 0 {
            format!(" ({} of them for hypervisor steal)", n.stolen)
        } else {
            String::new()
        },
        if n.unknown > 0 {
            format!(", {} of unknown lateness (older reports)", n.unknown)
        } else {
            String::new()
        },
        validity::duration_us(validity::MAX_CLIENT_LAG_P99_US)
    )?;
    writeln!(md)?;
    Ok(())
}

/// The machine's steal over the run, and how many closed-loop cells it invalidated in every
/// round (shared with the scale page).
/// `per_cell`: whether the page's cells are judged by their own steal (the load
/// generator's pages) or only the run's is known (the rings page).
pub(crate) fn steal_bullet(
    md: &mut String,
    steal_pct: Option<f64>,
    closed_stolen: usize,
    per_cell: bool,
) -> Result<(), Error> {
    let limit = validity::MAX_STEAL_PCT;
    let rule = if per_cell {
        format!("a cell over {limit}% is invalid, and medians take only the rounds under it")
    } else {
        "only the run's steal is recorded here, not each figure's: a disturbed run's figures \
         are all suspect"
            .to_string()
    };
    match steal_pct {
        None => writeln!(md, "- **Hypervisor steal: not recorded.**")?,
        Some(pct) if pct > limit => writeln!(
            md,
            "- **Hypervisor steal: {pct:.1}% of the machine's CPU time over the run (over \
             {limit}%): disturbed.** The host ran other work on these cores, which the load \
             average does not see; {rule}."
        )?,
        Some(pct) => writeln!(
            md,
            "- **Hypervisor steal: {pct:.1}% of the machine's CPU time over the run** ({rule})."
        )?,
    }
    if closed_stolen > 0 {
        writeln!(
            md,
            "- **Closed-loop cells disturbed in every round: {closed_stolen}** (their figures \
             are shown, from all rounds, and their ratios marked invalid)."
        )?;
    }
    Ok(())
}

fn absolute_table(md: &mut String, run: &BenchRun) -> Result<(), Error> {
    let head = |p: &str, pct: u32| match run.offered(p) {
        Some(r) => format!("open {pct}% ({r:.0}/s) p50 / p99 / p99.9 us"),
        None => format!("open {pct}% p50 / p99 / p99.9 us"),
    };
    writeln!(md, "## Absolute figures\n")?;
    writeln!(md, "{}\n", run.servers_caption())?;
    let heads: Vec<String> = OPEN_PHASES.iter().map(|(p, pct)| head(p, *pct)).collect();
    writeln!(
        md,
        "| server | saturation resp/s (window 256) | window 8 p50 / p99 us | {} | server CPU s per 1M datagrams |",
        heads.join(" | ")
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|")?;
    for name in &run.runs.0 {
        let r = &run.runs.1[name];
        if !r.has_echo_phases() {
            continue;
        }
        let opens: Vec<String> = OPEN_PHASES
            .iter()
            .map(|(p, _)| latency_cell(r.cell(p), true))
            .collect();
        writeln!(
            md,
            "| {name} | {} | {} | {} | {} |",
            r.cell("sat")
                .map_or("-".to_string(), |c| saturation_cell(&c.report)),
            latency_cell(r.cell("lat"), false),
            opens.join(" | "),
            opt(run.cpu(name), 2),
        )?;
    }
    writeln!(md)?;
    Ok(())
}

/// `1.63→1.67` per round (1-minute figures), `-` where not recorded.
fn loadavg_cell(c: &Cell) -> String {
    let one = |l: Option<LoadAvg>| l.map_or("-".to_string(), |l| format!("{:.2}", l.one));
    let parts: Vec<String> = c
        .rounds
        .iter()
        .map(|r| {
            let steal = r
                .steal_pct
                .map_or(String::new(), |s| format!(" (steal {s:.1}%)"));
            format!(
                "{} → {}{steal}",
                one(r.loadavg_before),
                one(r.loadavg_after)
            )
        })
        .collect();
    parts.join(", ")
}

fn verdict_cell(c: &Cell) -> String {
    match c.verdict {
        Verdict::Valid if c.rounds.len() > 1 && c.valid_rounds() < c.rounds.len() => {
            format!("valid in {} of {} rounds", c.valid_rounds(), c.rounds.len())
        }
        Verdict::Late { .. } | Verdict::Stolen { .. } => format!("**{}**", c.verdict),
        v => v.to_string(),
    }
}

fn cells_table(md: &mut String, run: &BenchRun) -> Result<(), Error> {
    writeln!(md, "## The client and the machine, per cell\n")?;
    writeln!(md, "{}\n", run.servers_caption())?;
    writeln!(
        md,
        "Client lag: open loop, how far behind its intended send time each datagram left \
         (inside the latency figures); closed loop, how long a freed window slot waited to be \
         re-sent (not inside them). With several rounds: the round with the worst p99. \
         Preemptions: involuntary context switches of the client thread (most in one round). \
         Load average: 1-minute figure before → after the cell, per round.\n"
    )?;
    writeln!(
        md,
        "| server | phase | offered /s | achieved resp/s | client lag p50 / p99 / max us | client preemptions | load average before → after | verdict |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|")?;
    for name in &run.runs.0 {
        let r = &run.runs.1[name];
        for phase in PHASES {
            let Some(c) = r.cell(phase) else { continue };
            let lag = c.worst_lag().map_or("-".to_string(), |l| {
                format!("{:.1} / {:.1} / {:.1}", l.p50, l.p99, l.max)
            });
            let preempted = c
                .most_preemptions()
                .map_or("-".to_string(), |v| v.to_string());
            writeln!(
                md,
                "| {name} | {phase} | {} | {:.0} | {lag} | {preempted} | {} | {} |",
                opt(c.report.rate, 0),
                c.report.achieved_rps,
                loadavg_cell(c),
                verdict_cell(c),
            )?;
        }
    }
    writeln!(md)?;
    Ok(())
}

/// A ratio cell: the value, "invalid" when either side's cell is, "-" when
/// either is missing.
fn ratio_cell(v: Option<f64>, invalid: bool) -> String {
    if invalid {
        return "invalid".to_string();
    }
    opt(v, 2)
}

/// The engine / baseline ratios of one baseline: (label, ratio or None,
/// either side invalid, higher is better).
fn ratios(run: &BenchRun, engine: &str, base: &str) -> Vec<(String, Option<f64>, bool, bool)> {
    let mut v = vec![(
        "saturation".to_string(),
        ratio(run.sat(engine), run.sat(base)),
        run.invalid(engine, "sat") || run.invalid(base, "sat"),
        true,
    )];
    for (phase, pct) in OPEN_PHASES {
        v.push((
            format!("p99 at {pct}%"),
            ratio(run.p99(engine, phase), run.p99(base, phase)),
            run.invalid(engine, phase) || run.invalid(base, phase),
            false,
        ));
    }
    v.push((
        "CPU per datagram".to_string(),
        ratio(run.cpu(engine), run.cpu(base)),
        false,
        false,
    ));
    v.push((
        "instructions per request".to_string(),
        ratio(run.instr(engine), run.instr(base)),
        false,
        false,
    ));
    v
}

fn ratio_table(md: &mut String, run: &BenchRun, args: &ReportArgs) -> Result<(), Error> {
    writeln!(md, "## {} relative to each baseline\n", args.engine)?;
    if !run.runs.1.contains_key(&args.engine) {
        writeln!(md, "{} did not run: no ratios.\n", args.engine)?;
        return Ok(());
    }
    writeln!(md, "{}\n", run.servers_caption())?;
    writeln!(
        md,
        "Each cell is {e} divided by the baseline: above 1 is better for saturation, below 1 is \
         better for everything else. \"invalid\": one of the two cells is invalid (its client was \
         late, or the host's steal was over the limit in every round), so there is no ratio. A `{e}-base` row is the same run's baseline engine binary \
         (`RINGWIRE_BASELINE_BIN`): new / base.\n",
        e = args.engine
    )?;
    let heads: Vec<String> = OPEN_PHASES
        .iter()
        .map(|(_, pct)| format!("p99 at {pct}%"))
        .collect();
    writeln!(
        md,
        "| {e} / baseline | saturation resp/s | {} | CPU per 1M datagrams | instructions per request |",
        heads.join(" | "),
        e = args.engine
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|")?;
    for name in echo_baselines(run, &args.engine) {
        let cells: Vec<String> = ratios(run, &args.engine, name)
            .into_iter()
            .map(|(_, v, invalid, _)| ratio_cell(v, invalid))
            .collect();
        writeln!(md, "| {} / {name} | {} |", args.engine, cells.join(" | "))?;
    }
    writeln!(md)?;
    Ok(())
}

/// The servers other than `engine` that ran the echo phases, in run order.
fn echo_baselines<'a>(run: &'a BenchRun, engine: &'a str) -> impl Iterator<Item = &'a String> {
    run.runs
        .0
        .iter()
        .filter(move |n| *n != engine && run.runs.1[*n].has_echo_phases())
}

/// The bulk section: the bulk table, the aims against the two floors, and what the phases are.
fn bulk_section(md: &mut String, run: &BenchRun, args: &ReportArgs) -> Result<(), Error> {
    if !run.runs.1.values().any(ServerRuns::has_bulk_phases) {
        return Ok(());
    }
    writeln!(
        md,
        "## Bulk: GSO and GRO
"
    )?;
    writeln!(
        md,
        "{}
",
        run.servers_caption()
    )?;
    writeln!(
        md,
        "`bulk`: the load generator's bulk mode (`--bulk`: a few peers send streams of \
         back-to-back datagrams of one size as `UDP_SEGMENT` sends, which reach a GRO socket \
         coalesced as a NIC's GRO would hand them over, and read with `UDP_GRO`) against a fresh \
         echo server; `relay-bulk`: the same through `ringwire serve --app relay` (peers paired, \
         each datagram a relayed session message). `{GSO_FLOOR}` is the `{floor}` floor with \
         GRO and GSO (each coalesced buffer sent back whole with its segment size: no user-space \
         work per datagram); the engine's `echo` app is handed each coalesced buffer in one \
         call (`Handler::on_datagrams`, D81) and sends it back out of its receive buffer too, \
         as one GSO send per up to 64 datagrams (`Ctx::send_datagrams`: no copy, one send \
         slot per GSO send); `ringwire-no-offload` is this engine with `shard.gso` and \
         `shard.gro` off. Server CPU is the fresh server's, over the phase. Aims for {e}: bulk \
         at least 1.3x `{floor}` and at least 1.0x `{GSO_FLOOR}` in the same run.\n",
        floor = args.floor,
        e = args.engine,
    )?;
    md.push_str(&compare::bulk_table(&run.runs, &args.floor));
    let ratio = |base: &str| ratio(run.bulk(&args.engine), run.bulk(base));
    if let (Some(plain), Some(gso)) = (ratio(&args.floor), ratio(GSO_FLOOR)) {
        writeln!(
            md,
            "\n{e} bulk: {plain:.2}x `{floor}` (aim 1.3: {}), {gso:.2}x `{GSO_FLOOR}` (aim 1.0: {}).",
            if plain >= 1.3 { "met" } else { "not met" },
            if gso >= 1.0 { "met" } else { "not met" },
            e = args.engine,
            floor = args.floor,
        )?;
    }
    writeln!(md)?;
    Ok(())
}

/// Where the engine is ahead and where it is behind, cell by cell, so a
/// summary can quote both.
fn ahead_and_behind(md: &mut String, run: &BenchRun, args: &ReportArgs) -> Result<(), Error> {
    if !run.runs.1.contains_key(&args.engine) {
        return Ok(());
    }
    writeln!(
        md,
        "### Where {} is ahead and where it is behind\n",
        args.engine
    )?;
    writeln!(
        md,
        "From the table above (ratios within 2% of 1 count as even). Quote both lists.\n"
    )?;
    for name in echo_baselines(run, &args.engine) {
        let (mut ahead, mut behind, mut even, mut none) = (vec![], vec![], vec![], vec![]);
        for (label, v, invalid, higher_better) in ratios(run, &args.engine, name) {
            match v {
                Some(v) if !invalid => {
                    let item = format!("{label} {v:.2}");
                    if (v - 1.0).abs() <= 0.02 {
                        even.push(item);
                    } else if (v > 1.0) == higher_better {
                        ahead.push(item);
                    } else {
                        behind.push(item);
                    }
                }
                _ if invalid => none.push(format!("{label} (invalid)")),
                _ => {}
            }
        }
        let list = |v: &[String]| {
            if v.is_empty() {
                "nothing".to_string()
            } else {
                v.join(", ")
            }
        };
        write!(
            md,
            "- vs {name}: ahead on {}; behind on {}; even on {}",
            list(&ahead),
            list(&behind),
            list(&even)
        )?;
        if !none.is_empty() {
            write!(md, "; not comparable: {}", none.join(", "))?;
        }
        writeln!(md, ".")?;
    }
    writeln!(md)?;
    Ok(())
}

fn callgrind_table(md: &mut String, run: &BenchRun) -> Result<(), Error> {
    writeln!(md, "## User-space instructions per request\n")?;
    if run.callgrind.is_empty() {
        writeln!(md, "Not run (`scripts/bench.sh --callgrind`).\n")?;
        return Ok(());
    }
    let loads: Vec<&LoadReport> = run
        .callgrind
        .keys()
        .filter_map(|n| run.callgrind_loads.get(n))
        .collect();
    let lags = lag_range(loads.iter().filter_map(|r| r.client_lag_us).map(|l| l.p99));
    let caption = Caption {
        header: run.header.clone(),
        start: loads.first().and_then(|r| r.loadavg_before),
        end: loads.last().and_then(|r| r.loadavg_after),
        lateness: match lags {
            Some(range) => format!(
                "client lag p99: {range} (no validity rule here: an instruction count does not \
                 depend on the client's timing)"
            ),
            None => "client lag: not recorded".to_string(),
        },
        steal_pct: run.steal_pct,
    };
    writeln!(md, "{caption}\n")?;
    writeln!(
        md,
        "Each server under `valgrind --tool=callgrind`, driven open loop at a fixed low rate; \
         the client's lateness does not change an instruction count, so no cell here is \
         invalidated by it.\n"
    )?;
    writeln!(
        md,
        "| server | instructions per request | echoes counted | offered /s | client lag p99 us | load average before → after |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|")?;
    for name in run
        .runs
        .0
        .iter()
        .chain(run.callgrind.keys().filter(|n| !run.runs.0.contains(n)))
    {
        let Some(c) = run.callgrind.get(name) else {
            continue;
        };
        let load = run.callgrind_loads.get(name);
        let one = |l: Option<LoadAvg>| l.map_or("-".to_string(), |l| format!("{:.2}", l.one));
        writeln!(
            md,
            "| {name} | {} | {} | {} | {} | {} → {} |",
            opt(c.instructions_per_request, 0),
            c.served,
            opt(load.and_then(|l| l.rate), 0),
            opt(load.and_then(|l| l.client_lag_us).map(|l| l.p99), 1),
            one(load.and_then(|l| l.loadavg_before)),
            one(load.and_then(|l| l.loadavg_after)),
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
    let caption = Caption {
        header: run.header.clone(),
        start: run.sockperf_loadavg.0,
        end: run.sockperf_loadavg.1,
        lateness: "client: sockperf's own, whose lateness is not measured".to_string(),
        steal_pct: run.steal_pct,
    };
    writeln!(md, "{caption}\n")?;
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
    let limit = validity::duration_us(validity::MAX_CLIENT_LAG_P99_US);
    let quiet = validity::QUIET_LOADAVG;
    let steal = validity::MAX_STEAL_PCT;
    for line in [
        "- **Compare only numbers from one run.** Absolute figures drift from machine to machine \
         and from minute to minute; the ratios are what carries over."
            .to_string(),
        format!(
            "- **Quiet or contended.** A run is called quiet only when the 1-minute load average \
             before it was below {quiet}. During the run the load average includes the benchmark \
             itself (a busy-polling client and a saturated server hold it near 2), so the per-cell \
             figures show the trend, not contention; the client's lag and preemptions are the \
             per-cell signs of a busy machine."
        ),
        format!(
            "- **Hypervisor steal.** On a virtual machine the host can run other work on the \
             guest's cores; the guest's load average does not count it. Every load run records \
             the share of the machine's CPU time the hypervisor took (`/proc/stat`'s steal) \
             while it ran; a cell over {steal}% is invalid in that round, open or closed loop, \
             and the medians take only the rounds under it."
        ),
        format!(
            "- **Open loop and validity.** Latency counts from each datagram's intended send \
             time, so a client that falls behind its schedule adds its own lag to every figure. \
             A cell whose client was more than {limit} late at p99 is shown as invalid instead of \
             reported, left out of the medians, the ratios and the plot. \"(N lost)\" means echoes \
             never came back within the timeout."
        ),
        "- **One run is one sample.** With `--rounds N` the servers run interleaved in time \
         (every server once per round) and each cell is the median over the rounds in which it \
         is valid, so a busy spell hits every server instead of one; prefer those numbers."
            .to_string(),
        "- **CPU per 1M datagrams** is user + system time of the serving thread over the whole \
         server run (baselines: `getrusage`; ringwire: its shard thread, `rw-shard-N` or \
         `ringwire-shard-N` in older binaries, in `/proc/PID/task/*/stat`). Loopback UDP puts \
         most of it in the kernel."
            .to_string(),
        "- **Instructions per request** come from `valgrind --tool=callgrind` (user space only, \
         every thread of the server process): counters dumped once the server listens and again \
         after a fixed open-loop load, the second dump divided by the echoes received. Kernel \
         work is not in it. It depends on batching (more requests per wake-up, fewer \
         instructions each), and valgrind slows the server by tens of times, so a busy machine \
         still moves it; compare servers within one run only."
            .to_string(),
        "- **sockperf** is an outside client with its own measuring: its figures are not \
         comparable with ringwire-bench's, only with each other."
            .to_string(),
        String::new(),
        "## Other benchmarks".to_string(),
        String::new(),
        "- Cross-core rings (`ringwire-bench rings`: ringwire's SPSC ring against rtrb, \
         crossbeam's ArrayQueue and tokio mpsc, ringwire and rtrb over several fresh \
         processes; eventfd against MSG_RING wake latency): \
         [BENCHMARKS-rings.md](BENCHMARKS-rings.md)."
            .to_string(),
        "- Sessions at scale (`scripts/scale.sh`: CPU per request and memory per session from \
         1 to 1,000,000 sessions over 4,000 sockets, beside N sessions over one client socket \
         and the 1-session row run again last, which split the growth into the server's \
         session state and the load generator's sockets; relay fan-out to 10,000 subscribers): \
         [BENCHMARKS-scale.md](BENCHMARKS-scale.md)."
            .to_string(),
        "- Connection manager (`scripts/connmgr-bench.sh`: trim cost and the longest loop turn \
         at 1k, 10k and 100k sessions per shard; RSS under a session flood from many \
         addresses against the memory budget): [BENCHMARKS-connmgr.md](BENCHMARKS-connmgr.md)."
            .to_string(),
        "- QUIC (`scripts/quic-bench.sh`: `quic-echo` against quinn on tokio, DATAGRAM, stream \
         and handshake echo, and clients that rebind their ports): \
         [BENCHMARKS-quic.md](BENCHMARKS-quic.md)."
            .to_string(),
    ] {
        writeln!(md, "{line}")?;
    }
    Ok(())
}

/// The markers around the "Secure sessions" section, which `scripts/bench-secure.sh` writes
/// into the page and a regenerated page keeps.
pub const SECURE_BEGIN: &str = "<!-- secure-sessions:begin -->";
/// See [`SECURE_BEGIN`].
pub const SECURE_END: &str = "<!-- secure-sessions:end -->";

/// The marked "Secure sessions" block of an existing page, markers included.
#[must_use]
pub fn secure_section(page: &str) -> Option<&str> {
    let start = page.find(SECURE_BEGIN)?;
    let end = page[start..].find(SECURE_END)? + start + SECURE_END.len();
    Some(&page[start..end])
}

/// Writes the markdown, keeping the page's "Secure sessions" section
/// (`scripts/bench-secure.sh`) if it has one.
pub fn run(args: ReportArgs) -> crate::CmdResult {
    let bench = read(&args.dir)?;
    let mut md = markdown(&bench, &args)?;
    if args.markdown.as_os_str() == "-" {
        print!("{md}");
    } else {
        let old = std::fs::read_to_string(&args.markdown).unwrap_or_default();
        if let Some(section) = secure_section(&old) {
            md.push('\n');
            md.push_str(section);
            md.push('\n');
        }
        std::fs::write(&args.markdown, md)
            .map_err(|e| format!("writing {}: {e}", args.markdown.display()))?;
    }
    Ok(())
}
