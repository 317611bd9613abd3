//! The `[security]` table and key files: how a session app's sessions are protected, which
//! static identity the node proves, which peers it lets in.
//!
//! - [`SecurityConfig`]: the table as written (`mode`, `key_file`, `psk_file`,
//!   `allowed_peers`, `handshakes_per_second`); [`SecurityConfig::resolve`] checks every value
//!   and parses the allowed keys, without reading any file.
//! - [`ResolvedSecurity::load`]: reads the key files (refusing any that group or others may
//!   access) and builds the session layer's [`Security`]; without a `key_file`, a fresh
//!   identity for this process only ([`Identity::Generated`], which the binary warns about).
//! - [`read_key_file`] / [`write_key_file`]: the files themselves, one line of standard base64
//!   (44 characters, as WireGuard's), written `0600`.
//!
//! `docs/CONFIG.md` (the keys), `docs/OPERATIONS.md` (key rotation, giving clients the key) and
//! `docs/SECURITY.md` (what the keys protect).
#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::fmt;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use ringwire_shard::session::{KeyError, Keypair, NoiseConfig, PrivateKey, PublicKey, Security};

use crate::config::{ConfigError, TableErrors};

/// The default `security.handshakes_per_second`: the session layer's own default
/// (`EndpointConfig::handshakes_per_second`).
pub const DEFAULT_HANDSHAKES_PER_SECOND: u32 = 1000;

/// How sessions are protected (`security.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(rename_all = "lowercase")
)]
#[non_exhaustive]
pub enum SecurityMode {
    /// Noise IKpsk2: every session authenticated and encrypted (`docs/PROTOCOL.md`).
    #[default]
    Noise,
    /// Plaintext: not authenticated, not encrypted. For trusted paths and for measuring the
    /// cost of cryptography; the binary says so loudly at start.
    None,
}

impl fmt::Display for SecurityMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SecurityMode::Noise => "noise",
            SecurityMode::None => "none",
        })
    }
}

/// The `[security]` table. Used by the session apps (`relay`, `session-echo`) only.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(deny_unknown_fields, default)
)]
#[non_exhaustive]
pub struct SecurityConfig {
    /// `"noise"` (default) or `"none"`.
    pub mode: SecurityMode,
    /// The node's static private key (`ringwire keygen --out FILE`). Absent: a fresh identity
    /// per process, announced at start with a warning (clients pinned to it break on restart).
    pub key_file: Option<PathBuf>,
    /// The network's pre-shared key (`ringwire keygen --psk --out FILE`), mixed into every
    /// handshake; every node and client of the network needs the same one. Absent: none (32
    /// zero bytes, as WireGuard).
    pub psk_file: Option<PathBuf>,
    /// Only initiators with one of these static public keys (base64) may open sessions.
    /// Absent: any authenticated peer (the application still decides).
    pub allowed_peers: Option<Vec<String>>,
    /// Handshakes per second one shard completes before it is under load and asks initiators
    /// for a cookie round trip first (mac2).
    pub handshakes_per_second: u32,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            mode: SecurityMode::Noise,
            key_file: None,
            psk_file: None,
            allowed_peers: None,
            handshakes_per_second: DEFAULT_HANDSHAKES_PER_SECOND,
        }
    }
}

/// The `[security]` table, checked: files named but not read yet.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResolvedSecurity {
    /// Noise or plaintext.
    pub mode: SecurityMode,
    /// The private key file, if any.
    pub key_file: Option<PathBuf>,
    /// The pre-shared key file, if any.
    pub psk_file: Option<PathBuf>,
    /// The allowed initiators, if restricted.
    pub allowed_peers: Option<Vec<PublicKey>>,
    /// Handshakes per second per shard before cookies are asked for.
    pub handshakes_per_second: u32,
}

impl Default for ResolvedSecurity {
    fn default() -> Self {
        SecurityConfig::default()
            .resolve(&mut Vec::new(), &mut Vec::new())
            .unwrap_or_else(|| unreachable!("the default [security] table is valid"))
    }
}

