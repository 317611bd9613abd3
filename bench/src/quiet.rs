//! `ringwire-bench wait-quiet`: waits, for a bounded time, until the
//! machine is quiet by [`crate::validity`]'s rule (the 1-minute load average
//! below [`validity::QUIET_LOADAVG`]) and the hypervisor took at most
//! [`validity::MAX_STEAL_PCT`] of the CPU time over the last look, so a
//! benchmark script started right after a build, or in a spell of the
//! host's other work, does not measure it. The script goes ahead either
//! way; its report says whether the run was quiet and what was stolen.

use crate::sys::{loadavg, steal};
use crate::validity::{self, Machine};
use clap::Args;
use std::time::{Duration, Instant};

/// Arguments of `ringwire-bench wait-quiet`.
#[derive(Debug, Clone, Args)]
pub struct WaitQuietArgs {
    /// Give up after this many seconds (0: only report).
    #[arg(long, default_value_t = 300)]
    pub max_s: u64,
    /// Seconds between two looks at `/proc/loadavg` and `/proc/stat` (the steal is measured
    /// over this interval).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub every_s: u64,
    /// Wait for the steal only, not the load average: between the cells of a running
    /// benchmark, whose own threads hold the load average near 2 (`scripts/bench.sh` before it
    /// measures a stolen cell again).
    #[arg(long)]
    pub steal_only: bool,
}

/// Waits until the 1-minute load average is below the quiet limit and the last interval's
/// steal at most the steal limit, or `--max-s` passed; prints what it saw. Never fails on a
/// busy machine.
pub fn run(args: WaitQuietArgs) -> crate::CmdResult {
    let start = Instant::now();
    let limit = Duration::from_secs(args.max_s);
    let mut last_note = None::<Instant>;
    let mut ticks = steal::now();
    // Steal over the last interval; unknown until one interval has passed (and for good
    // where `/proc/stat` cannot be read, which then does not hold the wait).
    let mut stolen: Option<f64> = None;
    loop {
        let machine = validity::machine(loadavg::now());
        let load_ok = args.steal_only || matches!(machine, Machine::Quiet(_) | Machine::Unknown);
        let steal_ok = match stolen {
            Some(pct) => pct <= validity::MAX_STEAL_PCT,
            None => ticks.is_none(),
        };
        let steal_note = stolen.map_or("steal not measured yet".to_string(), |p| {
            format!("hypervisor steal {p:.1}% over the last {} s", args.every_s)
        });
        if load_ok && steal_ok {
            println!("wait-quiet: {machine}; {steal_note}");
            return Ok(());
        }
        if start.elapsed() >= limit {
            println!(
                "wait-quiet: after {} s, {machine}; {steal_note}: going ahead; the report will say so",
                args.max_s
            );
            return Ok(());
        }
        if last_note.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
            let load = if args.steal_only {
                String::new()
            } else {
                format!("load below {} and ", validity::QUIET_LOADAVG)
            };
            println!(
                "wait-quiet: {machine}; {steal_note}; waiting for {load}steal at most {}% (at most {} s)",
                validity::MAX_STEAL_PCT,
                args.max_s
            );
            last_note = Some(Instant::now());
        }
        let left = limit.saturating_sub(start.elapsed());
        std::thread::sleep(Duration::from_secs(args.every_s).min(left));
        let now = steal::now();
        stolen = steal::percent(ticks, now);
        ticks = now;
    }
}
