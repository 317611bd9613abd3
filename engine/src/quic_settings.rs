//! The `[quic]` table of the config file: the QUIC apps' certificate, key, ALPN and limits,
//! checked with the rest of the config and turned into [`QuicOptions`] and [`QuicTls`].
#![forbid(unsafe_code)]

use std::path::Path;
use std::time::Duration;

use ringwire_shard::quic::{QuicConfigError, QuicOptions, QuicTls, RetryMode};

use ringwire_shard::session::admission::BudgetConfig;

use crate::config::{AdmissionTable, ConfigError, ManagerTable, SessionsConfig};

/// The `[quic]` table (used by `--app quic-echo`; ignored by the other apps).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(deny_unknown_fields, default)
)]
#[non_exhaustive]
pub struct QuicSettings {
    /// PEM certificate chain, leaf first. With `key`; both absent: a self-signed certificate
    /// for `localhost` and `127.0.0.1` is generated at start (and logged).
    pub cert: Option<String>,
    /// PEM private key of `cert`.
    pub key: Option<String>,
    /// ALPN protocols offered, most preferred first.
    pub alpn: Vec<String>,
    /// Connections one shard holds at most; further Initials are refused.
    pub max_connections_per_shard: usize,
    /// When an Initial from an unvalidated address is answered with a Retry: `"never"`,
    /// `"always"` or `"under-load"` (`true` and `false` mean always and never).
    pub retry: RetrySetting,
    /// Under load from this many connections on a shard (handshakes in progress included).
    pub retry_above_connections: usize,
    /// Under load while new connections come faster than this, per shard.
    pub handshakes_per_second: u32,
    /// Idle timeout, milliseconds.
    pub idle_timeout_ms: u64,
    /// Streams of each direction a peer may have open at once.
    pub max_streams: u32,
    /// Bytes of received DATAGRAM frames buffered per connection (0: DATAGRAM frames off).
    pub datagram_buffer: usize,
    /// Path MTU discovery (the shards' sockets then send with Don't Fragment).
    pub mtu_discovery: bool,
    /// `[quic.admission]`: the keys of `[sessions.admission]`, for QUIC connections.
    pub admission: AdmissionTable,
    /// `[quic.manager]`: the keys of `[sessions.manager]`, for QUIC connections.
    pub manager: ManagerTable,
}

