//! The TOML config: where to bind, how many shards on which cores, which app, and shard tuning.
//!
//! Unknown keys are rejected, and every invalid value is reported with its key and what is
//! allowed, so a typo never silently falls back to a default. [`Config::check_toml`] reports
//! every problem of a file at once (`ringwire config check`), not just the first. See
//! `docs/CONFIG.md` and the annotated `ringwire.example.toml` (also `ringwire config default`).
#![forbid(unsafe_code)]

use std::fmt;
use std::net::SocketAddr;
#[cfg(feature = "cli")]
use std::path::Path;
use std::time::Duration;

use ringwire_shard::ShardConfig;
use ringwire_shard::session::EndpointConfig;

mod sessions;

pub use sessions::{AdmissionTable, ManagerTable, SessionsConfig, SessionsSettings};

use crate::apps::AppKind;
pub use crate::cores::Cores;
use crate::cores::{self, CoreError};
use crate::quic_settings::QuicSettings;
pub use crate::security::{ResolvedSecurity, SecurityConfig, SecurityMode};

/// How many shards to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shards {
    /// One per core in [`Config::cores`].
    #[default]
    Auto,
    /// Exactly this many.
    Count(usize),
}

/// Whether to attach the classic-BPF reuseport program that steers each session datagram
/// to the shard named in its connection ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(rename_all = "lowercase")
)]
#[non_exhaustive]
pub enum Steering {
    /// On for session apps, off for the others.
    #[default]
    Auto,
    /// Always attach it.
    On,
    /// Never attach it (the kernel's 4-tuple hash picks the shard).
    Off,
}

impl Steering {
    /// The accepted names, for error messages.
    pub const ALLOWED: &'static str = "\"auto\" (on for session apps), \"on\" or \"off\"";
}

impl std::str::FromStr for Steering {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Steering::Auto),
            "on" => Ok(Steering::On),
            "off" => Ok(Steering::Off),
            other => Err(format!(
                "unknown steering {other:?}: allowed {}",
                Steering::ALLOWED
            )),
        }
    }
}

impl fmt::Display for Steering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Steering::Auto => "auto",
            Steering::On => "on",
            Steering::Off => "off",
        })
    }
}

/// The whole config file (with the `serde` feature, any TOML/JSON/... table that holds these
/// keys: a gateway can embed it as a `[ringwire]` table in its own config).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(deny_unknown_fields, default)
)]
#[non_exhaustive]
pub struct Config {
    /// Address every shard's socket binds (`SO_REUSEPORT`), e.g. `"0.0.0.0:4500"`.
    pub bind: String,
    /// Number of shards: a positive integer or `"auto"`.
    pub shards: Shards,
    /// Cores to pin shards to: `"auto"` or a list of CPU ids.
    pub cores: Cores,
    /// Pin each shard thread to its core.
    pub pin: bool,
    /// The built-in application (`ringwire serve` only).
    pub app: AppKind,
    /// Kernel steering of session datagrams to their owning shard.
    pub steering: Steering,
    /// Print every shard's counters every this many seconds (0: only at shutdown).
    pub stats_interval_secs: u64,
    /// How long shutdown waits for every shard to stop, in milliseconds.
    pub shutdown_timeout_ms: u64,
    /// How long a graceful drain (SIGTERM) may take, from the signal to the exit, in
    /// milliseconds.
    pub drain_timeout_ms: u64,
    /// Where to serve Prometheus metrics (`/metrics`) and the live JSON view (`/stats.json`,
    /// `/sessions.json`), e.g. `"127.0.0.1:9464"`; absent: off.
    pub metrics_addr: Option<String>,
    /// Log filter (`tracing` directives such as `"info"` or `"warn,ringwire=debug"`); the
    /// `RUST_LOG` environment variable overrides it. Reloaded on SIGHUP.
    pub log: String,
    /// Per-shard tuning: the `[shard]` table.
    pub shard: ShardConfig,
    /// Admission control and the connection manager of a session app: the
    /// `[sessions.admission]` and `[sessions.manager]` tables.
    pub sessions: SessionsConfig,
    /// How session apps protect their sessions: the `[security]` table.
    pub security: SecurityConfig,
    /// The QUIC apps' settings: the `[quic]` table.
    pub quic: QuicSettings,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:4500".to_string(),
            shards: Shards::Auto,
            cores: Cores::Auto,
            pin: true,
            app: AppKind::Echo,
            steering: Steering::Auto,
            stats_interval_secs: 0,
            shutdown_timeout_ms: 2000,
            drain_timeout_ms: 5000,
            metrics_addr: None,
            log: "warn".to_string(),
            shard: ShardConfig::default(),
            sessions: SessionsConfig::default(),
            security: SecurityConfig::default(),
            quic: QuicSettings::default(),
        }
    }
}

