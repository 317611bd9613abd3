//! What a QUIC server needs: its certificate and key (from PEM files, or a self-signed one
//! made with `rcgen` for demos and tests), ALPN protocols and limits, turned into the one
//! `quinn_proto::ServerConfig` every shard shares (read-only: immutable after start).
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use quinn_proto::crypto::rustls::QuicServerConfig;
use quinn_proto::{IdleTimeout, ServerConfig, TransportConfig, VarInt};

use crate::session::SessionClock;
use crate::session::admission::AdmissionConfig;
use crate::session::manager::ManagerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Why a QUIC server configuration could not be built. Every case keeps its source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuicConfigError {
    /// The certificate file could not be read or holds no PEM certificate.
    #[error("QUIC certificate file {path}: {source}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error("QUIC certificate file {path}: no certificate in it")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file could not be read or holds no PEM private key.
    #[error("QUIC key file {path}: {source}")]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// `rcgen` could not make a self-signed certificate.
    #[error("cannot generate a self-signed QUIC certificate: {0}")]
    SelfSigned(#[source] rcgen::Error),
    /// rustls refused the certificate, the key or the protocol versions.
    #[error("TLS configuration: {0}")]
    Tls(#[source] rustls::Error),
    /// The shard's index does not fit the one byte a connection ID gives it.
    #[error("shard {shard}: QUIC connection IDs name at most 256 shards")]
    ShardIndex {
        /// The shard.
        shard: usize,
    },
    /// The admission settings are out of range.
    #[error("QUIC admission: {0}")]
    Admission(#[source] crate::session::admission::AdmissionError),
    /// The connection-manager settings are out of range.
    #[error("QUIC connection manager: {0}")]
    Manager(#[source] crate::session::manager::ManagerConfigError),
    /// quinn refused the TLS configuration (no TLS 1.3 cipher suite usable for QUIC).
    #[error("QUIC TLS configuration: {0}")]
    Quic(#[source] quinn_proto::crypto::rustls::NoInitialCipherSuite),
}

/// A certificate chain and its private key.
#[derive(Debug)]
pub struct QuicTls {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    self_signed: bool,
}

impl QuicTls {
    /// Reads a PEM certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or
    /// SEC1).
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, QuicConfigError> {
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|source| QuicConfigError::Certificate {
                path: cert.to_owned(),
                source,
            })?;
        if chain.is_empty() {
            return Err(QuicConfigError::NoCertificate {
                path: cert.to_owned(),
            });
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|source| QuicConfigError::Key {
            path: key.to_owned(),
            source,
        })?;
        Ok(Self {
            chain,
            key,
            self_signed: false,
        })
    }

    /// A fresh self-signed certificate for `names` (DNS names or IP addresses), for demos and
    /// tests: clients must be told to trust [`QuicTls::chain`]'s leaf.
    pub fn self_signed(names: &[&str]) -> Result<Self, QuicConfigError> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let certified =
            rcgen::generate_simple_self_signed(names).map_err(QuicConfigError::SelfSigned)?;
        let key = PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der());
        Ok(Self {
            chain: vec![certified.cert.der().clone()],
            key: key.into(),
            self_signed: true,
        })
    }

    /// The certificate chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// Whether [`QuicTls::self_signed`] made it.
    pub fn is_self_signed(&self) -> bool {
        self.self_signed
    }
}

/// The server's QUIC settings (the `[quic]` table of the binary's config).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct QuicOptions {
    /// ALPN protocols offered, most preferred first. A client offering none of them fails the
    /// handshake (TLS alert `no_application_protocol`).
    pub alpn: Vec<Vec<u8>>,
    /// Connections one shard holds at most; an Initial past it is refused
    /// (`CONNECTION_REFUSED`, counted as `quic_refused_full`).
    pub max_connections_per_shard: usize,
    /// When an Initial whose address is not yet validated is answered with a Retry (address
    /// validation: one more round trip, no state before the client proves its address).
    pub retry: RetryMode,
    /// With [`RetryMode::UnderLoad`]: the shard is under load while it holds this many
    /// connections or more (handshakes in progress included).
    pub retry_above_connections: usize,
    /// With [`RetryMode::UnderLoad`]: the shard is under load while new connections arrive
    /// faster than this (a token bucket of this rate, burst a tenth of it, at least 1): each
    /// accepted connection takes a token, and one that finds none is answered with a Retry.
    pub handshakes_per_second: u32,
    /// Close a connection idle for this long (negotiated down to the peer's, if lower).
    pub idle_timeout: Duration,
    /// Bidirectional and unidirectional streams a peer may have open at once, each.
    pub max_streams: u32,
    /// Bytes of DATAGRAM frames received and not yet read by the app, per connection; `0`
    /// turns DATAGRAM frames off.
    pub datagram_buffer: usize,
    /// Path MTU discovery (quinn's DPLPMTUD, RFC 8899: probes from 1,200 bytes up to 1,452):
    /// needs a socket that sends with Don't Fragment and ignores the kernel's path-MTU cache
    /// (`EngineConfig::mtu_probe` in `ringwire`), else a probe may be fragmented and wrongly
    /// succeed. Off: packets stay at QUIC's 1,200-byte floor.
    pub mtu_discovery: bool,
    /// Admission control for QUIC connections (the session layer's: shard and node caps,
    /// handshakes in progress, per-prefix limits and rate, the memory budget), checked for a
    /// new connection's first Initial before any connection state; `None`: off.
    pub admission: Option<AdmissionConfig>,
    /// The connection manager for QUIC connections (the session layer's: trims the lowest
    /// scored connections to node-wide watermarks, closing each with [`CLOSE_TRIMMED`]);
    /// `None`: off.
    pub manager: Option<ManagerConfig>,
    /// The clock admission and the manager count time on; every shard of a node must share
    /// one (the count exchange's rounds start at the same instants on every shard). Cloning
    /// the options shares it.
    pub clock: SessionClock,
}

/// Application error code of the CONNECTION_CLOSE a trimmed connection gets ("RW" and 1), with
/// reason `trimmed`. A drain closes with code 0 and reason `shutting down`.
pub const CLOSE_TRIMMED: u32 = 0x5257_0001;

/// When the host answers a new connection's Initial with a Retry (RFC 9000 §8.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RetryMode {
    /// Never: every connection costs one round trip less, and the shard keeps state from a
    /// client's first Initial (bounded by QUIC's 3x anti-amplification limit).
    Never,
    /// Always, until the client proves its address.
    Always,
    /// Only while the shard is under load ([`QuicOptions::retry_above_connections`],
    /// [`QuicOptions::handshakes_per_second`]).
    #[default]
    UnderLoad,
}