/// The `retry` key: a [`RetryMode`] by name, or a boolean (always / never).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySetting(pub RetryMode);

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for RetrySetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{self, Visitor};
        struct V;
        impl Visitor<'_> for V {
            type Value = RetrySetting;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"never\", \"always\", \"under-load\", true or false")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RetrySetting, E> {
                Ok(RetrySetting(if v {
                    RetryMode::Always
                } else {
                    RetryMode::Never
                }))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RetrySetting, E> {
                match v {
                    "never" => Ok(RetrySetting(RetryMode::Never)),
                    "always" => Ok(RetrySetting(RetryMode::Always)),
                    "under-load" => Ok(RetrySetting(RetryMode::UnderLoad)),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl Default for QuicSettings {
    fn default() -> Self {
        let o = QuicOptions::default();
        Self {
            cert: None,
            key: None,
            alpn: o
                .alpn
                .iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect(),
            max_connections_per_shard: o.max_connections_per_shard,
            retry: RetrySetting(o.retry),
            retry_above_connections: o.retry_above_connections,
            handshakes_per_second: o.handshakes_per_second,
            idle_timeout_ms: o.idle_timeout.as_millis() as u64,
            max_streams: o.max_streams,
            datagram_buffer: o.datagram_buffer,
            mtu_discovery: true,
            admission: AdmissionTable::default(),
            manager: ManagerTable::default(),
        }
    }
}

/// Bytes the memory budget charges one QUIC connection by default: an idle connection's
/// measured 26 to 28 KB (quinn-proto's state, rustls's, the host's entry;
/// `scripts/quic-memory.sh`, docs/BENCHMARKS-quic.md) rounded up.
pub const QUIC_CONNECTION_COST: usize = 32 << 10;

/// `[quic.admission]`'s memory budget where its keys are not set: sized for QUIC connections,
/// [`QUIC_CONNECTION_COST`] each, a limit of the default `max_sessions_shard` of them (2 GiB),
/// refusals from 3/4 of it and shedding from 7/8 (the session table's ratios). The other keys'
/// defaults are `[sessions.admission]`'s.
pub fn quic_memory_defaults() -> BudgetConfig {
    let shard_cap = AdmissionTable::default().max_sessions_shard;
    let mut b = BudgetConfig::default();
    b.session_cost = QUIC_CONNECTION_COST;
    b.limit = shard_cap * QUIC_CONNECTION_COST;
    b.session_limit = b.limit / 4 * 3;
    b.shed_above = b.limit / 8 * 7;
    b
}

impl QuicSettings {
    /// Every key that cannot be used: `(key, value, what is allowed)`.
    pub fn check(&self) -> Vec<(&'static str, String, &'static str)> {
        let mut errors = Vec::new();
        if self.cert.is_some() != self.key.is_some() {
            errors.push((
                if self.cert.is_some() { "key" } else { "cert" },
                "absent".to_string(),
                "both `cert` and `key`, or neither (a self-signed certificate)",
            ));
        }
        if self.alpn.is_empty() || self.alpn.iter().any(|a| a.is_empty() || a.len() > 255) {
            errors.push((
                "alpn",
                format!("{:?}", self.alpn),
                "a non-empty list of protocol names of 1 to 255 bytes",
            ));
        }
        if self.max_connections_per_shard == 0 {
            errors.push(("max_connections_per_shard", "0".to_string(), "at least 1"));
        }
        if self.handshakes_per_second == 0 {
            errors.push(("handshakes_per_second", "0".to_string(), "at least 1"));
        }
        if self.idle_timeout_ms == 0 {
            errors.push((
                "idle_timeout_ms",
                "0".to_string(),
                "at least 1 (milliseconds)",
            ));
        }
        errors
    }

    /// `[quic.admission]` and `[quic.manager]` checked: the settings, or every error.
    pub fn conn_control(&self) -> Result<crate::config::SessionsSettings, Vec<ConfigError>> {
        SessionsConfig {
            admission: self.admission.clone(),
            manager: self.manager.clone(),
        }
        .resolve_in(["quic.admission", "quic.manager"], quic_memory_defaults())
    }

    /// The host's options (admission and the manager on, from their tables; off if those do
    /// not resolve, which [`QuicSettings::conn_control`] reports).
    pub fn options(&self) -> QuicOptions {
        let mut o = QuicOptions::default();
        o.alpn = self.alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
        o.max_connections_per_shard = self.max_connections_per_shard;
        o.retry = self.retry.0;
        o.retry_above_connections = self.retry_above_connections;
        o.handshakes_per_second = self.handshakes_per_second;
        if let Ok(control) = self.conn_control() {
            o.admission = Some(control.admission);
            o.manager = Some(control.manager);
        }
        o.idle_timeout = Duration::from_millis(self.idle_timeout_ms);
        o.max_streams = self.max_streams;
        o.datagram_buffer = self.datagram_buffer;
        o.mtu_discovery = self.mtu_discovery;
        o
    }

    /// The certificate and key: read from `cert` and `key`, or a fresh self-signed one.
    pub fn tls(&self) -> Result<QuicTls, QuicConfigError> {
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => QuicTls::from_pem_files(Path::new(cert), Path::new(key)),
            _ => QuicTls::self_signed(&["localhost", "127.0.0.1"]),
        }
    }
}

#[cfg(all(test, feature = "cli"))]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::apps::AppKind;
    use crate::config::Config;
    use ringwire_shard::quic::RetryMode;

    fn errors(text: &str) -> String {
        let errors = Config::from_toml(text).unwrap().resolve_all().unwrap_err();
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn quic_echo_resolves_with_steering_and_its_table() {
        let text = "app = \"quic-echo\"\npin = false\n[quic]\nretry = true\nalpn = [\"x\"]\n\
                    [quic.admission]\nmax_sessions_shard = 10\n";
        let r = Config::from_toml(text).unwrap().resolve().unwrap();
        assert_eq!(r.app, AppKind::QuicEcho);
        assert!(r.steering);
        let o = r.quic.options();
        assert_eq!(o.retry, RetryMode::Always);
        assert_eq!(o.alpn, vec![b"x".to_vec()]);
        assert_eq!(o.admission.as_ref().map(|a| a.max_sessions_shard), Some(10));
        // A table that sets other keys keeps the QUIC memory budget.
        assert_eq!(
            o.admission.map(|a| a.memory.session_cost),
            Some(super::QUIC_CONNECTION_COST)
        );
        assert!(o.manager.is_some());
        let text = "app = \"quic-echo\"\npin = false\n[quic]\nretry = \"never\"\n";
        let r = Config::from_toml(text).unwrap().resolve().unwrap();
        assert_eq!(r.quic.options().retry, RetryMode::Never);
        // The default: Retry under load.
        let r = Config::from_toml("app = \"quic-echo\"\npin = false\n").unwrap();
        assert_eq!(
            r.resolve().unwrap().quic.options().retry,
            RetryMode::UnderLoad
        );
    }

    #[test]
    fn quic_table_errors_are_named() {
        let e = errors(
            "app = \"quic-echo\"\npin = false\n[shard]\nmax_datagram = 1400\n\
             [quic]\ncert = \"c.pem\"\nalpn = []\nmax_connections_per_shard = 0\n\
             [quic.admission]\nmax_sessions_shard = 0\n\
             [quic.manager]\ntrim_batch = 0\n",
        );
        for key in [
            "quic.key",
            "quic.alpn",
            "quic.max_connections_per_shard",
            "shard.max_datagram",
            "quic.admission.max_sessions_shard",
            "quic.manager.trim_batch",
        ] {
            assert!(e.contains(key), "{key} not named in {e}");
        }
        let bad = Config::from_toml("[quic]\nretry = \"sometimes\"\n").unwrap_err();
        assert!(bad.to_string().contains("\"under-load\""), "{bad}");
        // Other apps ignore the table.
        assert!(
            Config::from_toml("pin = false\n[quic]\nalpn = []\n")
                .unwrap()
                .resolve()
                .is_ok()
        );
    }
}
