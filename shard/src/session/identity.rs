//! A node's static X25519 identity: the keypair that authenticates it in the Noise handshake
//! (`docs/PROTOCOL.md` §3).
//!
//! - [`PublicKey`]: 32 bytes, shown and parsed as standard base64 with padding (44 characters,
//!   as WireGuard writes keys), the form config files and `allowed_peers` use.
//! - [`PrivateKey`]: 32 bytes, wiped from memory when dropped ([`zeroize`]); its `Debug` never
//!   prints it. [`Keypair::generate`] draws it from the operating system's random source.
//!
//! The public key is derived by the same X25519 implementation the handshake uses (snow's
//! default resolver), so a keypair made here is exactly what the handshake will prove.
#![forbid(unsafe_code)]

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use snow::params::DHChoice;
use snow::resolvers::{CryptoResolver, DefaultResolver};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Length of a public or private key.
pub const KEY_LEN: usize = 32;

/// Why a key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not standard base64.
    #[error("key is not valid base64")]
    Base64(#[source] base64::DecodeError),
    /// Decoded, but not 32 bytes.
    #[error("key is {0} bytes, expected 32")]
    Length(usize),
}

/// A node's static public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; KEY_LEN]);

impl PublicKey {
    /// The key from its 32 bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        PublicKey(bytes)
    }

    /// The key's bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Standard base64 with padding (44 characters).
    #[must_use]
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// Parses [`PublicKey::to_base64`]'s form (surrounding whitespace ignored).
    pub fn from_base64(s: &str) -> Result<Self, KeyError> {
        let v = STANDARD.decode(s.trim()).map_err(KeyError::Base64)?;
        let bytes =
            <[u8; KEY_LEN]>::try_from(v.as_slice()).map_err(|_| KeyError::Length(v.len()))?;
        Ok(PublicKey(bytes))
    }

    /// The key's *tag*: the first byte of BLAKE2s-256 of the key. An Initiation carries it
    /// in its route byte (offset 4), so all of one key's handshakes reach one shard.
    #[must_use]
    pub fn key_tag(&self) -> u8 {
        use blake2::Digest as _;
        blake2::Blake2s256::digest(self.0)[0]
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        PublicKey::from_base64(s)
    }
}

/// A node's static private key. Wiped when dropped; never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PrivateKey([u8; KEY_LEN]);

impl PrivateKey {
    /// The key from its 32 bytes (the caller should wipe its own copy).
    #[must_use]
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        PrivateKey(bytes)
    }

    /// The key's bytes (for the handshake and for writing a key file).
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Standard base64 with padding: a key file's one line. Wiped when dropped.
    #[must_use]
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0))
    }

    /// Parses [`PrivateKey::to_base64`]'s form (surrounding whitespace ignored). The decoded
    /// buffer is wiped.
    pub fn from_base64(s: &str) -> Result<Self, KeyError> {
        let v = Zeroizing::new(STANDARD.decode(s.trim()).map_err(KeyError::Base64)?);
        let bytes =
            <[u8; KEY_LEN]>::try_from(v.as_slice()).map_err(|_| KeyError::Length(v.len()))?;
        Ok(PrivateKey(bytes))
    }

    /// The matching public key (X25519 base-point multiplication).
    #[must_use]
    pub fn public_key(&self) -> PublicKey {
        let Some(mut dh) = DefaultResolver.resolve_dh(&DHChoice::Curve25519) else {
            unreachable!("snow's default resolver always has Curve25519 (feature use-curve25519)")
        };
        dh.set(&self.0);
        let mut public = [0u8; KEY_LEN];
        public.copy_from_slice(&dh.pubkey()[..KEY_LEN]);
        // The resolver's copy of the private key is not wiped by snow; overwrite it.
        dh.set(&[0u8; KEY_LEN]);
        PublicKey(public)
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(..)")
    }
}

/// A static keypair.
#[derive(Clone, Debug)]
pub struct Keypair {
    /// The private half (wiped on drop).
    pub private: PrivateKey,
    /// The public half.
    pub public: PublicKey,
}

impl Keypair {
    /// A new keypair from the operating system's random source (`getrandom`).
    pub fn generate() -> std::io::Result<Self> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        getrandom::fill(bytes.as_mut()).map_err(std::io::Error::from)?;
        Ok(Keypair::from_private(PrivateKey::from_bytes(*bytes)))
    }

    /// The keypair of a private key (e.g. one loaded from a key file).
    #[must_use]
    pub fn from_private(private: PrivateKey) -> Self {
        let public = private.public_key();
        Keypair { private, public }
    }

    /// A keypair from a fixed 32-byte private key: for tests, examples and test vectors,
    /// never for a deployment.
    #[must_use]
    pub fn from_seed_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Keypair::from_private(PrivateKey::from_bytes(bytes))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip_and_errors() {
        let kp = Keypair::generate().unwrap();
        let s = kp.public.to_base64();
        assert_eq!(s.len(), 44);
        assert_eq!(
            PublicKey::from_base64(&format!(" {s}\n")).unwrap(),
            kp.public
        );
        assert_eq!(s.parse::<PublicKey>().unwrap(), kp.public);
        let p = PrivateKey::from_base64(&kp.private.to_base64()).unwrap();
        assert_eq!(p.public_key(), kp.public);
        assert!(matches!(
            PublicKey::from_base64("AAAA"),
            Err(KeyError::Length(3))
        ));
        assert!(matches!(
            PublicKey::from_base64("!!"),
            Err(KeyError::Base64(_))
        ));
        assert_eq!(format!("{:?}", kp.private), "PrivateKey(..)");
    }

    /// RFC 7748 §6.1: Alice's private key and public key.
    #[test]
    fn x25519_known_answer() {
        let hex = |s: &str| -> [u8; 32] {
            let v: Vec<u8> = (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect();
            v.try_into().unwrap()
        };
        let kp = Keypair::from_seed_bytes(hex(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        ));
        assert_eq!(
            kp.public.as_bytes(),
            &hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
    }
}
