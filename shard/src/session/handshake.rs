//! The Noise handshake of protocol version 2, message by message, with snow doing the Noise
//! work (`docs/PROTOCOL.md` §5). The endpoint and the test vectors both build and read
//! Initiations and Responses through these functions only.
//!
//! ```text
//! Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s          prologue = "ringwire v2" || Initiation[0..28]
//!   <- s                                         (the initiator is configured with it)
//!   -> e, es, s, ss      payload: TAI64N timestamp (12)             Initiation[28..136]
//!   <- e, ee, se, psk    payload: responder CID (8) || reset token (16)  Response[20..92]
//! split() -> (k1, k2): initiator sends with k1, responder with k2
//! ```
//!
//! Randomness (the ephemeral keys) comes from a per-handshake seed the endpoint draws from its
//! keyed generator (itself seeded from the OS RNG in production), expanded with the BLAKE3
//! XOF: the simulator is then reproducible byte for byte, and no handshake shares a stream.
#![forbid(unsafe_code)]

use std::time::Duration;

use snow::params::{CipherChoice, DHChoice, HashChoice, NoiseParams};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use snow::{Builder, HandshakeState};
use zeroize::Zeroizing;

use super::cookie;
use super::crypto::{Key, MAC_LEN};
use super::identity::{Keypair, PublicKey};
use super::wire::{
    self, INITIATION_LEN, MsgType, NOISE1_LEN, NOISE2_LEN, RESPONSE_LEN, RESPONSE_PAYLOAD_LEN,
    TIMESTAMP_LEN, field,
};

/// The Noise protocol name.
pub const PROTOCOL_NAME: &str = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
/// The prologue starts with these 11 ASCII bytes; the Initiation's first 28 bytes follow.
pub const PROLOGUE_LABEL: &[u8] = b"ringwire v2";
/// The psk slot of IKpsk2 (after message 2's tokens).
const PSK_SLOT: u8 = 2;

/// X25519 operations per handshake step (for `EndpointStats::dh_operations`).
pub mod dh_cost {
    /// Initiator writes message 1: generate `e`, then `es`, `ss`.
    pub const WRITE_INITIATION: u64 = 3;
    /// Responder reads message 1: `es`, `ss`.
    pub const READ_INITIATION: u64 = 2;
    /// Responder writes message 2: generate `e`, then `ee`, `se`.
    pub const WRITE_RESPONSE: u64 = 3;
    /// Initiator reads message 2: `ee`, `se`.
    pub const READ_RESPONSE: u64 = 2;
}

/// Why a handshake message was refused (all are counted as `DropReason::HandshakeFailed`).
#[derive(Debug, thiserror::Error)]
#[error("noise: {0}")]
pub struct HandshakeError(#[from] snow::Error);

/// A TAI64N label: seconds since the Unix epoch plus 2^62 (u64 BE), nanoseconds (u32 BE).
#[must_use]
pub fn tai64n(since_unix_epoch: Duration) -> [u8; TIMESTAMP_LEN] {
    let mut out = [0u8; TIMESTAMP_LEN];
    let secs = since_unix_epoch.as_secs().saturating_add(1 << 62);
    out[..8].copy_from_slice(&secs.to_be_bytes());
    out[8..].copy_from_slice(&since_unix_epoch.subsec_nanos().to_be_bytes());
    out
}

/// The time since the Unix epoch a TAI64N label names (`None`: before it, or nanos ≥ 10^9).
#[must_use]
pub fn from_tai64n(t: &[u8; TIMESTAMP_LEN]) -> Option<Duration> {
    let mut s = [0u8; 8];
    s.copy_from_slice(&t[..8]);
    let mut n = [0u8; 4];
    n.copy_from_slice(&t[8..]);
    let secs = u64::from_be_bytes(s).checked_sub(1 << 62)?;
    let nanos = u32::from_be_bytes(n);
    (nanos < 1_000_000_000).then(|| Duration::new(secs, nanos))
}

/// The BLAKE3 XOF of a 32-byte seed, as snow's RNG.
struct SeededRng(blake3::OutputReader);

impl Random for SeededRng {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.0.fill(dest);
        Ok(())
    }
}

/// snow's default primitives, with [`SeededRng`] as the RNG.
struct Resolver {
    seed: Zeroizing<[u8; 32]>,
}