/// A config that cannot be used. Each variant names the key and what is allowed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The path given.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or has an unknown key or a value of the wrong type.
    #[error("invalid config {path}: {message}")]
    Parse {
        /// The path given.
        path: String,
        /// The parser's message, which names the key and its line.
        message: String,
    },
    /// A value is out of its allowed range.
    #[error("invalid `{key}` = {value}: allowed {allowed}")]
    Invalid {
        /// The key, as spelled in the file (`shard.` prefix for the `[shard]` table).
        key: String,
        /// The rejected value.
        value: String,
        /// What would be accepted.
        allowed: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(key: &str, value: impl fmt::Display, allowed: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.to_string(),
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }
}

/// Where one table of the file (`[shard]`, `[sessions.admission]`, `[security]`, `[quic]`, ...)
/// records its invalid values: each key is named with the table's path
/// (`sessions.admission.max_sessions_shard`).
pub(crate) struct TableErrors<'a> {
    table: &'static str,
    errors: &'a mut Vec<ConfigError>,
}

impl<'a> TableErrors<'a> {
    /// The errors of `table`, appended to `errors`.
    pub(crate) fn new(table: &'static str, errors: &'a mut Vec<ConfigError>) -> Self {
        Self { table, errors }
    }

    /// `key` (within the table) = `value` is not allowed.
    pub(crate) fn invalid(
        &mut self,
        key: &str,
        value: impl fmt::Display,
        allowed: impl Into<String>,
    ) {
        let key = format!("{}.{key}", self.table);
        self.errors.push(ConfigError::invalid(&key, value, allowed));
    }

    /// Every `(key, value, allowed)` a table's own check found (`ShardConfig::check`,
    /// `QuicSettings::check`, the session layer's `validate`).
    pub(crate) fn extend<V: fmt::Display, A: Into<String>>(
        &mut self,
        found: impl IntoIterator<Item = (&'static str, V, A)>,
    ) {
        for (key, value, allowed) in found {
            self.invalid(key, value, allowed);
        }
    }
}

impl From<CoreError> for ConfigError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::OutsideMask { core, mask } => ConfigError::invalid(
                "cores",
                core,
                format!("CPU ids in this process's affinity mask {mask:?}"),
            ),
            CoreError::Empty => {
                ConfigError::invalid("cores", "[]", "\"auto\" or a non-empty list of CPU ids")
            }
            CoreError::NoAffinity => ConfigError::invalid(
                "cores",
                "\"auto\"",
                "a CPU list or pin = false: this process's affinity mask could not be read",
            ),
        }
    }
}

/// Why [`Config::parse_all`] failed: every key that did not parse, and the config made of the
/// keys that did (`None` when the text is not TOML at all).
#[derive(Debug)]
#[non_exhaustive]
pub struct ParseErrors {
    /// One per key that did not parse.
    pub errors: Vec<ConfigError>,
    /// The keys that parsed, over the defaults.
    pub partial: Option<Box<Config>>,
}

