//! `ringwire-bench compare DIR`: reads the JSON reports `scripts/bench.sh`
//! leaves in DIR and prints one markdown table, with ratios to the floor.
//!
//! File names: `<server>.<phase>.json` for load reports, phases `sat`
//! (closed loop, big window), `lat` (closed loop, small window), `open25`,
//! `open50`, `open75`, `open90` (open loop at that share of the floor's
//! saturation rate), `bulk` and `relay-bulk` (the load generator's bulk mode
//! against a fresh echo or relay server); `<server>.server.json` for a
//! server's own report over the echo phases, `<server>.cpu-<phase>.json` for
//! the fresh server of a bulk phase.
//! Every file must parse, or the command fails: that is what `--quick`
//! checks.
//!
//! Given several directories (rounds of the same comparison, interleaved in
//! time so that a busy spell on the machine hits every server), each cell is
//! the median over the rounds in which it is valid ([`crate::validity`]): a
//! noisy machine moves medians less than it moves any single run, and a
//! round whose client fell behind measured the client, not the server. A
//! cell valid in no round is shown as invalid, never as figures.

use crate::load::report::{LagUs, LoadReport};
use crate::server::report::ServerReport;
use crate::validity::{self, Verdict};
use clap::Args;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Arguments of `ringwire-bench compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// Directories of `<server>.<phase>.json` files (several: one per round;
    /// every cell is then the median over the rounds).
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// The server the ratios are relative to.
    #[arg(long, default_value = "mmsg")]
    pub floor: String,
    /// Print the saturation rate of the floor only (for the script).
    #[arg(long)]
    pub floor_rate: bool,
}

/// Load phases, in table order (and the order `scripts/bench.sh` runs them).
pub const PHASES: [&str; 8] = [
    "sat",
    "lat",
    "open25",
    "open50",
    "open75",
    "open90",
    "bulk",
    "relay-bulk",
];

/// The phases of the main table (32-byte echo); the others are in the bulk table.
pub const ECHO_PHASES: [&str; 6] = ["sat", "lat", "open25", "open50", "open75", "open90"];

/// The bulk phases, each against a fresh server whose report is `<server>.cpu-<phase>.json`:
/// `bulk` (echo, the load generator's `--bulk`: few peers, 1200-byte datagrams, GSO/GRO at
/// the peers) and `relay-bulk` (the same through `ringwire serve --app relay`).
pub const BULK_PHASES: [&str; 2] = ["bulk", "relay-bulk"];

/// The GSO/GRO floor, the second reference of the bulk table.
pub const GSO_FLOOR: &str = "mmsg-gso";

/// The open-loop phases and their share of the floor's saturation rate, %.
pub const OPEN_PHASES: [(&str, u32); 4] = [
    ("open25", 25),
    ("open50", 50),
    ("open75", 75),
    ("open90", 90),
];

/// One (server, phase) cell over the rounds.
#[derive(Debug, Clone)]
pub struct Cell {
    /// The figures: medians over the rounds whose cell is valid, or over
    /// every round when none is (then only the verdict is shown).
    pub report: LoadReport,
    /// Each round's report, in round order.
    pub rounds: Vec<LoadReport>,
    /// Valid if any round is; otherwise the verdict on the medians.
    pub verdict: Verdict,
}

impl Cell {
    /// Merges the rounds of one cell.
    fn merge(rounds: Vec<LoadReport>) -> Option<Self> {
        let valid: Vec<&LoadReport> = rounds
            .iter()
            .filter(|r| validity::verdict(r).is_valid())
            .collect();
        let (report, verdict) = if valid.is_empty() {
            let m = median_report(&rounds.iter().collect::<Vec<_>>())?;
            let v = validity::verdict(&m);
            (m, v)
        } else {
            (median_report(&valid)?, Verdict::Valid)
        };
        Some(Self {
            report,
            rounds,
            verdict,
        })
    }

    /// Rounds whose cell is valid.
    #[must_use]
    pub fn valid_rounds(&self) -> usize {
        self.rounds
            .iter()
            .filter(|r| validity::verdict(r).is_valid())
            .count()
    }

    /// The round whose client lagged most at p99 (`None` if no round
    /// recorded its lag).
    #[must_use]
    pub fn worst_lag(&self) -> Option<LagUs> {
        self.rounds
            .iter()
            .filter_map(|r| r.client_lag_us)
            .max_by(|a, b| a.p99.total_cmp(&b.p99))
    }

    /// Most involuntary context switches of the client in one round.
    #[must_use]
    pub fn most_preemptions(&self) -> Option<u64> {
        self.rounds
            .iter()
            .filter_map(|r| r.client_involuntary_switches)
            .max()
    }
}

/// One server's cells (medians over rounds) and its own report.
#[derive(Default, Clone)]
pub struct ServerRuns {
    /// Load cells by phase.
    pub loads: BTreeMap<String, Cell>,
    /// The server's own report (served, CPU) over the echo phases.
    pub server: Option<ServerReport>,
    /// The reports of the fresh servers of the bulk phases, by phase.
    pub phase_servers: BTreeMap<String, ServerReport>,
}

impl ServerRuns {
    /// The cell of `phase`, if it ran.
    #[must_use]
    pub fn cell(&self, phase: &str) -> Option<&Cell> {
        self.loads.get(phase)
    }

    /// The figures of `phase` if its cell is valid.
    #[must_use]
    pub fn valid(&self, phase: &str) -> Option<&LoadReport> {
        self.cell(phase)
            .filter(|c| c.verdict.is_valid())
            .map(|c| &c.report)
    }

    /// Saturation throughput (the `sat` phase), responses/s.
    #[must_use]
    pub fn saturation_rps(&self) -> Option<f64> {
        self.cell("sat").map(|c| c.report.achieved_rps)
    }

    /// Throughput of a closed-loop `phase`, responses/s.
    #[must_use]
    pub fn rps(&self, phase: &str) -> Option<f64> {
        self.cell(phase).map(|c| c.report.achieved_rps)
    }

    /// Server CPU seconds per million datagrams in a bulk `phase` (its fresh server's).
    #[must_use]
    pub fn phase_cpu(&self, phase: &str) -> Option<f64> {
        self.phase_servers.get(phase)?.cpu_s_per_million
    }

    /// Whether any echo-phase (main table) cell ran.
    #[must_use]
    pub fn has_echo_phases(&self) -> bool {
        ECHO_PHASES.iter().any(|p| self.loads.contains_key(*p))
    }

    /// Whether any bulk-phase cell ran.
    #[must_use]
    pub fn has_bulk_phases(&self) -> bool {
        BULK_PHASES.iter().any(|p| self.loads.contains_key(*p))
    }
}

/// The error every reader here returns.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// One directory's reports, before merging rounds.
struct Round {
    order: Vec<String>,
    loads: BTreeMap<String, BTreeMap<String, LoadReport>>,
    servers: BTreeMap<String, ServerReport>,
    /// (server, phase) -> the fresh server of a bulk phase.
    phase_servers: BTreeMap<(String, String), ServerReport>,
}

fn read_dir(dir: &Path) -> Result<Round, Error> {
    let mut round = Round {
        order: Vec::new(),
        loads: BTreeMap::new(),
        servers: BTreeMap::new(),
        phase_servers: BTreeMap::new(),
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    entries.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    for path in entries {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let Some((server, phase)) = stem.rsplit_once('.') else {
            continue;
        };
        let text = std::fs::read_to_string(&path)?;
        if !round.order.iter().any(|n| n == server) {
            round.order.push(server.to_string());
        }
        if phase == "server" {
            let r: ServerReport = serde_json::from_str(&text)
                .map_err(|e| format!("{} does not parse: {e}", path.display()))?;
            round.servers.insert(server.to_string(), r);
        } else if let Some(of) = phase.strip_prefix("cpu-") {
            let r: ServerReport = serde_json::from_str(&text)
                .map_err(|e| format!("{} does not parse: {e}", path.display()))?;
            round
                .phase_servers
                .insert((server.to_string(), of.to_string()), r);
        } else {
            let r: LoadReport = serde_json::from_str(&text)
                .map_err(|e| format!("{} does not parse: {e}", path.display()))?;
            round
                .loads
                .entry(server.to_string())
                .or_default()
                .insert(phase.to_string(), r);
        }
    }
    Ok(round)
}

/// "p50 / p99" (with `p999`: "p50 / p99 / p99.9") in us, plus any loss,
/// for a valid cell; "invalid: client N ms late at p99" for a cell whose
/// client fell behind; "-" if it did not run.
#[must_use]
pub fn latency_cell(c: Option<&Cell>, p999: bool) -> String {
    let Some(c) = c else {
        return "-".to_string();
    };
    let r = &c.report;
    let mut s = match c.verdict {
        Verdict::Late { .. } | Verdict::Stolen { .. } => return format!("**{}**", c.verdict),
        Verdict::Valid | Verdict::UnknownLateness => {
            format!("{:.1} / {:.1}", r.latency_us.p50, r.latency_us.p99)
        }
    };
    if p999 {
        let _ = write!(s, " / {:.1}", r.latency_us.p999);
    }
    if r.lost > 0 {
        let _ = write!(s, " ({} lost)", r.lost);
    }
    if c.verdict == Verdict::UnknownLateness {
        s.push_str(" (client lateness unknown)");
    }
    let valid = c.valid_rounds();
    if c.rounds.len() > 1 && valid < c.rounds.len() && c.verdict.is_valid() {
        let _ = write!(s, " ({valid} of {} rounds valid)", c.rounds.len());
    }
    s
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        f64::midpoint(v[mid - 1], v[mid])
    }
}

fn median_u64(v: impl Iterator<Item = u64>) -> u64 {
    median(v.map(|x| x as f64).collect()).round() as u64
}

/// Median of the values present, `None` if none is.
fn median_opt(v: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let v: Vec<f64> = v.flatten().collect();
    (!v.is_empty()).then(|| median(v))
}

/// One report whose numbers are the medians of `reports` (the client's
/// max lag: the worst of them; load averages: the first round's before,
/// the last round's after).
fn median_report(reports: &[&LoadReport]) -> Option<LoadReport> {
    let first = (*reports.first()?).clone();
    let f = |get: fn(&LoadReport) -> f64| median(reports.iter().map(|r| get(r)).collect());
    let mut m = first;
    m.sent = median_u64(reports.iter().map(|r| r.sent));
    m.received = median_u64(reports.iter().map(|r| r.received));
    m.lost = median_u64(reports.iter().map(|r| r.lost));
    m.timeouts = median_u64(reports.iter().map(|r| r.timeouts));
    m.client_sent_late = median_u64(reports.iter().map(|r| r.client_sent_late));
    m.client_max_send_lag_us = reports
        .iter()
        .map(|r| r.client_max_send_lag_us)
        .fold(0.0, f64::max);
    let lag = |get: fn(&LagUs) -> f64| {
        median_opt(reports.iter().map(|r| r.client_lag_us.as_ref().map(get)))
    };
    m.client_lag_us = match (
        lag(|l| l.p50),
        lag(|l| l.p99),
        lag(|l| l.p999),
        lag(|l| l.max),
    ) {
        (Some(p50), Some(p99), Some(p999), Some(max)) => Some(LagUs {
            p50,
            p99,
            p999,
            max,
        }),
        _ => None,
    };
    m.client_involuntary_switches = median_opt(
        reports
            .iter()
            .map(|r| r.client_involuntary_switches.map(|v| v as f64)),
    )
    .map(|v| v.round() as u64);
    m.loadavg_after = reports.last().and_then(|r| r.loadavg_after);
    m.steal_pct = median_opt(reports.iter().map(|r| r.steal_pct));
    m.achieved_rps = f(|r| r.achieved_rps);
    m.latency_us.p50 = f(|r| r.latency_us.p50);
    m.latency_us.p90 = f(|r| r.latency_us.p90);
    m.latency_us.p99 = f(|r| r.latency_us.p99);
    m.latency_us.p999 = f(|r| r.latency_us.p999);
    m.latency_us.max = f(|r| r.latency_us.max);
    m.latency_us.mean = f(|r| r.latency_us.mean);
    Some(m)
}

/// The first round's server report with the median CPU per million datagrams.
fn median_server(servers: &[&ServerReport]) -> Option<ServerReport> {
    let mut s = (*servers.first()?).clone();
    let cpu: Vec<f64> = servers.iter().filter_map(|s| s.cpu_s_per_million).collect();
    s.cpu_s_per_million = (!cpu.is_empty()).then(|| median(cpu));
    Some(s)
}

/// Server names in run order, and their cells.
pub type Runs = (Vec<String>, BTreeMap<String, ServerRuns>);

/// Merges rounds into one set of runs whose cells are medians over the
/// rounds in which they are valid.
fn merge_rounds(rounds: Vec<Round>) -> Runs {
    let mut order: Vec<String> = Vec::new();
    for r in &rounds {
        for name in &r.order {
            if !order.contains(name) {
                order.push(name.clone());
            }
        }
    }
    let mut merged = BTreeMap::new();
    for name in &order {
        let mut runs = ServerRuns::default();
        let mut phases: Vec<&String> = rounds
            .iter()
            .filter_map(|r| r.loads.get(name))
            .flat_map(BTreeMap::keys)
            .collect();
        phases.sort_by_key(|p| (PHASES.iter().position(|x| x == p), *p));
        phases.dedup();
        for phase in phases {
            let reports: Vec<LoadReport> = rounds
                .iter()
                .filter_map(|r| r.loads.get(name)?.get(phase))
                .cloned()
                .collect();
            if let Some(cell) = Cell::merge(reports) {
                runs.loads.insert(phase.clone(), cell);
            }
        }
        let servers: Vec<&ServerReport> =
            rounds.iter().filter_map(|r| r.servers.get(name)).collect();
        runs.server = median_server(&servers);
        for phase in BULK_PHASES {
            let key = (name.clone(), phase.to_string());
            let servers: Vec<&ServerReport> = rounds
                .iter()
                .filter_map(|r| r.phase_servers.get(&key))
                .collect();
            if let Some(s) = median_server(&servers) {
                runs.phase_servers.insert(phase.to_string(), s);
            }
        }
        merged.insert(name.clone(), runs);
    }
    (order, merged)
}

/// Reads every directory and merges them (medians when more than one).
pub fn read_rounds(dirs: &[PathBuf]) -> Result<Runs, Error> {
    let rounds = dirs
        .iter()
        .map(|d| read_dir(d))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(merge_rounds(rounds))
}

/// How many cells are valid, late, disturbed by steal, of unknown lateness.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CellCount {
    /// Client on time.
    pub valid: usize,
    /// Client over the lag limit: not reported.
    pub late: usize,
    /// The hypervisor took over [`validity::MAX_STEAL_PCT`] of the CPU in every round.
    pub stolen: usize,
    /// Lag not recorded.
    pub unknown: usize,
}

impl CellCount {
    /// Counts one cell's verdict.
    pub fn add(&mut self, v: Verdict) {
        match v {
            Verdict::Valid => self.valid += 1,
            Verdict::Late { .. } => self.late += 1,
            Verdict::Stolen { .. } => self.stolen += 1,
            Verdict::UnknownLateness => self.unknown += 1,
        }
    }

    /// Cells counted.
    #[must_use]
    pub fn total(&self) -> usize {
        self.valid + self.late + self.stolen + self.unknown
    }
}

/// Counts the open-loop cells of `runs` by verdict.
#[must_use]
pub fn open_cells(runs: &Runs) -> CellCount {
    count_cells(runs, true)
}

/// Counts the closed-loop cells of `runs` by verdict (only steal can make one invalid).
#[must_use]
pub fn closed_cells(runs: &Runs) -> CellCount {
    count_cells(runs, false)
}

fn count_cells(runs: &Runs, open: bool) -> CellCount {
    let mut n = CellCount::default();
    for cell in runs
        .1
        .values()
        .flat_map(|r| r.loads.values())
        .filter(|c| c.report.rate.is_some() == open)
    {
        n.add(cell.verdict);
    }
    n
}

/// The markdown table for the runs in `dirs` (medians when more than one).
pub fn table(dirs: &[PathBuf], floor: &str) -> Result<String, Error> {
    let (order, runs) = read_rounds(dirs)?;
    let floor_rps = runs.get(floor).and_then(ServerRuns::saturation_rps);
    let mut out = String::new();
    writeln!(
        out,
        "| server | saturation resp/s (window 256) | vs {floor} | window 8 p50 / p99 us | open 25% p50 / p99 us | open 50% p50 / p99 us | open 75% p50 / p99 us | open 90% p50 / p99 us | server CPU s per 1M datagrams |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|---|---|---|")?;
    for name in &order {
        let r = &runs[name];
        if !r.has_echo_phases() {
            continue;
        }
        let sat = r.cell("sat").map(|c| &c.report);
        let ratio = match (sat, floor_rps) {
            (Some(s), Some(f)) if f > 0.0 => format!("{:.2}", s.achieved_rps / f),
            _ => "-".to_string(),
        };
        let cpu = r
            .server
            .as_ref()
            .and_then(|s| s.cpu_s_per_million)
            .map_or("-".to_string(), |c| format!("{c:.2}"));
        writeln!(
            out,
            "| {name} | {} | {ratio} | {} | {} | {} | {} | {} | {cpu} |",
            sat.map_or("-".to_string(), saturation_cell),
            latency_cell(r.cell("lat"), false),
            latency_cell(r.cell("open25"), false),
            latency_cell(r.cell("open50"), false),
            latency_cell(r.cell("open75"), false),
            latency_cell(r.cell("open90"), false),
        )?;
    }
    let runs = (order, runs);
    let n = open_cells(&runs);
    writeln!(
        out,
        "\nopen-loop cells: {} valid, {} invalid (client over {} late at p99), {} invalid (hypervisor steal over {}%), {} of unknown lateness",
        n.valid,
        n.late,
        validity::duration_us(validity::MAX_CLIENT_LAG_P99_US),
        n.stolen,
        validity::MAX_STEAL_PCT,
        n.unknown
    )?;
    if runs.1.values().any(ServerRuns::has_bulk_phases) {
        writeln!(out)?;
        out.push_str(&bulk_table(&runs, floor));
    }
    Ok(out)
}

/// The bulk table: throughput of the bulk phases, as ratios to the plain floor (`floor`) and
/// the GSO/GRO floor ([`GSO_FLOOR`]) in the same run, latency and server CPU; one row per
/// server with a bulk cell.
#[must_use]
pub fn bulk_table(runs: &Runs, floor: &str) -> String {
    let (order, runs) = runs;
    let rps = |name: &str, phase: &str| runs.get(name).and_then(|r| r.rps(phase));
    let ratio = |v: Option<f64>, base: Option<f64>| match (v, base) {
        (Some(v), Some(b)) if b > 0.0 => format!("{:.2}", v / b),
        _ => "-".to_string(),
    };
    let cpu = |v: Option<f64>| v.map_or("-".to_string(), |c| format!("{c:.2}"));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| server | bulk resp/s | vs {floor} | vs {GSO_FLOOR} | bulk p50 / p99 us | bulk server CPU s per 1M | relay bulk resp/s | relay bulk p50 / p99 us | relay bulk server CPU s per 1M |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    for name in order {
        let r = &runs[name];
        if !r.has_bulk_phases() {
            continue;
        }
        let bulk = r.cell("bulk").map(|c| &c.report);
        let relay = r.cell("relay-bulk").map(|c| &c.report);
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} |",
            bulk.map_or("-".to_string(), saturation_cell),
            ratio(rps(name, "bulk"), rps(floor, "bulk")),
            ratio(rps(name, "bulk"), rps(GSO_FLOOR, "bulk")),
            latency_cell(r.cell("bulk"), false),
            cpu(r.phase_cpu("bulk")),
            relay.map_or("-".to_string(), saturation_cell),
            latency_cell(r.cell("relay-bulk"), false),
            cpu(r.phase_cpu("relay-bulk")),
        );
    }
    out
}

/// "achieved resp/s" plus any loss.
#[must_use]
pub fn saturation_cell(s: &LoadReport) -> String {
    if s.lost > 0 {
        format!("{:.0} ({} lost)", s.achieved_rps, s.lost)
    } else {
        format!("{:.0}", s.achieved_rps)
    }
}

/// The round directories of a `scripts/bench.sh` output directory: its
/// `round-K` subdirectories in order, or the directory itself if it has none.
#[must_use]
pub fn round_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut rounds: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let k = e
                .file_name()
                .to_str()?
                .strip_prefix("round-")?
                .parse()
                .ok()?;
            Some((k, e.path()))
        })
        .collect();
    rounds.sort();
    if rounds.is_empty() {
        vec![dir.to_path_buf()]
    } else {
        rounds.into_iter().map(|(_, p)| p).collect()
    }
}

/// Prints the table (or, with `--floor-rate`, the floor's saturation rate).
pub fn run(args: CompareArgs) -> crate::CmdResult {
    if args.floor_rate {
        let (_, runs) = read_rounds(&args.dirs)?;
        let rps = runs
            .get(&args.floor)
            .and_then(ServerRuns::saturation_rps)
            .ok_or_else(|| format!("no {}.sat.json in {:?}", args.floor, args.dirs))?;
        println!("{rps:.0}");
        return Ok(());
    }
    print!("{}", table(&args.dirs, &args.floor)?);
    Ok(())
}