impl SecurityConfig {
    /// Checks every value (errors and warnings appended, each naming its `security.` key);
    /// `None` if any is invalid. Reads no file.
    pub fn resolve(
        &self,
        errors: &mut Vec<ConfigError>,
        warnings: &mut Vec<String>,
    ) -> Option<ResolvedSecurity> {
        let before = errors.len();
        let mut table = TableErrors::new("security", errors);
        let allowed_peers = self.allowed_peers.as_ref().map(|list| {
            if list.is_empty() {
                table.invalid(
                    "allowed_peers",
                    "[]",
                    "a non-empty list of base64 public keys (leave the key out to admit any \
                     authenticated peer)",
                );
            }
            list.iter()
                .enumerate()
                .filter_map(|(i, s)| match PublicKey::from_base64(s) {
                    Ok(k) => Some(k),
                    Err(e) => {
                        table.invalid(
                            &format!("allowed_peers[{i}]"),
                            format!("{s:?}"),
                            format!("a static public key in standard base64, 44 characters ({e})"),
                        );
                        None
                    }
                })
                .collect::<Vec<_>>()
        });
        if self.handshakes_per_second == 0 {
            table.invalid("handshakes_per_second", 0, "at least 1");
        }
        if self.mode == SecurityMode::None {
            for (set, key) in [
                (self.key_file.is_some(), "key_file"),
                (self.psk_file.is_some(), "psk_file"),
                (self.allowed_peers.is_some(), "allowed_peers"),
            ] {
                if set {
                    warnings.push(format!(
                        "`security.{key}` is ignored with security.mode = \"none\" (plaintext \
                         sessions authenticate nobody)"
                    ));
                }
            }
        }
        (errors.len() == before).then(|| ResolvedSecurity {
            mode: self.mode,
            key_file: self.key_file.clone(),
            psk_file: self.psk_file.clone(),
            allowed_peers,
            handshakes_per_second: self.handshakes_per_second,
        })
    }
}

/// Where the node's identity came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Identity {
    /// Plaintext mode: none.
    None,
    /// Read from this key file.
    KeyFile(PathBuf),
    /// Generated for this process (no `key_file`): it changes at every start.
    Generated,
}

/// The session layer's protection, built from key files.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LoadedSecurity {
    /// What [`EndpointConfig::with_security`](ringwire_shard::session::EndpointConfig::with_security) takes.
    pub security: Security,
    /// Where the identity came from.
    pub identity: Identity,
    /// The node's public key (Noise mode).
    pub public: Option<PublicKey>,
}

impl ResolvedSecurity {
    /// Reads the key files and builds the session layer's protection. Every file problem at
    /// once (a missing file, one that group or others may access, one that holds no key).
    pub fn load(&self) -> Result<LoadedSecurity, Vec<KeyFileError>> {
        if self.mode == SecurityMode::None {
            return Ok(LoadedSecurity {
                security: Security::None,
                identity: Identity::None,
                public: None,
            });
        }
        let mut errors = Vec::new();
        let private = self
            .key_file
            .as_deref()
            .map(read_key_file)
            .transpose()
            .map_err(|e| errors.push(e))
            .ok()
            .flatten();
        let psk = self
            .psk_file
            .as_deref()
            .map(read_key_file)
            .transpose()
            .map_err(|e| errors.push(e))
            .ok()
            .flatten();
        if !errors.is_empty() {
            return Err(errors);
        }
        let (identity, keypair) = match (private, &self.key_file) {
            (Some(p), Some(path)) => (Identity::KeyFile(path.clone()), Keypair::from_private(p)),
            _ => match Keypair::generate() {
                Ok(k) => (Identity::Generated, k),
                Err(e) => {
                    return Err(vec![KeyFileError::Random(e)]);
                }
            },
        };
        let public = keypair.public;
        let mut noise = NoiseConfig::new(keypair);
        if let Some(psk) = psk {
            noise.psk = *psk.as_bytes();
        }
        noise.allowed_peers = self
            .allowed_peers
            .as_ref()
            .map(|l| l.iter().copied().collect::<HashSet<_>>());
        Ok(LoadedSecurity {
            security: Security::Noise(Box::new(noise)),
            identity,
            public: Some(public),
        })
    }
}

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// It could not be opened or read.
    #[error("cannot read key file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Its group or others may access it: a private key must be the owner's alone.
    #[error(
        "key file {} is accessible by group or others (mode {mode:04o}); refusing to use \
         it: run `chmod 600 {}` (and check who else may have read it)",
        path.display(),
        path.display()
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Not a regular file.
    #[error("key file {} is not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// It holds no 32-byte base64 key.
    #[error(
        "key file {} does not hold a key (one line of standard base64, 44 characters, as \
         `ringwire keygen` writes): {source}",
        path.display()
    )]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: KeyError,
    },
    /// No random bytes for a generated identity.
    #[error("cannot get random bytes for the session identity: {0}")]
    Random(#[source] std::io::Error),
}

/// The most bytes a key file may hold (a key is 44 characters; comments are not allowed).
const MAX_KEY_FILE: u64 = 256;

