//! SIGHUP: re-read the config file and apply what can change without a restart (the log
//! filter, the stats interval, the drain and shutdown deadlines); say which other changes wait
//! for a restart. A bad file changes nothing, and nothing here stops the engine.
#![forbid(unsafe_code)]

use ringwire::config::Resolved;

use super::logging::Logging;
use super::output::note;
use super::run::Settings;

/// What SIGHUP needs: how to load the config again (with the command line's overrides) and
/// the log filter to change.
pub struct Reloader {
    load: Box<dyn Fn() -> Result<Resolved, Vec<String>>>,
    has_file: bool,
    logging: Logging,
}

impl Reloader {
    pub fn new(
        load: Box<dyn Fn() -> Result<Resolved, Vec<String>>>,
        has_file: bool,
        logging: Logging,
    ) -> Self {
        Self {
            load,
            has_file,
            logging,
        }
    }

    /// Applies the config's `log` directives (at start, and on SIGHUP).
    pub fn apply_log(&self, directives: &str) {
        match self.logging.apply(directives) {
            Ok("applied") => {}
            Ok(note) => tracing::info!("log = {directives:?} not applied: {note}"),
            Err(e) => note!("ringwire: log = {directives:?} not applied: {e}"),
        }
    }

    /// Reloads; returns the new settings if the file was read and valid.
    pub fn reload(&self, running: &Resolved, settings: &Settings) -> Option<Settings> {
        if !self.has_file {
            note!("ringwire: SIGHUP: no config file to reload (started without --config); ignored");
            return None;
        }
        let new = match (self.load)() {
            Ok(r) => r,
            Err(errors) => {
                for e in errors {
                    note!("ringwire: SIGHUP: config not reloaded: {e}");
                }
                return None;
            }
        };
        self.apply_log(&new.log);
        let mut restart = Vec::new();
        let mut differs = |name: &'static str, changed: bool| {
            if changed {
                restart.push(name);
            }
        };
        differs("bind", new.bind != running.bind);
        differs("shards", new.shards != running.shards);
        differs("cores/pin", new.cores != running.cores);
        differs("app", new.app != running.app);
        differs("steering", new.steering != running.steering);
        differs("metrics_addr", new.metrics_addr != running.metrics_addr);
        differs("[shard]", new.shard != running.shard);
        differs("[sessions]", new.sessions != running.sessions);
        differs("[security]", new.security != running.security);
        differs("[quic]", new.quic != running.quic);
        if !restart.is_empty() {
            note!(
                "ringwire: SIGHUP: {} changed; that takes a restart (the running values stay)",
                restart.join(", ")
            );
        }
        let reloaded = Settings::from(&new);
        note!(
            "ringwire: SIGHUP: reloaded log={:?} stats_interval={:?} drain_timeout={:?} \
             shutdown_timeout={:?} (was {:?} {:?} {:?})",
            new.log,
            reloaded.stats_interval,
            reloaded.drain_timeout,
            reloaded.shutdown_timeout,
            settings.stats_interval,
            settings.drain_timeout,
            settings.shutdown_timeout,
        );
        Some(reloaded)
    }
}