/// A config checked and resolved into what the engine runs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Resolved {
    /// The bind address.
    pub bind: SocketAddr,
    /// Number of shards.
    pub shards: usize,
    /// Core for each shard (`None` when pinning is off).
    pub cores: Vec<Option<usize>>,
    /// The app.
    pub app: AppKind,
    /// Whether to attach the steering program.
    pub steering: bool,
    /// Stats printing interval (`None`: only at shutdown).
    pub stats_interval: Option<Duration>,
    /// Shutdown deadline.
    pub shutdown_timeout: Duration,
    /// Graceful drain deadline, from SIGTERM to the exit.
    pub drain_timeout: Duration,
    /// Where to serve metrics, if anywhere.
    pub metrics_addr: Option<SocketAddr>,
    /// The log filter.
    pub log: String,
    /// Per-shard tuning.
    pub shard: ShardConfig,
    /// Admission control and the connection manager (session apps).
    pub sessions: SessionsSettings,
    /// Session protection (key files named, not read: [`ResolvedSecurity::load`]).
    pub security: ResolvedSecurity,
    /// The QUIC apps' settings.
    pub quic: QuicSettings,
    /// Things that work but are probably not what was meant (a core listed twice...).
    pub warnings: Vec<String>,
}

/// The largest UDP payload a QUIC app's endpoint accepts (quinn's default
/// `max_udp_payload_size`, announced to peers): the shard must receive datagrams that large.
pub const QUIC_DATAGRAM: usize = 1472;

/// Most shards one engine runs.
pub const MAX_SHARDS: usize = 1024;

