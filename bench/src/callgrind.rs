//! `ringwire-bench callgrind-report`: user-space instructions per request
//! from a `valgrind --tool=callgrind` run of a server.
//!
//! `scripts/bench.sh --callgrind` starts each server under callgrind, dumps
//! (and so zeroes) the counters with `callgrind_control -d` once it listens,
//! drives it with a fixed open-loop load, and dumps again: the second dump
//! holds exactly the instructions spent while serving that load, without
//! start-up or shutdown. Divided by the echoes the load generator got back
//! (`received + late`), that is what one request costs in user space (the
//! kernel's share is invisible to valgrind; see the CPU column for that).
//! The dump covers every thread of the server process; besides the serving
//! thread there are only threads waiting for a signal, which execute nothing
//! while the load runs. (Dumping from outside also works for the engine,
//! whose shard thread sleeps in `io_uring_enter`, which valgrind 3.19 does
//! not treat as a blocking call, so SIGINT is not delivered under valgrind.)

use crate::engine::{read, write_json};
use crate::load::report::LoadReport;
use clap::Args;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Arguments of `ringwire-bench callgrind-report`.
#[derive(Debug, Clone, Args)]
pub struct CallgrindArgs {
    /// Server name in the report.
    #[arg(long)]
    pub server: String,
    /// The callgrind.out dump(s) taken over the load.
    #[arg(long, required = true, num_args = 1..)]
    pub dump: Vec<PathBuf>,
    /// The load generator's `--json` report of that load.
    #[arg(long)]
    pub load_json: PathBuf,
    /// Write the result (JSON) here.
    #[arg(long)]
    pub json: PathBuf,
}

/// Instructions per request for one server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallgrindReport {
    /// Server name.
    pub server: String,
    /// Instructions executed while the load ran (all threads).
    pub instructions: u64,
    /// Echoes the load generator got back (`received + late`).
    pub served: u64,
    /// `instructions / served` (null if nothing was served).
    pub instructions_per_request: Option<f64>,
}

impl CallgrindReport {
    /// Computes the per-request figure.
    #[must_use]
    pub fn new(server: &str, instructions: u64, served: u64) -> Self {
        Self {
            server: server.to_string(),
            instructions,
            served,
            instructions_per_request: (served > 0).then(|| instructions as f64 / served as f64),
        }
    }
}

/// The instruction count (first event) of a callgrind.out file: its
/// `totals:` line, or else its `summary:` line.
#[must_use]
pub fn parse_total(text: &str) -> Option<u64> {
    let find = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    find("totals:").or_else(|| find("summary:"))
}

fn total_of(files: &[PathBuf]) -> Result<u64, String> {
    let mut sum = 0;
    for f in files {
        let text = read(f)?;
        sum += parse_total(&text)
            .ok_or_else(|| format!("{}: no totals:/summary: line", f.display()))?;
    }
    Ok(sum)
}

/// Writes the report.
pub fn run(args: CallgrindArgs) -> crate::CmdResult {
    let instructions = total_of(&args.dump)?;
    let load: LoadReport = serde_json::from_str(&read(&args.load_json)?)
        .map_err(|e| format!("{} does not parse: {e}", args.load_json.display()))?;
    let report = CallgrindReport::new(&args.server, instructions, load.received + load.late);
    match report.instructions_per_request {
        Some(i) => println!(
            "{}: {i:.0} instructions per request ({instructions} instructions, {} served)",
            args.server, report.served
        ),
        None => println!("{}: nothing served under callgrind", args.server),
    }
    write_json(&args.json, &report)
}
