//! `ringwire-bench wait-quiet`: waits, for a bounded time, until the
//! machine is quiet by [`crate::validity`]'s rule, so a benchmark script
//! started right after a build does not measure the build's tail. The
//! script goes ahead either way; its report says whether the run was quiet.

use crate::sys::loadavg;
use crate::validity::{self, Machine};
use clap::Args;
use std::time::{Duration, Instant};

/// Arguments of `ringwire-bench wait-quiet`.
#[derive(Debug, Clone, Args)]
pub struct WaitQuietArgs {
    /// Give up after this many seconds (0: only report).
    #[arg(long, default_value_t = 300)]
    pub max_s: u64,
    /// Seconds between two looks at `/proc/loadavg`.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub every_s: u64,
}

/// Waits until the 1-minute load average is below the quiet limit or
/// `--max-s` passed; prints what it saw. Never fails on a busy machine.
pub fn run(args: WaitQuietArgs) -> crate::CmdResult {
    let start = Instant::now();
    let limit = Duration::from_secs(args.max_s);
    let mut last_note = None::<Instant>;
    loop {
        let verdict = validity::machine(loadavg::now());
        match verdict {
            Machine::Quiet(_) | Machine::Unknown => {
                println!("wait-quiet: {verdict}");
                return Ok(());
            }
            Machine::Contended(l) if start.elapsed() >= limit => {
                println!(
                    "wait-quiet: load average {:.2} after {} s: going ahead; the report will say contended",
                    l.one, args.max_s
                );
                return Ok(());
            }
            Machine::Contended(l) => {
                if last_note.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
                    println!(
                        "wait-quiet: load average {:.2}, waiting for below {} (at most {} s)",
                        l.one,
                        validity::QUIET_LOADAVG,
                        args.max_s
                    );
                    last_note = Some(Instant::now());
                }
                let left = limit.saturating_sub(start.elapsed());
                std::thread::sleep(Duration::from_secs(args.every_s).min(left));
            }
        }
    }
}
