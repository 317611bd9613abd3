//! The TOML config: where to bind, how many shards on which cores, which app, and shard tuning.
//!
//! Unknown keys are rejected, and every invalid value is reported with its key and what is
//! allowed, so a typo never silently falls back to a default. See `docs/CONFIG.md` and the
//! annotated `ringwire.example.toml`.
#![forbid(unsafe_code)]

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ringwire_shard::ShardConfig;
use ringwire_shard::session::EndpointConfig;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::apps::AppKind;
pub use crate::cores::Cores;
use crate::cores::{self, CoreError};

/// How many shards to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shards {
    /// One per core in [`Config::cores`].
    #[default]
    Auto,
    /// Exactly this many.
    Count(usize),
}

/// The whole config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address every shard's socket binds (`SO_REUSEPORT`), e.g. `"0.0.0.0:4500"`.
    pub bind: String,
    /// Number of shards: a positive integer or `"auto"`.
    pub shards: Shards,
    /// Cores to pin shards to: `"auto"` or a list of CPU ids.
    pub cores: Cores,
    /// Pin each shard thread to its core.
    pub pin: bool,
    /// The built-in application: `"echo"`, `"sockperf"`, `"relay"` or `"session-echo"`.
    pub app: String,
    /// Kernel steering of session datagrams to their owning shard: `"auto"` (on for session
    /// apps), `"on"` or `"off"`.
    pub steering: String,
    /// Print every shard's counters every this many seconds (0: only at shutdown).
    pub stats_interval_secs: u64,
    /// How long shutdown waits for every shard to stop, in milliseconds.
    pub shutdown_timeout_ms: u64,
    /// Per-shard tuning.
    pub shard: ShardSection,
}

/// The `[shard]` table: per-shard tuning (see [`ShardConfig`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShardSection {
    /// Receive buffers in the provided-buffer ring (power of two, 1..=32768).
    pub recv_buffers: u32,
    /// Largest datagram payload in bytes (64..=65507).
    pub max_datagram: usize,
    /// Sends in flight at once (1..=65536).
    pub send_slots: usize,
    /// io_uring submission queue entries (power of two, 8..=32768).
    pub sq_entries: u32,
    /// Requested `SO_RCVBUF` in bytes (0: system default).
    pub socket_recv_buffer: usize,
    /// Requested `SO_SNDBUF` in bytes (0: system default).
    pub socket_send_buffer: usize,
    /// Most timers a shard's handler may hold at once.
    pub max_timers: usize,
    /// How long a stopping shard waits for in-flight operations, in milliseconds.
    pub drain_timeout_ms: u64,
    /// How a shard wakes a parked peer: `"eventfd"` or `"msg_ring"`.
    pub wake: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:4500".to_string(),
            shards: Shards::Auto,
            cores: Cores::Auto,
            pin: true,
            app: "echo".to_string(),
            steering: "auto".to_string(),
            stats_interval_secs: 0,
            shutdown_timeout_ms: 2000,
            shard: ShardSection::default(),
        }
    }
}

impl Default for ShardSection {
    fn default() -> Self {
        let d = ShardConfig::default();
        Self {
            recv_buffers: d.recv_buffers,
            max_datagram: d.max_datagram,
            send_slots: d.send_slots,
            sq_entries: d.sq_entries,
            socket_recv_buffer: d.socket_recv_buffer,
            socket_send_buffer: d.socket_send_buffer,
            max_timers: d.max_timers,
            drain_timeout_ms: d.drain_timeout.as_millis() as u64,
            wake: "eventfd".to_string(),
        }
    }
}

/// A config that cannot be used. Each variant names the key and what is allowed.
#[derive(Debug, thiserror::Error)]
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
    fn invalid(key: &str, value: impl fmt::Display, allowed: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.to_string(),
            value: value.to_string(),
            allowed: allowed.into(),
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

/// A config checked and resolved into what the engine runs.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Per-shard tuning.
    pub shard: ShardConfig,
}

/// Most shards one engine runs.
pub const MAX_SHARDS: usize = 1024;