impl Config {
    /// Reads and parses a TOML file (feature `cli`).
    #[cfg(feature = "cli")]
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    /// Parses TOML text (feature `cli`).
    #[cfg(feature = "cli")]
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: "<text>".to_string(),
            message: e.to_string().trim_end().to_string(),
        })
    }

    /// Parses TOML text and checks it, reporting every problem at once: each key that does
    /// not parse ([`Config::parse_all`]), then every value out of range
    /// ([`Config::resolve_all`]) among the keys that did parse. Feature `cli`.
    #[cfg(feature = "cli")]
    pub fn check_toml(text: &str) -> Result<Resolved, Vec<ConfigError>> {
        match Self::parse_all(text) {
            Ok(config) => config.resolve_all(),
            Err(ParseErrors {
                mut errors,
                partial,
            }) => {
                if let Some(config) = partial
                    && let Err(more) = config.resolve_all()
                {
                    errors.extend(more);
                }
                Err(errors)
            }
        }
    }

    /// Parses TOML text, reporting every key that does not parse (an unknown key, a value of
    /// the wrong type), not just the first: the parser stops at its first error, so each key
    /// is parsed alone. On errors, also returns the config made of the keys that did parse
    /// (`None` if the text is not TOML at all), so that their values can be checked too.
    /// Feature `cli`.
    #[cfg(feature = "cli")]
    pub fn parse_all(text: &str) -> Result<Config, ParseErrors> {
        let parse_error = |message: String| ConfigError::Parse {
            path: "<text>".to_string(),
            message: message.trim_end().to_string(),
        };
        let table: toml::Table = match toml::from_str(text) {
            Ok(t) => t,
            // Not TOML at all (a syntax error): nothing more can be checked.
            Err(e) => {
                return Err(ParseErrors {
                    errors: vec![parse_error(e.to_string())],
                    partial: None,
                });
            }
        };
        let mut errors = Vec::new();
        let mut good = toml::Table::new();
        for (key, value) in table {
            let tables = match (key.as_str(), value) {
                ("shard" | "sessions" | "security" | "quic", toml::Value::Table(table)) => {
                    leaves(table)
                }
                (_, value) => vec![value],
            };
            for value in tables {
                let mut one = toml::Table::new();
                one.insert(key.clone(), value);
                match one.clone().try_into::<Config>() {
                    Ok(_) => merge(&mut good, one),
                    Err(e) => errors.push(parse_error(format!("`{key}`: {e}"))),
                }
            }
        }
        match good.try_into::<Config>() {
            Ok(config) if errors.is_empty() => Ok(config),
            Ok(config) => Err(ParseErrors {
                errors,
                partial: Some(Box::new(config)),
            }),
            Err(e) => {
                errors.push(parse_error(e.to_string()));
                Err(ParseErrors {
                    errors,
                    partial: None,
                })
            }
        }
    }

    /// Checks every value and resolves `auto` settings against this process's affinity mask;
    /// the first error ([`Config::resolve_all`] has them all).
    pub fn resolve(&self) -> Result<Resolved, ConfigError> {
        self.resolve_all().map_err(|mut errors| errors.remove(0))
    }

    /// Checks every value and resolves `auto` settings against this process's affinity mask;
    /// every error, in key order (never an empty list).
    pub fn resolve_all(&self) -> Result<Resolved, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let bind: Option<SocketAddr> = match self.bind.parse() {
            Ok(b) => Some(b),
            Err(_) => {
                errors.push(ConfigError::invalid(
                    "bind",
                    format!("{:?}", self.bind),
                    "an IP socket address such as \"127.0.0.1:4500\" or \"[::]:4500\"",
                ));
                None
            }
        };
        let app = self.app;
        let available = if self.pin || matches!(self.cores, Cores::List(_)) {
            match cores::select(&self.cores) {
                Ok(list) => Some(list),
                Err(e) => {
                    errors.push(e.into());
                    None
                }
            }
        } else {
            None
        };
        if let Cores::List(list) = &self.cores {
            let mut seen = std::collections::BTreeMap::new();
            for (i, core) in list.iter().enumerate() {
                seen.entry(*core).or_insert_with(Vec::new).push(i);
            }
            for (core, at) in seen.iter().filter(|(_, at)| at.len() > 1) {
                warnings.push(format!(
                    "`cores` lists CPU {core} {} times (positions {at:?}): the shards pinned there \
                     share one core and take turns on it",
                    at.len()
                ));
            }
            if !self.pin {
                warnings.push("`cores` is ignored with pin = false (--no-pin)".to_string());
            }
        }
        let shards = match self.shards {
            Shards::Count(n) if n == 0 || n > MAX_SHARDS => {
                errors.push(ConfigError::invalid(
                    "shards",
                    n,
                    format!("1 to {MAX_SHARDS}, or \"auto\""),
                ));
                None
            }
            Shards::Count(n) => Some(n),
            Shards::Auto => match &available {
                Some(list) => Some(list.len()),
                None if self.pin => None,
                None => Some(std::thread::available_parallelism().map_or(1, |n| n.get())),
            },
        };
        // Pinned shards beyond the cores to pin to would share cores: every extra shard costs
        // its buffers and a thread for no parallelism (1,024 shards on 2 cores held 3 GB idle).
        if let (Some(n), Some(list), true) = (shards, &available, self.pin)
            && n > list.len()
        {
            errors.push(ConfigError::invalid(
                "shards",
                n,
                format!(
                    "at most {} with pin = true (one shard per core in `cores`, {list:?}); \
                     lower `shards`, list more cores, or set pin = false (--no-pin) to run \
                     more shards than cores on purpose",
                    list.len()
                ),
            ));
        }
        if let Some(n) = shards
            && app.uses_sessions()
            && n > 256
        {
            errors.push(ConfigError::invalid(
                "shards",
                n,
                "1 to 256 with a session app (a connection ID names its shard in one byte)",
            ));
        }
        if app.uses_quic() {
            if let Some(n) = shards
                && n > 256
            {
                errors.push(ConfigError::invalid(
                    "shards",
                    n,
                    "1 to 256 with a QUIC app (a connection ID names its shard in one byte)",
                ));
            }
            TableErrors::new("quic", &mut errors).extend(self.quic.check());
            if let Err(es) = self.quic.conn_control() {
                errors.extend(es);
            }
            if self.shard.max_datagram < QUIC_DATAGRAM {
                errors.push(ConfigError::invalid(
                    "shard.max_datagram",
                    self.shard.max_datagram,
                    format!(
                        "at least {QUIC_DATAGRAM} with a QUIC app (the largest UDP payload the \
                         server's QUIC endpoint accepts), up to 65507"
                    ),
                ));
            }
        }
        let steering = match self.steering {
            Steering::Auto => app.uses_sessions() || app.uses_quic(),
            Steering::On => true,
            Steering::Off => false,
        };
        if self.shutdown_timeout_ms == 0 {
            errors.push(ConfigError::invalid(
                "shutdown_timeout_ms",
                0,
                "at least 1 (milliseconds)",
            ));
        }
        if self.drain_timeout_ms == 0 {
            errors.push(ConfigError::invalid(
                "drain_timeout_ms",
                0,
                "at least 1 (milliseconds)",
            ));
        }
        let metrics_addr = match &self.metrics_addr {
            None => None,
            Some(a) => match a.parse::<SocketAddr>() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    errors.push(ConfigError::invalid(
                        "metrics_addr",
                        format!("{a:?}"),
                        "an IP socket address such as \"127.0.0.1:9464\"",
                    ));
                    None
                }
            },
        };
        #[cfg(feature = "cli")]
        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&self.log) {
            errors.push(ConfigError::invalid(
                "log",
                format!("{:?}", self.log),
                format!(
                    "tracing filter directives such as \"info\" or \"warn,ringwire=debug\" ({e})"
                ),
            ));
        }
        let shard = self.shard.clone();
        TableErrors::new("shard", &mut errors).extend(
            shard
                .check()
                .into_iter()
                .map(|e| (e.key, e.value, e.allowed)),
        );
        // A session app's largest datagram (header + the binary's default max payload) must
        // fit the shard's, or Data above `max_datagram - 20` bytes would silently never pass.
        let session_datagram = EndpointConfig::datagram_size(EndpointConfig::DEFAULT_MAX_PAYLOAD);
        if app.uses_sessions() && shard.max_datagram < session_datagram {
            errors.push(ConfigError::invalid(
                "shard.max_datagram",
                shard.max_datagram,
                format!(
                    "at least {session_datagram} with a session app (the session layer's \
                     largest datagram), up to 65507"
                ),
            ));
        }
        let sessions = match self.sessions.resolve() {
            Ok(s) => Some(s),
            Err(e) => {
                errors.extend(e);
                None
            }
        };
        let security = self.security.resolve(&mut errors, &mut warnings);
        let (Some(bind), Some(shards), Some(sessions), Some(security), true) =
            (bind, shards, sessions, security, errors.is_empty())
        else {
            return Err(errors);
        };
        let cores = (0..shards)
            .map(|i| match (&available, self.pin) {
                (Some(list), true) => Some(list[i % list.len()]),
                _ => None,
            })
            .collect();
        Ok(Resolved {
            bind,
            shards,
            cores,
            app,
            steering,
            stats_interval: (self.stats_interval_secs > 0)
                .then(|| Duration::from_secs(self.stats_interval_secs)),
            shutdown_timeout: Duration::from_millis(self.shutdown_timeout_ms),
            drain_timeout: Duration::from_millis(self.drain_timeout_ms),
            metrics_addr,
            log: self.log.clone(),
            shard,
            sessions,
            security,
            quic: self.quic.clone(),
            warnings,
        })
    }
}

