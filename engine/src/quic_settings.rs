//! The `[quic]` table of the config file: the QUIC apps' certificate, key, ALPN and limits,
//! checked with the rest of the config and turned into [`QuicOptions`] and [`QuicTls`].
#![forbid(unsafe_code)]

use std::path::Path;
use std::time::Duration;

use ringwire_shard::quic::{QuicConfigError, QuicOptions, QuicTls};

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
    /// Answer every Initial from an unvalidated address with a Retry.
    pub retry: bool,
    /// Idle timeout, milliseconds.
    pub idle_timeout_ms: u64,
    /// Streams of each direction a peer may have open at once.
    pub max_streams: u32,
    /// Bytes of received DATAGRAM frames buffered per connection (0: DATAGRAM frames off).
    pub datagram_buffer: usize,
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
            retry: o.retry,
            idle_timeout_ms: o.idle_timeout.as_millis() as u64,
            max_streams: o.max_streams,
            datagram_buffer: o.datagram_buffer,
        }
    }
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
        if self.idle_timeout_ms == 0 {
            errors.push((
                "idle_timeout_ms",
                "0".to_string(),
                "at least 1 (milliseconds)",
            ));
        }
        errors
    }

    /// The host's options.
    pub fn options(&self) -> QuicOptions {
        let mut o = QuicOptions::default();
        o.alpn = self.alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
        o.max_connections_per_shard = self.max_connections_per_shard;
        o.retry = self.retry;
        o.idle_timeout = Duration::from_millis(self.idle_timeout_ms);
        o.max_streams = self.max_streams;
        o.datagram_buffer = self.datagram_buffer;
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
        let text = "app = \"quic-echo\"\npin = false\n[quic]\nretry = true\nalpn = [\"x\"]\n";
        let r = Config::from_toml(text).unwrap().resolve().unwrap();
        assert_eq!(r.app, AppKind::QuicEcho);
        assert!(r.steering);
        assert!(r.quic.retry);
        assert_eq!(r.quic.options().alpn, vec![b"x".to_vec()]);
    }

    #[test]
    fn quic_table_errors_are_named() {
        let e = errors(
            "app = \"quic-echo\"\npin = false\n[shard]\nmax_datagram = 1400\n\
             [quic]\ncert = \"c.pem\"\nalpn = []\nmax_connections_per_shard = 0\n",
        );
        for key in [
            "quic.key",
            "quic.alpn",
            "quic.max_connections_per_shard",
            "shard.max_datagram",
        ] {
            assert!(e.contains(key), "{key} not named in {e}");
        }
        // Other apps ignore the table.
        assert!(
            Config::from_toml("pin = false\n[quic]\nalpn = []\n")
                .unwrap()
                .resolve()
                .is_ok()
        );
    }
}