impl CryptoResolver for Resolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        let reader = blake3::Hasher::new_keyed(&self.seed)
            .update(b"ringwire v2 handshake rng")
            .finalize_xof();
        Some(Box::new(SeededRng(reader)))
    }
    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }
    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }
    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}

fn params() -> NoiseParams {
    let Ok(p) = PROTOCOL_NAME.parse() else {
        unreachable!("a valid Noise protocol name")
    };
    p
}

fn builder(seed: [u8; 32]) -> Builder<'static> {
    Builder::with_resolver(
        params(),
        Box::new(Resolver {
            seed: Zeroizing::new(seed),
        }),
    )
}

fn prologue(initiation: &[u8]) -> [u8; 39] {
    let mut p = [0u8; 39];
    p[..11].copy_from_slice(PROLOGUE_LABEL);
    p[11..].copy_from_slice(&initiation[..28]);
    p
}

/// The route byte of an Initiation (offset 4): the first byte of
/// `HASH(initiator static public key || initiator CID as u64 BE)`. Every Initiation of one
/// (key, CID) pair, retransmissions included, reaches one shard, which holds that pair's replay
/// state; the sessions of one key (a gateway, a load generator) still spread over the shards.
#[must_use]
pub fn route_tag(initiator: &PublicKey, initiator_conn_id: u64) -> u8 {
    super::crypto::hash(&[initiator.as_bytes(), &initiator_conn_id.to_be_bytes()])[0]
}

/// Transport keys from `split()`: this side's sending and receiving keys.
#[derive(Debug)]
pub struct SessionKeys {
    /// Key for what this side sends.
    pub send: Key,
    /// Key for what this side receives.
    pub recv: Key,
}

fn split(hs: &mut HandshakeState, initiator: bool) -> SessionKeys {
    let (k1, k2) = hs.dangerously_get_raw_split();
    let (k1, k2) = (Key(k1), Key(k2));
    if initiator {
        SessionKeys { send: k1, recv: k2 }
    } else {
        SessionKeys { send: k2, recv: k1 }
    }
}

/// What an initiator needs to build one Initiation.
#[derive(Debug)]
pub struct InitiationParams<'a> {
    /// The initiator's static keypair.
    pub local: &'a Keypair,
    /// The responder's static public key.
    pub remote: &'a PublicKey,
    /// The pre-shared key (32 zero bytes when none is configured).
    pub psk: &'a [u8; 32],
    /// The initiator's connection ID.
    pub initiator_conn_id: u64,
    /// The attempt number (packet number field).
    pub attempt: u64,
    /// TAI64N of the initiator's clock.
    pub timestamp: [u8; TIMESTAMP_LEN],
    /// A fresh cookie from the responder, for mac2.
    pub cookie: Option<[u8; MAC_LEN]>,
    /// Seed of this handshake's randomness.
    pub rng_seed: [u8; 32],
    /// Test vectors only: this ephemeral private key instead of one from `rng_seed`.
    pub fixed_ephemeral: Option<&'a [u8; 32]>,
}

/// Builds an Initiation into `out`; returns the initiator's handshake state, waiting for the
/// Response.
pub fn write_initiation(
    p: &InitiationParams<'_>,
    out: &mut [u8; INITIATION_LEN],
) -> Result<HandshakeState, HandshakeError> {
    out.fill(0);
    let route = u64::from(route_tag(&p.local.public, p.initiator_conn_id)) << 56;
    wire::write_header(out, MsgType::Initiation, 0, route, p.attempt);
    out[field::INIT_CONN_ID].copy_from_slice(&p.initiator_conn_id.to_be_bytes());
    let pro = prologue(out);
    let mut b = builder(p.rng_seed)
        .local_private_key(p.local.private.as_bytes())?
        .remote_public_key(p.remote.as_bytes())?
        .psk(PSK_SLOT, p.psk)?
        .prologue(&pro)?;
    if let Some(e) = p.fixed_ephemeral {
        b = b.fixed_ephemeral_key_for_testing_only(e);
    }
    let mut hs = b.build_initiator()?;
    let n = hs.write_message(&p.timestamp, &mut out[field::INIT_NOISE])?;
    debug_assert_eq!(n, NOISE1_LEN);
    let m1 = cookie::mac1(
        &cookie::mac1_key(p.remote.as_bytes()),
        &out[..field::INIT_MAC1.start],
    );
    out[field::INIT_MAC1].copy_from_slice(&m1);
    if let Some(c) = p.cookie {
        let m2 = cookie::mac2(&c, &out[..field::INIT_MAC2.start]);
        out[field::INIT_MAC2].copy_from_slice(&m2);
    }
    Ok(hs)
}