impl Config {
    /// Reads and parses a TOML file.
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

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: "<text>".to_string(),
            message: e.to_string().trim_end().to_string(),
        })
    }

    /// Checks every value and resolves `auto` settings against this process's affinity mask.
    pub fn resolve(&self) -> Result<Resolved, ConfigError> {
        let bind: SocketAddr = self.bind.parse().map_err(|_| {
            ConfigError::invalid(
                "bind",
                format!("{:?}", self.bind),
                "an IP socket address such as \"127.0.0.1:4500\" or \"[::]:4500\"",
            )
        })?;
        let app: AppKind = self.app.parse().map_err(|_| {
            ConfigError::invalid("app", format!("{:?}", self.app), AppKind::ALLOWED)
        })?;
        let available = if self.pin || matches!(self.cores, Cores::List(_)) {
            Some(cores::select(&self.cores)?)
        } else {
            None
        };
        let shards = match self.shards {
            Shards::Count(0) => {
                return Err(ConfigError::invalid(
                    "shards",
                    0,
                    format!("1 to {MAX_SHARDS}, or \"auto\""),
                ));
            }
            Shards::Count(n) if n > MAX_SHARDS => {
                return Err(ConfigError::invalid(
                    "shards",
                    n,
                    format!("1 to {MAX_SHARDS}, or \"auto\""),
                ));
            }
            Shards::Count(n) => n,
            Shards::Auto => match &available {
                Some(list) => list.len(),
                None => std::thread::available_parallelism().map_or(1, |n| n.get()),
            },
        };
        let steering = match self.steering.as_str() {
            "auto" => app.uses_sessions(),
            "on" => true,
            "off" => false,
            other => {
                return Err(ConfigError::invalid(
                    "steering",
                    format!("{other:?}"),
                    "\"auto\" (on for session apps), \"on\" or \"off\"",
                ));
            }
        };
        if app.uses_sessions() && shards > 256 {
            return Err(ConfigError::invalid(
                "shards",
                shards,
                "1 to 256 with a session app (a connection ID names its shard in one byte)",
            ));
        }
        let cores = (0..shards)
            .map(|i| match (&available, self.pin) {
                (Some(list), true) => Some(list[i % list.len()]),
                _ => None,
            })
            .collect();
        if self.shutdown_timeout_ms == 0 {
            return Err(ConfigError::invalid(
                "shutdown_timeout_ms",
                0,
                "at least 1 (milliseconds)",
            ));
        }
        let s = &self.shard;
        let msg_ring_wake = match s.wake.as_str() {
            "eventfd" => false,
            "msg_ring" => true,
            other => {
                return Err(ConfigError::invalid(
                    "shard.wake",
                    format!("{other:?}"),
                    "\"eventfd\" or \"msg_ring\"",
                ));
            }
        };
        let shard = ShardConfig {
            recv_buffers: s.recv_buffers,
            max_datagram: s.max_datagram,
            send_slots: s.send_slots,
            sq_entries: s.sq_entries,
            socket_recv_buffer: s.socket_recv_buffer,
            socket_send_buffer: s.socket_send_buffer,
            max_timers: s.max_timers,
            drain_timeout: Duration::from_millis(s.drain_timeout_ms),
            msg_ring_wake,
        };
        shard
            .validate()
            .map_err(|e| ConfigError::invalid(&format!("shard.{}", e.key), e.value, e.allowed))?;
        // A session app's largest datagram (header + the binary's default max payload) must
        // fit the shard's, or Data above `max_datagram - 20` bytes would silently never pass.
        let session_datagram = EndpointConfig::datagram_size(EndpointConfig::DEFAULT_MAX_PAYLOAD);
        if app.uses_sessions() && shard.max_datagram < session_datagram {
            return Err(ConfigError::invalid(
                "shard.max_datagram",
                shard.max_datagram,
                format!(
                    "at least {session_datagram} with a session app (the session layer's \
                     largest datagram), up to 65507"
                ),
            ));
        }
        Ok(Resolved {
            bind,
            shards,
            cores,
            app,
            steering,
            stats_interval: (self.stats_interval_secs > 0)
                .then(|| Duration::from_secs(self.stats_interval_secs)),
            shutdown_timeout: Duration::from_millis(self.shutdown_timeout_ms),
            shard,
        })
    }
}

impl<'de> Deserialize<'de> for Shards {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
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

#[cfg(test)]
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
        assert!(err("app = \"redis\"").contains("`app`"));
        assert!(err("cores = [100000]").contains("`cores` = 100000"));
        assert!(err("cores = []").contains("`cores`"));
        assert!(err("[shard]\nrecv_buffers = 3").contains("`shard.recv_buffers` = 3"));
        assert!(err("shutdown_timeout_ms = 0").contains("shutdown_timeout_ms"));
        assert!(err("steering = \"yes\"").contains("`steering`"));
        assert!(err("[shard]\nwake = \"futex\"").contains("`shard.wake`"));
        assert!(err("app = \"relay\"\nshards = 300\npin = false").contains("1 to 256"));
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
    fn more_shards_than_cores_wrap_around() {
        let mask = cores::affinity_mask().unwrap();
        let r = Config::from_toml(&format!("shards = {}", mask.len() * 2))
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(r.cores[0], r.cores[mask.len()]);
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
