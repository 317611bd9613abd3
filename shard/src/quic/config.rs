//! What a QUIC server needs: its certificate and key (from PEM files, or a self-signed one
//! made with `rcgen` for demos and tests), ALPN protocols and limits, turned into the one
//! `quinn_proto::ServerConfig` every shard shares (read-only: immutable after start).
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use quinn_proto::crypto::rustls::QuicServerConfig;
use quinn_proto::{IdleTimeout, ServerConfig, TransportConfig, VarInt};
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
    /// Answer every Initial whose address is not yet validated with a Retry (address
    /// validation: one more round trip, no state before the client proves its address).
    pub retry: bool,
    /// Close a connection idle for this long (negotiated down to the peer's, if lower).
    pub idle_timeout: Duration,
    /// Bidirectional and unidirectional streams a peer may have open at once, each.
    pub max_streams: u32,
    /// Bytes of DATAGRAM frames received and not yet read by the app, per connection; `0`
    /// turns DATAGRAM frames off.
    pub datagram_buffer: usize,
}

impl Default for QuicOptions {
    fn default() -> Self {
        Self {
            alpn: vec![b"ringwire-echo".to_vec()],
            max_connections_per_shard: 100_000,
            retry: false,
            idle_timeout: Duration::from_secs(30),
            max_streams: 100,
            datagram_buffer: 1 << 20,
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
