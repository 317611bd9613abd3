//! The symmetric primitives of protocol version 2 outside the Noise handshake, each named as
//! `docs/PROTOCOL.md` §4 names it. Nothing here is hand-written cryptography: BLAKE2s and the
//! cookies' XChaCha20-Poly1305 come from the RustCrypto crates snow's own resolver uses; the
//! transport's ChaCha20-Poly1305, which every Data datagram pays twice, from `ring` (its
//! assembly is 3 to 7 times faster than the RustCrypto crate on 64 to 1200-byte messages:
//! `docs/DECISIONS.md` D35). Both are RFC 8439; the test vectors and the interop test check it.
//!
//! - `HASH(x)`: BLAKE2s-256.
//! - `MAC(key, x)`: keyed BLAKE2s with a 16-byte digest (RFC 7693 keyed mode, digest length
//!   16: WireGuard's `MAC`), for mac1, mac2, cookies and reset tokens.
//! - Transport AEAD: Noise's `ENCRYPT(k, n, ad, p)` for ChaChaPoly: ChaCha20-Poly1305 (RFC
//!   8439) with the 96-bit nonce `4 zero bytes || n as u64 little-endian`.
//! - `REKEY(k)`: Noise §4.2: the first 32 bytes of `ENCRYPT(k, 2^64 - 1, "", 32 zero bytes)`.
//! - Cookie sealing: XChaCha20-Poly1305 with a 24-byte nonce.
//!
//! Keys are [`Key`]s: wiped when dropped, never printed. The AEAD objects are built per call
//! from the key (a copy of 32 bytes on the stack, which `ring` does not wipe), so a session
//! stores 32 bytes per direction rather than a boxed cipher.
#![forbid(unsafe_code)]

use blake2::digest::{FixedOutput as _, Update as _};
use chacha20poly1305::aead::AeadInPlace as _;
use chacha20poly1305::{KeyInit, Tag, XChaCha20Poly1305};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of an AEAD tag.
pub const TAG_LEN: usize = 16;
/// Length of a `MAC` output.
pub const MAC_LEN: usize = 16;

/// `HASH(parts[0] || parts[1] || ...)`: BLAKE2s-256.
#[must_use]
pub fn hash(parts: &[&[u8]]) -> [u8; 32] {
    use blake2::Digest as _;
    let mut h = blake2::Blake2s256::new();
    for p in parts {
        blake2::Digest::update(&mut h, p);
    }
    h.finalize().into()
}

/// `MAC(key, parts[0] || ...)`: keyed BLAKE2s, 16-byte digest. `key` is 1 to 32 bytes.
#[must_use]
pub fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; MAC_LEN] {
    type Mac128 = blake2::Blake2sMac<blake2::digest::consts::U16>;
    let Ok(mut m) = Mac128::new_from_slice(key) else {
        unreachable!("MAC keys here are 16 or 32 bytes")
    };
    for p in parts {
        m.update(p);
    }
    m.finalize_fixed().into()
}

/// Constant-time equality of two MACs or tokens.
#[must_use]
pub fn ct_eq(a: &[u8; MAC_LEN], b: &[u8; MAC_LEN]) -> bool {
    use subtle::ConstantTimeEq as _;
    a.ct_eq(b).into()
}

/// A 32-byte symmetric key. Wiped when dropped; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Key(pub(crate) [u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

fn noise_nonce(n: u64) -> ring::aead::Nonce {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&n.to_le_bytes());
    ring::aead::Nonce::assume_unique_for_key(nonce)
}

impl Key {
    /// The transport AEAD under this key.
    fn aead(&self) -> ring::aead::LessSafeKey {
        let Ok(key) = ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, &self.0) else {
            unreachable!("ChaCha20-Poly1305 keys are 32 bytes")
        };
        ring::aead::LessSafeKey::new(key)
    }
}

