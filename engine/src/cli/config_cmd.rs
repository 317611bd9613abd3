//! `ringwire config check FILE` and `ringwire config default`.
#![forbid(unsafe_code)]

use std::path::Path;
use std::process::ExitCode;

use ringwire::config::{Config, SecurityMode};

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
    // Key files are read too (relative paths from the current directory, as `serve` reads
    // them), so a missing or group-readable key is found before the server is started.
    let checked = match Config::check_toml(&text) {
        Ok(r) => match r.security.load() {
            Ok(loaded) => Ok((r, loaded)),
            Err(e) => Err(e.iter().map(ToString::to_string).collect::<Vec<_>>()),
        },
        Err(e) => Err(e.iter().map(ToString::to_string).collect()),
    };
    match checked {
        Ok((r, loaded)) => {
            let cores: Vec<String> = r
                .cores
                .iter()
                .map(|c| c.map_or("-".to_string(), |c| c.to_string()))
                .collect();
            let security = match (r.security.mode, loaded.public) {
                (SecurityMode::Noise, Some(public)) if r.security.key_file.is_some() => {
                    format!("noise key={public}")
                }
                (SecurityMode::Noise, _) => "noise key=generated-per-process".to_string(),
                _ => "none (plaintext)".to_string(),
            };
            out!(
                "{}: ok: bind={} app={} shards={} cores=[{}] metrics={} security={}",
                path.display(),
                r.bind,
                r.app,
                r.shards,
                cores.join(","),
                r.metrics_addr.map_or("off".to_string(), |a| a.to_string()),
                security,
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
