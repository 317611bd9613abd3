//! `ringwire-bench`: load generator, baseline servers and micro-benchmarks.

mod rings;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Cross-core SPSC rings and wake paths against rtrb, ArrayQueue and tokio mpsc.
    Rings(rings::RingsArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Rings(args) => match rings::run(args) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ringwire-bench rings: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
