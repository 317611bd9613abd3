//! Says whether this host can run a shard: `cargo run -p ringwire-shard --example probe`.
//!
//! Prints the ring mode and kernel and exits 0, or prints why io_uring cannot be used (disabled,
//! blocked by seccomp, too old) and exits 1. `scripts/test.sh` uses it to decide whether the
//! benchmark smoke run, which needs io_uring, can run.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    match ringwire_shard::driver::probe() {
        Ok(report) => {
            println!(
                "io_uring: usable, mode {}, MSG_RING {}, FUTEX_WAIT {}, kernel {}",
                report.mode,
                if report.msg_ring { "yes" } else { "no" },
                if report.futex_wait { "yes" } else { "no" },
                report.kernel
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("io_uring: unusable: {e}");
            ExitCode::FAILURE
        }
    }
}