/// A responder's handshake after reading a valid Initiation.
pub struct ReadInitiation {
    /// The handshake, ready to write the Response.
    pub state: HandshakeState,
    /// The initiator's static public key.
    pub initiator: PublicKey,
    /// The initiator's TAI64N timestamp.
    pub timestamp: [u8; TIMESTAMP_LEN],
}

impl std::fmt::Debug for ReadInitiation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadInitiation")
            .field("initiator", &self.initiator)
            .finish_non_exhaustive()
    }
}

/// Reads an Initiation (mac1 already checked by the caller): two X25519 operations.
pub fn read_initiation(
    local: &Keypair,
    psk: &[u8; 32],
    initiation: &[u8; INITIATION_LEN],
    rng_seed: [u8; 32],
    fixed_ephemeral: Option<&[u8; 32]>,
) -> Result<ReadInitiation, HandshakeError> {
    let pro = prologue(initiation);
    let mut b = builder(rng_seed)
        .local_private_key(local.private.as_bytes())?
        .psk(PSK_SLOT, psk)?
        .prologue(&pro)?;
    if let Some(e) = fixed_ephemeral {
        b = b.fixed_ephemeral_key_for_testing_only(e);
    }
    let mut state = b.build_responder()?;
    let mut payload = [0u8; NOISE1_LEN];
    let n = state.read_message(&initiation[field::INIT_NOISE], &mut payload)?;
    if n != TIMESTAMP_LEN {
        return Err(snow::Error::Input.into());
    }
    let Some(rs) = state.get_remote_static() else {
        return Err(snow::Error::Input.into());
    };
    let mut key = [0u8; 32];
    key.copy_from_slice(rs);
    let mut timestamp = [0u8; TIMESTAMP_LEN];
    timestamp.copy_from_slice(&payload[..TIMESTAMP_LEN]);
    Ok(ReadInitiation {
        state,
        initiator: PublicKey::from_bytes(key),
        timestamp,
    })
}

/// Writes the Response to a read Initiation into `out`; returns the responder's keys.
pub fn write_response(
    mut read: ReadInitiation,
    initiator_conn_id: u64,
    echo: u64,
    responder_conn_id: u64,
    reset_token: &[u8; MAC_LEN],
    out: &mut [u8; RESPONSE_LEN],
) -> Result<SessionKeys, HandshakeError> {
    out.fill(0);
    wire::write_header(out, MsgType::Response, 0, initiator_conn_id, echo);
    let mut payload = [0u8; RESPONSE_PAYLOAD_LEN];
    payload[..8].copy_from_slice(&responder_conn_id.to_be_bytes());
    payload[8..].copy_from_slice(reset_token);
    let n = read
        .state
        .write_message(&payload, &mut out[field::RESP_NOISE])?;
    debug_assert_eq!(n, NOISE2_LEN);
    let m1 = cookie::mac1(
        &cookie::mac1_key(read.initiator.as_bytes()),
        &out[..field::RESP_MAC1.start],
    );
    out[field::RESP_MAC1].copy_from_slice(&m1);
    Ok(split(&mut read.state, false))
}

/// What an initiator learns from a valid Response.
#[derive(Debug)]
pub struct ReadResponse {
    /// The responder's connection ID (the initiator's `dst` from now on).
    pub responder_conn_id: u64,
    /// The reset token for that connection ID.
    pub reset_token: [u8; MAC_LEN],
    /// The initiator's transport keys.
    pub keys: SessionKeys,
}

/// Reads a Response (mac1 already checked by the caller): two X25519 operations.
pub fn read_response(
    state: &mut HandshakeState,
    response: &[u8; RESPONSE_LEN],
) -> Result<ReadResponse, HandshakeError> {
    let mut payload = [0u8; NOISE2_LEN];
    let n = state.read_message(&response[field::RESP_NOISE], &mut payload)?;
    if n != RESPONSE_PAYLOAD_LEN {
        return Err(snow::Error::Input.into());
    }
    let mut cid = [0u8; 8];
    cid.copy_from_slice(&payload[..8]);
    let mut reset_token = [0u8; MAC_LEN];
    reset_token.copy_from_slice(&payload[8..RESPONSE_PAYLOAD_LEN]);
    Ok(ReadResponse {
        responder_conn_id: u64::from_be_bytes(cid),
        reset_token,
        keys: split(state, true),
    })
}