impl Default for QuicOptions {
    fn default() -> Self {
        Self {
            alpn: vec![b"ringwire-echo".to_vec()],
            max_connections_per_shard: 100_000,
            retry: RetryMode::UnderLoad,
            retry_above_connections: 32_768,
            handshakes_per_second: 1000,
            idle_timeout: Duration::from_secs(30),
            max_streams: 100,
            datagram_buffer: 1 << 20,
            mtu_discovery: false,
            admission: None,
            manager: None,
            clock: SessionClock::start(),
        }
    }
}

impl QuicOptions {
    /// The shared server configuration for these options and `tls`.
    pub fn server_config(&self, tls: &QuicTls) -> Result<Arc<ServerConfig>, QuicConfigError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut crypto = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(QuicConfigError::Tls)?
            .with_no_client_auth()
            .with_single_cert(tls.chain.clone(), tls.key.clone_key())
            .map_err(QuicConfigError::Tls)?;
        crypto.alpn_protocols = self.alpn.clone();
        let crypto = QuicServerConfig::try_from(crypto).map_err(QuicConfigError::Quic)?;
        let mut transport = TransportConfig::default();
        let idle = IdleTimeout::try_from(self.idle_timeout)
            .unwrap_or(IdleTimeout::from(VarInt::from_u32(u32::MAX)));
        transport
            .max_idle_timeout(Some(idle))
            .max_concurrent_bidi_streams(VarInt::from_u32(self.max_streams))
            .max_concurrent_uni_streams(VarInt::from_u32(self.max_streams))
            .datagram_receive_buffer_size(
                (self.datagram_buffer > 0).then_some(self.datagram_buffer),
            );
        let mut server = ServerConfig::with_crypto(Arc::new(crypto));
        server.transport_config(Arc::new(transport));
        Ok(Arc::new(server))
    }
}