/// Adds `one`'s keys to `into`, merging tables (`[shard]`, `[security]`,
/// `[sessions.admission]`...) key by key.
#[cfg(feature = "cli")]
fn merge(into: &mut toml::Table, one: toml::Table) {
    for (key, value) in one {
        match (into.get_mut(&key), value) {
            (Some(toml::Value::Table(have)), toml::Value::Table(more)) => merge(have, more),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

/// Each leaf key of `table` alone, in its nesting (`{admission = {x = 1}}`), so that each is
/// parsed, and its error reported, on its own.
#[cfg(feature = "cli")]
fn leaves(table: toml::Table) -> Vec<toml::Value> {
    let mut out = Vec::new();
    for (k, v) in table {
        let inner = match v {
            toml::Value::Table(t) => leaves(t),
            v => vec![v],
        };
        for v in inner {
            let mut t = toml::Table::new();
            t.insert(k.clone(), v);
            out.push(toml::Value::Table(t));
        }
    }
    out
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Shards {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{self, Visitor};
        struct V;
        impl Visitor<'_> for V {
            type Value = Shards;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a positive integer or \"auto\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Shards, E> {
                usize::try_from(v)
                    .map(Shards::Count)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Shards, E> {
                usize::try_from(v)
                    .map(Shards::Count)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Shards, E> {
                if v == "auto" {
                    Ok(Shards::Auto)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl std::str::FromStr for Shards {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "auto" {
            return Ok(Shards::Auto);
        }
        s.parse()
            .map(Shards::Count)
            .map_err(|_| format!("{s:?} is not a positive integer or \"auto\""))
    }
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        match Config::from_toml(text).and_then(|c| c.resolve()) {
            Ok(r) => panic!("accepted: {r:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn example_config_parses_and_resolves() {
        let text = include_str!("../../ringwire.example.toml");
        let cfg = Config::from_toml(text).unwrap();
        let r = cfg.resolve().unwrap();
        assert!(r.shards >= 1);
        assert_eq!(r.app, AppKind::Echo);
    }

    #[test]
    fn defaults_resolve() {
        let r = Config::from_toml("").unwrap().resolve().unwrap();
        assert_eq!(r.bind, "127.0.0.1:4500".parse().unwrap());
        assert_eq!(r.shards, r.cores.len());
        assert!(r.cores.iter().all(Option::is_some));
    }

    #[test]
    fn each_bad_value_names_its_key() {
        assert!(err("nonsense = 1").contains("unknown field `nonsense`"));
        assert!(err("[shard]\nrecv_bufers = 8").contains("unknown field `recv_bufers`"));
        assert!(err("shards = 0").contains("`shards` = 0"));
        assert!(err("shards = \"many\"").contains("a positive integer or \"auto\""));
        assert!(err("bind = \"localhost\"").contains("`bind`"));
        let app = err("app = \"redis\"");
        assert!(app.contains("app = \"redis\"") && app.contains("expected one of `echo`"));
        assert!(err("cores = [100000]").contains("`cores` = 100000"));
        assert!(err("cores = []").contains("`cores`"));
        assert!(err("[shard]\nrecv_buffers = 3").contains("`shard.recv_buffers` = 3"));
        assert!(err("shutdown_timeout_ms = 0").contains("shutdown_timeout_ms"));
        let steering = err("steering = \"yes\"");
        assert!(
            steering.contains("steering = \"yes\"") && steering.contains("`auto`, `on`, `off`")
        );
        let wake = err("[shard]\nwake = \"condvar\"");
        assert!(
            wake.contains("wake = \"condvar\"")
                && wake.contains("expected one of `eventfd`, `msg_ring`, `futex`"),
            "{wake}"
        );
        assert!(err("app = \"relay\"\nshards = 300\npin = false").contains("1 to 256"));
        let gso = err("[shard]\ngso = \"yes\"");
        assert!(
            gso.contains("gso = \"yes\"") && gso.contains("`auto`, `on`, `off`"),
            "{gso}"
        );
        assert!(err("[shard]\ngro_buffers = 100").contains("`shard.gro_buffers` = 100"));
    }

    #[test]
    fn session_apps_need_room_for_the_session_datagram() {
        let need = EndpointConfig::datagram_size(EndpointConfig::DEFAULT_MAX_PAYLOAD);
        for app in ["relay", "session-echo"] {
            let e = err(&format!(
                "app = \"{app}\"\npin = false\n[shard]\nmax_datagram = 64"
            ));
            assert!(e.contains("`shard.max_datagram` = 64"), "{e}");
            assert!(e.contains(&format!("at least {need}")), "{e}");
            let ok = format!("app = \"{app}\"\npin = false\n[shard]\nmax_datagram = {need}");
            Config::from_toml(&ok).unwrap().resolve().unwrap();
        }
        // Plain datagram apps keep the 64-byte floor.
        let r = Config::from_toml("pin = false\n[shard]\nmax_datagram = 64")
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(r.shard.max_datagram, 64);
    }

    #[test]
    fn unpinned_explicit_counts_need_no_mask() {
        let r = Config::from_toml("pin = false\nshards = 3")
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(r.shards, 3);
        assert_eq!(r.cores, vec![None, None, None]);
    }

    #[test]
    fn more_pinned_shards_than_cores_are_refused_unless_unpinned() {
        let mask = cores::affinity_mask().unwrap();
        let e = err(&format!("shards = {}", mask.len() * 2));
        assert!(e.contains(&format!("`shards` = {}", mask.len() * 2)), "{e}");
        assert!(e.contains("pin = false"), "{e}");
        let r = Config::from_toml(&format!("shards = {}\npin = false", mask.len() * 2))
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(r.shards, mask.len() * 2);
        assert!(r.cores.iter().all(Option::is_none));
    }

    #[test]
    fn a_core_listed_twice_is_a_warning() {
        let r = Config::from_toml("cores = [0, 0]")
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(r.shards, 2);
        assert_eq!(r.cores, vec![Some(0), Some(0)]);
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
        assert!(r.warnings[0].contains("CPU 0 2 times"), "{:?}", r.warnings);
    }

    #[test]
    fn check_reports_every_error_at_once() {
        let text = "shardz = 2\nshards = 0\ndrain_timeout_ms = \"soon\"\n[shard]\n\
                    recv_buffers = 3\nsocket_recv_buffer = 4294967296\nsend_slotz = 1\n";
        let errors: Vec<String> = Config::check_toml(text)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        let all = errors.join("\n");
        for want in [
            "unknown field `shardz`",
            "`drain_timeout_ms`",
            "unknown field `send_slotz`",
            "`shards` = 0",
            "`shard.recv_buffers` = 3",
            "`shard.socket_recv_buffer` = 4294967296",
        ] {
            assert!(all.contains(want), "{want} missing from:\n{all}");
        }
        assert_eq!(errors.len(), 6, "{all}");
        assert!(Config::check_toml("").is_ok());
        assert!(Config::check_toml("this is not toml").unwrap_err().len() == 1);
    }

    #[test]
    fn session_tables_report_every_error_at_once() {
        let text = "[sessions.admission]\nmax_sessions_shard = 0\nmax_sesions_node = 1\n\
                    memory_limit = \"big\"\n[sessions.manager]\nlow_watermark = 300000\n\
                    high_watermark = 300000\n";
        let errors: Vec<String> = Config::check_toml(text)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        let all = errors.join("\n");
        for want in [
            "unknown field `max_sesions_node`",
            "`sessions`",
            "`sessions.admission.max_sessions_shard` = 0",
            "`sessions.manager.high_watermark` = 300000",
        ] {
            assert!(all.contains(want), "{want} missing from:\n{all}");
        }
        assert_eq!(errors.len(), 4, "{all}");
    }

    #[test]
    fn the_example_is_the_default() {
        let text = include_str!("../../ringwire.example.toml");
        assert_eq!(Config::from_toml(text).unwrap(), Config::default());
    }

    #[test]
    fn cli_forms_parse() {
        assert_eq!("auto".parse::<Shards>(), Ok(Shards::Auto));
        assert_eq!("4".parse::<Shards>(), Ok(Shards::Count(4)));
        assert!("x".parse::<Shards>().is_err());
        assert_eq!("0, 1".parse::<Cores>(), Ok(Cores::List(vec![0, 1])));
        assert!("0,a".parse::<Cores>().is_err());
    }
}