/// Plaintext mode: builds an Initiation (no Noise message; mac1 keyed by the all-zero key);
/// returns its length.
pub fn write_plain_initiation(
    initiator_conn_id: u64,
    attempt: u64,
    cookie: Option<[u8; MAC_LEN]>,
    out: &mut [u8; INITIATION_LEN],
) -> usize {
    out.fill(0);
    let route = (initiator_conn_id & 0xff) << 56;
    wire::write_header(out, MsgType::Initiation, 0, route, attempt);
    out[field::INIT_CONN_ID].copy_from_slice(&initiator_conn_id.to_be_bytes());
    let m1 = cookie::mac1(
        &cookie::mac1_key(&[0; 32]),
        &out[..field::INIT_PLAIN_MAC1.start],
    );
    out[field::INIT_PLAIN_MAC1].copy_from_slice(&m1);
    if let Some(c) = cookie {
        let m2 = cookie::mac2(&c, &out[..field::INIT_PLAIN_MAC2.start]);
        out[field::INIT_PLAIN_MAC2].copy_from_slice(&m2);
    }
    wire::INITIATION_PLAIN_LEN
}

/// Plaintext mode: builds a Response carrying the responder's connection ID; returns its
/// length.
pub fn write_plain_response(
    initiator_conn_id: u64,
    echo: u64,
    responder_conn_id: u64,
    out: &mut [u8; INITIATION_LEN],
) -> usize {
    out.fill(0);
    wire::write_header(out, MsgType::Response, 0, initiator_conn_id, echo);
    out[field::RESP_PLAIN_CONN_ID].copy_from_slice(&responder_conn_id.to_be_bytes());
    let m1 = cookie::mac1(
        &cookie::mac1_key(&[0; 32]),
        &out[..field::RESP_PLAIN_MAC1.start],
    );
    out[field::RESP_PLAIN_MAC1].copy_from_slice(&m1);
    wire::RESPONSE_PLAIN_LEN
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    #[test]
    fn tai64n_round_trip() {
        let d = Duration::new(1_700_000_000, 123_456_789);
        let t = tai64n(d);
        assert_eq!(t[0], 0x40, "2^62 offset");
        assert_eq!(from_tai64n(&t), Some(d));
        assert_eq!(from_tai64n(&[0; 12]), None);
    }

    #[test]
    fn full_handshake_agrees_on_keys() {
        let (i, r) = (
            Keypair::from_seed_bytes([1; 32]),
            Keypair::from_seed_bytes([2; 32]),
        );
        let psk = [0u8; 32];
        let p = InitiationParams {
            local: &i,
            remote: &r.public,
            psk: &psk,
            initiator_conn_id: 77,
            attempt: 0,
            timestamp: tai64n(Duration::from_secs(1_700_000_000)),
            cookie: None,
            rng_seed: [3; 32],
            fixed_ephemeral: None,
        };
        let mut init = [0u8; INITIATION_LEN];
        let mut ihs = write_initiation(&p, &mut init).unwrap();
        assert_eq!(init[4], route_tag(&i.public, 77));
        let read = read_initiation(&r, &psk, &init, [4; 32], None).unwrap();
        assert_eq!(read.initiator, i.public);
        let mut resp = [0u8; RESPONSE_LEN];
        let rk = write_response(read, 77, 0, 0x0100_0000_0000_0009, &[6; 16], &mut resp).unwrap();
        let got = read_response(&mut ihs, &resp).unwrap();
        assert_eq!(got.responder_conn_id, 0x0100_0000_0000_0009);
        assert_eq!(got.reset_token, [6; 16]);
        assert_eq!(got.keys.send, rk.recv);
        assert_eq!(got.keys.recv, rk.send);
        assert_ne!(rk.send, rk.recv);
        // A different psk on the responder: the Response fails at the initiator.
        let mut ihs = write_initiation(&p, &mut init).unwrap();
        let read = read_initiation(&r, &[1; 32], &init, [4; 32], None).unwrap();
        write_response(read, 77, 0, 9, &[6; 16], &mut resp).unwrap();
        assert!(read_response(&mut ihs, &resp).is_err());
        // The header is bound: a changed CID (byte 27) fails at the responder.
        write_initiation(&p, &mut init).unwrap();
        init[27] ^= 1;
        assert!(read_initiation(&r, &psk, &init, [4; 32], None).is_err());
    }
}
