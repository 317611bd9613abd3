//! `ringwire config check FILE` and `ringwire config default`.
#![forbid(unsafe_code)]

use std::path::Path;
use std::process::ExitCode;

use ringwire::config::Config;

use super::output::{note, out};

/// The annotated default config (the example file; a test checks it equals the defaults).
pub const DEFAULT: &str = include_str!("../../../ringwire.example.toml");

/// Checks `path`: every error (exit status 2) or `ok` with what it resolves to and any
/// warnings (exit status 0).
pub fn check(path: &Path) -> ExitCode {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            note!("ringwire: cannot read config {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    match Config::check_toml(&text) {
        Ok(r) => {
            let cores: Vec<String> = r
                .cores
                .iter()
                .map(|c| c.map_or("-".to_string(), |c| c.to_string()))
                .collect();
            out!(
                "{}: ok: bind={} app={} shards={} cores=[{}] metrics={}",
                path.display(),
                r.bind,
                r.app,
                r.shards,
                cores.join(","),
                r.metrics_addr.map_or("off".to_string(), |a| a.to_string()),
            );
            for w in &r.warnings {
                note!("{}: warning: {w}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            note!("{}: {} error(s):", path.display(), errors.len());
            for e in &errors {
                note!("{}: {e}", path.display());
            }
            ExitCode::from(2)
        }
    }
}

/// Prints the annotated default config.
pub fn default() -> ExitCode {
    out!("{}", DEFAULT.trim_end());
    ExitCode::SUCCESS
}