/// Reads a key file: one line of standard base64 (a private key or a pre-shared key). Refuses
/// a file that group or others may read, write or run (`mode & 0o077 != 0`, checked on the
/// open file), or that is not a regular file. The text read is wiped.
pub fn read_key_file(path: &Path) -> Result<PrivateKey, KeyFileError> {
    let read_err = |source| KeyFileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(KeyFileError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    let mut text = zeroize::Zeroizing::new(String::new());
    file.take(MAX_KEY_FILE)
        .read_to_string(&mut text)
        .map_err(read_err)?;
    PrivateKey::from_base64(&text).map_err(|source| KeyFileError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `key` to a new file at `path`, mode `0600`, as one line of base64. Refuses an
/// existing file (`AlreadyExists`) unless `force`, in which case it is truncated and its mode
/// set to `0600` before the key is written.
pub fn write_key_file(path: &Path, key: &PrivateKey, force: bool) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).mode(0o600);
    if force {
        options.create(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path)?;
    // An existing file keeps its mode through `open`: narrow it before writing the secret.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.set_len(0)?;
    let line = key.to_base64();
    file.write_all(line.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("ringwire-keys-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn key_files_round_trip_and_are_private() {
        let path = dir().join("round-trip.key");
        let _ = std::fs::remove_file(&path);
        let kp = Keypair::generate().unwrap();
        write_key_file(&path, &kp.private, false).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_key_file(&path).unwrap().public_key(), kp.public);
        let again = write_key_file(&path, &kp.private, false).unwrap_err();
        assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
        // --force narrows a loose mode before writing.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let other = Keypair::generate().unwrap();
        write_key_file(&path, &other.private, true).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_key_file(&path).unwrap().public_key(), other.public);
    }

    #[test]
    fn loose_permissions_and_garbage_are_refused_with_the_reason() {
        let path = dir().join("loose.key");
        let _ = std::fs::remove_file(&path);
        write_key_file(&path, &Keypair::generate().unwrap().private, false).unwrap();
        for mode in [0o640, 0o604, 0o660, 0o602] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = read_key_file(&path).unwrap_err();
            assert!(
                matches!(e, KeyFileError::Permissions { mode: m, .. } if m == mode),
                "{e}"
            );
            assert!(e.to_string().contains("chmod 600"), "{e}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(
            read_key_file(&path).is_ok(),
            "read-only by the owner is fine"
        );
        let bad = dir().join("garbage.key");
        let _ = std::fs::remove_file(&bad);
        std::fs::write(&bad, "not a key\n").unwrap();
        std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            read_key_file(&bad),
            Err(KeyFileError::Parse { .. })
        ));
        assert!(matches!(
            read_key_file(&dir().join("missing.key")),
            Err(KeyFileError::Read { .. })
        ));
        assert!(matches!(
            read_key_file(&dir()),
            Err(KeyFileError::NotAFile { .. }) | Err(KeyFileError::Permissions { .. })
        ));
    }

    #[test]
    fn resolve_names_each_bad_value_and_load_builds_the_security() {
        let kp = Keypair::generate().unwrap();
        let cfg = SecurityConfig {
            allowed_peers: Some(vec![kp.public.to_base64(), "nope".to_string()]),
            handshakes_per_second: 0,
            ..SecurityConfig::default()
        };
        let (mut errors, mut warnings) = (Vec::new(), Vec::new());
        assert!(cfg.resolve(&mut errors, &mut warnings).is_none());
        let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(all.len(), 2, "{all:?}");
        assert!(all[0].contains("`security.allowed_peers[1]`"), "{all:?}");
        assert!(
            all[1].contains("`security.handshakes_per_second`"),
            "{all:?}"
        );

        let path = dir().join("load.key");
        let _ = std::fs::remove_file(&path);
        write_key_file(&path, &kp.private, false).unwrap();
        let cfg = SecurityConfig {
            key_file: Some(path),
            allowed_peers: Some(vec![kp.public.to_base64()]),
            ..SecurityConfig::default()
        };
        let r = cfg.resolve(&mut errors, &mut warnings).unwrap();
        let loaded = r.load().unwrap();
        assert_eq!(loaded.public, Some(kp.public));
        assert!(matches!(loaded.identity, Identity::KeyFile(_)));
        let Security::Noise(n) = &loaded.security else {
            panic!("noise by default")
        };
        assert_eq!(n.allowed_peers.as_ref().map(HashSet::len), Some(1));
        assert_eq!(n.psk, [0; 32]);

        let generated = ResolvedSecurity::default().load().unwrap();
        assert_eq!(generated.identity, Identity::Generated);

        let none = SecurityConfig {
            mode: SecurityMode::None,
            key_file: Some(dir().join("missing.key")),
            ..SecurityConfig::default()
        };
        let r = none.resolve(&mut errors, &mut warnings).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(matches!(r.load().unwrap().security, Security::None));
    }

    #[test]
    fn the_default_rate_is_the_session_layers() {
        let ep = ringwire_shard::session::EndpointConfig::plaintext([0; 32]);
        assert_eq!(DEFAULT_HANDSHAKES_PER_SECOND, ep.handshakes_per_second);
    }
}
