//! The built-in applications `ringwire serve --app NAME` runs.
#![forbid(unsafe_code)]

pub mod echo;
pub mod quic_echo;
pub mod relay;
pub mod session_echo;
pub mod sockperf;

use std::fmt;
use std::str::FromStr;

pub use echo::Echo;
pub use quic_echo::QuicEcho;
pub use relay::Relay;
pub use session_echo::SessionEcho;
pub use sockperf::SockperfServer;

/// A built-in application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(rename_all = "kebab-case")
)]
#[non_exhaustive]
pub enum AppKind {
    /// Reflects every datagram to its sender.
    #[default]
    Echo,
    /// Answers the `sockperf` client like `sockperf server`.
    Sockperf,
    /// Sessions, and forwarding between them (the gateway example).
    Relay,
    /// Sessions whose messages are echoed back.
    SessionEcho,
    /// QUIC connections whose streams and DATAGRAM frames are echoed back.
    QuicEcho,
}

impl AppKind {
    /// Whether the app runs on sessions (and so wants kernel steering).
    pub fn uses_sessions(self) -> bool {
        matches!(self, AppKind::Relay | AppKind::SessionEcho)
    }

    /// Whether the app speaks QUIC (and so wants the QUIC steering program).
    pub fn uses_quic(self) -> bool {
        matches!(self, AppKind::QuicEcho)
    }
}

impl AppKind {
    /// The accepted names, for error messages.
    pub const ALLOWED: &'static str =
        "\"echo\", \"sockperf\", \"relay\", \"session-echo\" or \"quic-echo\"";
}

impl FromStr for AppKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "echo" => Ok(AppKind::Echo),
            "sockperf" => Ok(AppKind::Sockperf),
            "relay" => Ok(AppKind::Relay),
            "session-echo" => Ok(AppKind::SessionEcho),
            "quic-echo" => Ok(AppKind::QuicEcho),
            other => Err(format!(
                "unknown app {other:?}: allowed {}",
                AppKind::ALLOWED
            )),
        }
    }
}

impl fmt::Display for AppKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AppKind::Echo => "echo",
            AppKind::Sockperf => "sockperf",
            AppKind::Relay => "relay",
            AppKind::SessionEcho => "session-echo",
            AppKind::QuicEcho => "quic-echo",
        })
    }
}