impl Key {
    /// A key from its bytes (the caller should wipe its own copy).
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Key(bytes)
    }

    /// The key's bytes, for printing test vectors only: key material never leaves the
    /// session layer otherwise.
    #[must_use]
    pub fn to_bytes_for_test_vectors(&self) -> [u8; 32] {
        self.0
    }

    /// Noise `ENCRYPT(k, n, ad, buf[..len])` in place: `buf[..len]` becomes the ciphertext and
    /// `buf[len..len + 16]` the tag. Returns `len + 16`, or `None` if `buf` is too short.
    #[must_use]
    pub fn seal(&self, n: u64, ad: &[u8], buf: &mut [u8], len: usize) -> Option<usize> {
        let total = len.checked_add(TAG_LEN)?;
        let out = buf.get_mut(..total)?;
        let (body, tag_out) = out.split_at_mut(len);
        let tag = self
            .aead()
            .seal_in_place_separate_tag(noise_nonce(n), ring::aead::Aad::from(ad), body)
            .ok()?;
        tag_out.copy_from_slice(tag.as_ref());
        Some(total)
    }

    /// Noise `DECRYPT(k, n, ad, buf)` in place: on success `buf[..len - 16]` is the plaintext
    /// and its length is returned. On failure `buf` holds garbage and `None` is returned.
    #[must_use]
    pub fn open(&self, n: u64, ad: &[u8], buf: &mut [u8]) -> Option<usize> {
        let len = buf.len().checked_sub(TAG_LEN)?;
        let plain = self
            .aead()
            .open_in_place(noise_nonce(n), ring::aead::Aad::from(ad), buf)
            .ok()?;
        debug_assert_eq!(plain.len(), len);
        Some(len)
    }

    /// Noise `REKEY(k)`: the first 32 bytes of `ENCRYPT(k, 2^64 - 1, "", zeros)`.
    #[must_use]
    pub fn rekey(&self) -> Key {
        let mut buf = [0u8; 32 + TAG_LEN];
        let sealed = self.seal(u64::MAX, &[], &mut buf, 32);
        debug_assert_eq!(sealed, Some(48));
        let mut next = Key([0; 32]);
        next.0.copy_from_slice(&buf[..32]);
        buf.zeroize();
        next
    }
}

/// XChaCha20-Poly1305 seal of a 16-byte cookie: `out` = ciphertext (16) || tag (16).
#[must_use]
pub fn seal_cookie(key: &[u8; 32], nonce: &[u8; 24], ad: &[u8], cookie: &[u8; 16]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..16].copy_from_slice(cookie);
    let cipher = XChaCha20Poly1305::new(key.into());
    let Ok(tag) = cipher.encrypt_in_place_detached(nonce.into(), ad, &mut out[..16]) else {
        unreachable!("16 bytes always fit XChaCha20-Poly1305")
    };
    out[16..].copy_from_slice(&tag);
    out
}

/// Opens [`seal_cookie`]'s output; `None` if it does not verify.
#[must_use]
pub fn open_cookie(
    key: &[u8; 32],
    nonce: &[u8; 24],
    ad: &[u8],
    sealed: &[u8; 32],
) -> Option<[u8; 16]> {
    let mut cookie = [0u8; 16];
    cookie.copy_from_slice(&sealed[..16]);
    let tag = Tag::clone_from_slice(&sealed[16..]);
    let cipher = XChaCha20Poly1305::new(key.into());
    cipher
        .decrypt_in_place_detached(nonce.into(), ad, &mut cookie, &tag)
        .ok()?;
    Some(cookie)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_tamper() {
        let k = Key([7; 32]);
        let mut buf = [0u8; 64];
        buf[..5].copy_from_slice(b"hello");
        let n = k.seal(3, b"hdr", &mut buf, 5).unwrap();
        assert_eq!(n, 21);
        let mut c = buf;
        assert_eq!(k.open(3, b"hdr", &mut c[..n]), Some(5));
        assert_eq!(&c[..5], b"hello");
        for (nonce, ad) in [(4u64, &b"hdr"[..]), (3, b"hdR")] {
            let mut c = buf;
            assert_eq!(k.open(nonce, ad, &mut c[..n]), None);
        }
        let mut c = buf;
        c[n - 1] ^= 1;
        assert_eq!(k.open(3, b"hdr", &mut c[..n]), None);
        assert_ne!(k.rekey(), k);
        assert_eq!(k.rekey(), k.clone().rekey());
    }

    /// RFC 7693 Appendix E style check of the keyed mode with a 16-byte digest, against the
    /// value Python's `hashlib.blake2s(b"abc", key=bytes(range(32)), digest_size=16)` gives.
    #[test]
    fn keyed_blake2s_128() {
        let key: Vec<u8> = (0u8..32).collect();
        let m = mac(&key, &[b"a", b"bc"]);
        let hex: String = m.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "61ba5f165c194692e09d12520cc4c74a");
    }
}
