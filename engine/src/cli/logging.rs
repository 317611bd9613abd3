//! Logging: `tracing` events on standard error, with structured fields, filtered by
//! `RUST_LOG` if set, else by the config's `log` (default `warn`), which SIGHUP can change.
#![forbid(unsafe_code)]

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, fmt, reload};

/// The installed subscriber's filter, replaceable while running.
pub struct Logging {
    filter: reload::Handle<EnvFilter, Registry>,
    /// `RUST_LOG` was set: it wins over the config.
    from_env: bool,
}

impl Logging {
    /// Installs the subscriber: `RUST_LOG` if set (and valid), else `warn` until the config's
    /// `log` is applied.
    pub fn init() -> Self {
        let from_env = std::env::var_os("RUST_LOG").is_some();
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
        let (filter, handle) = reload::Layer::new(filter);
        let _ = tracing_subscriber::registry()
            .with(filter)
            // Colour only for a terminal: a journal or a file gets plain text.
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::stderr().is_terminal()),
            )
            .try_init();
        Self {
            filter: handle,
            from_env,
        }
    }

    /// Uses the config's `log` directives, unless `RUST_LOG` is set. Returns what was done.
    pub fn apply(&self, directives: &str) -> Result<&'static str, String> {
        if self.from_env {
            return Ok("RUST_LOG is set and takes precedence over `log`");
        }
        let filter = EnvFilter::builder()
            .parse(directives)
            .map_err(|e| e.to_string())?;
        self.filter.reload(filter).map_err(|e| e.to_string())?;
        Ok("applied")
    }
}
