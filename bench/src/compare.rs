//! `ringwire-bench compare DIR`: reads the JSON reports `scripts/bench.sh`
//! leaves in DIR and prints one markdown table, with ratios to the floor.
//!
//! File names: `<server>.<phase>.json` for load reports, phases `sat`
//! (closed loop, big window), `lat` (closed loop, small window), `open25`,
//! `open50`, `open75` (open loop at that share of the floor's saturation
//! rate); `<server>.server.json` for a baseline server's own report. Every
//! file must parse, or the command fails: that is what `--quick` checks.
//!
//! Given several directories (rounds of the same comparison, interleaved in
//! time so that a busy spell on the machine hits every server), each cell is
//! the median over the rounds: a noisy machine moves medians less than it
//! moves any single run.

use crate::load::report::LoadReport;
use crate::server::report::ServerReport;
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

/// Load phases, in table order.
pub const PHASES: [&str; 5] = ["sat", "lat", "open25", "open50", "open75"];

/// One server's reports from one directory (or their medians).
#[derive(Default, Clone)]
pub struct ServerRuns {
    /// Load reports by phase.
    pub loads: BTreeMap<String, LoadReport>,
    /// The server's own report (served, CPU).
    pub server: Option<ServerReport>,
}

/// The error every reader here returns.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

fn read_dir(dir: &Path) -> Result<Runs, Error> {
    let mut order = Vec::new();
    let mut runs: BTreeMap<String, ServerRuns> = BTreeMap::new();
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
        let entry = runs.entry(server.to_string()).or_insert_with(|| {
            order.push(server.to_string());
            ServerRuns::default()
        });
        if phase == "server" {
            let r: ServerReport = serde_json::from_str(&text)
                .map_err(|e| format!("{} does not parse: {e}", path.display()))?;
            entry.server = Some(r);
        } else {
            let r: LoadReport = serde_json::from_str(&text)
                .map_err(|e| format!("{} does not parse: {e}", path.display()))?;
            entry.loads.insert(phase.to_string(), r);
        }
    }
    Ok((order, runs))
}

fn p50_p99(r: Option<&LoadReport>) -> String {
    latency_cell(r, false)
}

/// "p50 / p99" (with `p999`: "p50 / p99 / p99.9") in us, plus any loss and
/// how late the open-loop client fell behind its schedule; "-" if no report.
pub(crate) fn latency_cell(r: Option<&LoadReport>, p999: bool) -> String {
    match r {
        Some(r) => {
            let mut s = format!("{:.1} / {:.1}", r.latency_us.p50, r.latency_us.p99);
            if p999 {
                let _ = write!(s, " / {:.1}", r.latency_us.p999);
            }
            if r.lost > 0 {
                let _ = write!(s, " ({} lost)", r.lost);
            }
            if r.client_sent_late > 0 {
                let _ = write!(
                    s,
                    " [client up to {:.1} ms late]",
                    r.client_max_send_lag_us / 1000.0
                );
            }
            s
        }
        None => "-".to_string(),
    }
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

/// One report whose numbers are the medians of `reports` (the client's lag:
/// the worst of them).
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
    m.achieved_rps = f(|r| r.achieved_rps);
    m.latency_us.p50 = f(|r| r.latency_us.p50);
    m.latency_us.p90 = f(|r| r.latency_us.p90);
    m.latency_us.p99 = f(|r| r.latency_us.p99);
    m.latency_us.p999 = f(|r| r.latency_us.p999);
    m.latency_us.max = f(|r| r.latency_us.max);
    m.latency_us.mean = f(|r| r.latency_us.mean);
    Some(m)
}

/// Server names in run order, and their reports.
pub type Runs = (Vec<String>, BTreeMap<String, ServerRuns>);

/// Merges rounds into one set of runs whose cells are medians.
fn merge_rounds(rounds: Vec<Runs>) -> Runs {
    if rounds.len() == 1 {
        return rounds.into_iter().next().unwrap_or_default();
    }
    let mut order: Vec<String> = Vec::new();
    for (o, _) in &rounds {
        for name in o {
            if !order.contains(name) {
                order.push(name.clone());
            }
        }
    }
    let mut merged = BTreeMap::new();
    for name in &order {
        let mut runs = ServerRuns::default();
        for phase in PHASES {
            let reports: Vec<&LoadReport> = rounds
                .iter()
                .filter_map(|(_, r)| r.get(name)?.loads.get(phase))
                .collect();
            if let Some(m) = median_report(&reports) {
                runs.loads.insert(phase.to_string(), m);
            }
        }
        let servers: Vec<&ServerReport> = rounds
            .iter()
            .filter_map(|(_, r)| r.get(name)?.server.as_ref())
            .collect();
        if let Some(first) = servers.first() {
            let mut s = (*first).clone();
            let cpu: Vec<f64> = servers.iter().filter_map(|s| s.cpu_s_per_million).collect();
            s.cpu_s_per_million = (!cpu.is_empty()).then(|| median(cpu));
            runs.server = Some(s);
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

/// The markdown table for the runs in `dirs` (medians when more than one).
pub fn table(dirs: &[PathBuf], floor: &str) -> Result<String, Error> {
    let (order, runs) = read_rounds(dirs)?;
    let floor_rps = runs
        .get(floor)
        .and_then(|r| r.loads.get("sat"))
        .map(|r| r.achieved_rps);
    let mut out = String::new();
    writeln!(
        out,
        "| server | saturation resp/s (window 256) | vs {floor} | window 8 p50 / p99 us | open 25% p50 / p99 us | open 50% p50 / p99 us | open 75% p50 / p99 us | server CPU s per 1M datagrams |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|---|---|")?;
    for name in &order {
        let r = &runs[name];
        let sat = r.loads.get("sat");
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
            "| {name} | {} | {ratio} | {} | {} | {} | {} | {cpu} |",
            sat.map_or("-".to_string(), |s| format!(
                "{:.0}{}",
                s.achieved_rps,
                if s.lost > 0 {
                    format!(" ({} lost)", s.lost)
                } else {
                    String::new()
                }
            )),
            p50_p99(r.loads.get("lat")),
            p50_p99(r.loads.get("open25")),
            p50_p99(r.loads.get("open50")),
            p50_p99(r.loads.get("open75")),
        )?;
    }
    Ok(out)
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
            .and_then(|r| r.loads.get("sat"))
            .map(|r| r.achieved_rps)
            .ok_or_else(|| format!("no {}.sat.json in {:?}", args.floor, args.dirs))?;
        println!("{rps:.0}");
        return Ok(());
    }
    print!("{}", table(&args.dirs, &args.floor)?);
    Ok(())
}
