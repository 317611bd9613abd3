//! Endpoint configuration and its defaults.
#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::time::Duration;

use super::identity::{Keypair, PublicKey};

/// How sessions are protected.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Security {
    /// Noise IKpsk2: every session authenticated (both static keys) and encrypted. The
    /// default: [`EndpointConfig::new`] takes an identity.
    Noise(Box<NoiseConfig>),
    /// No authentication, no encryption: for trusted paths and for measuring the cost of
    /// cryptography. Only by explicit choice ([`EndpointConfig::plaintext`]).
    None,
}

/// The Noise mode's keys and admission rules.
#[derive(Clone)]
#[non_exhaustive]
pub struct NoiseConfig {
    /// This node's static keypair. Every shard of a server holds the same one.
    pub identity: Keypair,
    /// The network's pre-shared key, mixed into every handshake (`psk2`). 32 zero bytes when
    /// none is configured, as WireGuard.
    pub psk: [u8; 32],
    /// Only these initiators may open sessions (`None`: any authenticated peer, subject to
    /// the application's admission callback).
    pub allowed_peers: Option<HashSet<PublicKey>>,
}

impl NoiseConfig {
    /// `identity`, no pre-shared key, any peer.
    #[must_use]
    pub fn new(identity: Keypair) -> Self {
        NoiseConfig {
            identity,
            psk: [0; 32],
            allowed_peers: None,
        }
    }
}

impl Drop for NoiseConfig {
    /// The pre-shared key is wiped with the configuration (the identity's private key wipes
    /// itself).
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        self.psk.zeroize();
    }
}

impl std::fmt::Debug for NoiseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoiseConfig")
            .field("public", &self.identity.public)
            .field("psk", &(self.psk != [0; 32]))
            .field(
                "allowed_peers",
                &self.allowed_peers.as_ref().map(HashSet::len),
            )
            .finish_non_exhaustive()
    }
}

/// Tunables of one endpoint. Every shard of a server must use the same `cookie_key`,
/// identity, cookie rotation and clock origin.
///
/// There is deliberately no `Default`: a default key would be a key every deployment shares.
/// Build one with [`EndpointConfig::new`] (Noise, with a keypair) or, by explicit choice,
/// [`EndpointConfig::plaintext`].
#[derive(Clone)]
pub struct EndpointConfig {
    /// Master key for cookie secrets (32 bytes from the OS RNG, shared by all shards).
    pub cookie_key: [u8; 32],
    /// How sessions are protected.
    pub security: Security,
    /// The Unix time of `Timestamp::ZERO`: Initiation timestamps are wall-clock (TAI64N),
    /// and a responder refuses ones more than `initiation_replay_window` from its own clock.
    /// `SessionHost` and `ClientPool` set it from a [`SessionClock`](super::SessionClock);
    /// tests fix it. Whoever drives an `Endpoint` directly must set it too (the sans-IO core
    /// reads no clock): with the default, zero, its Initiations say 1970 and a responder on
    /// real time refuses them (`StaleTimestamp`).
    pub unix_time_at_origin: Duration,
    /// A session that receives nothing for this long is closed (`IdleTimeout`), plus a
    /// per-session jitter of up to 1/16 of it. Default 30 s.
    pub idle_timeout: Duration,
    /// Send a Ping after this long without receiving or pinging, minus a per-session jitter of
    /// up to 1/8 of it; `None` disables. Default 10 s.
    pub keepalive_interval: Option<Duration>,
    /// An initiator's handshake not answered by then is abandoned; a responder's session not
    /// confirmed by then (no authenticated datagram from the initiator) is freed. Default 10 s.
    pub handshake_timeout: Duration,
    /// First Initiation retransmission delay; doubles on each retransmission. Default 500 ms.
    pub handshake_initial_rto: Duration,
    /// Cap on the retransmission delay. Default 2 s.
    pub handshake_max_rto: Duration,
    /// Cookie secret rotation period; an initiator uses a cookie for at most this long.
    /// Default 120 s (as WireGuard).
    pub cookie_rotation: Duration,
    /// Messages queued per session before `send` says `Full`. Default 256.
    pub data_queue_capacity: usize,
    /// Endpoint-wide control frames pending. Stateless replies (CookieReply, Reset) may use
    /// only half. Default 1024.
    pub control_queue_capacity: usize,
    /// `Message` events pending before new Data is dropped (`EventQueueFull`); lifecycle
    /// events are never dropped. Default 4096.
    pub event_queue_capacity: usize,
    /// Sessions this endpoint holds at most (unconfirmed ones included). Default 65 536.
    pub max_sessions: usize,
    /// Largest Data payload, in bytes. Longer Data received is dropped (`TooLarge`). Default 1200.
    pub max_payload: usize,
    /// Answer Initiations (act as a responder). Default true.
    pub accept_incoming: bool,
    /// Most timer-heap entries one `handle_timeout` call takes. Default 256.
    pub timer_batch: usize,
    /// Handshakes per second this shard completes before it is *under load* and demands
    /// cookies (mac2) from initiators. Default 1000.
    pub handshakes_per_second: u32,
    /// Initiations with a valid mac1 waiting for their Diffie-Hellman work; beyond this they
    /// are dropped (`HandshakeQueueFull`); above half of it the shard is under load. Default 256.
    pub handshake_queue_capacity: usize,
    /// Initiations one `handle_timeout` call processes at most (the Diffie-Hellman work of a
    /// loop turn). Default 32.
    pub handshakes_per_turn: usize,
    /// Unconfirmed responder sessions (Response sent, no authenticated datagram yet) held at
    /// most; further Initiations are dropped (`HandshakeQueueFull`). Default 4096.
    pub max_unconfirmed: usize,
    /// How long a responder remembers an initiator's last timestamp after its session ended,
    /// and how far from its own clock it accepts Initiation timestamps. Default 180 s.
    pub initiation_replay_window: Duration,
    /// Entries of the initiation replay table at most (live sessions' entries included, so at
    /// least `max_sessions` is used); when full, new handshakes are refused
    /// (`ReplayTableFull`) rather than live entries forgotten. Default 131 072 (twice the
    /// default `max_sessions`: room for the entries of sessions ended within the window).
    pub replay_table_capacity: usize,
    /// Rotate a session's sending key after this many datagrams under it. Default 2^30.
    pub rekey_after_messages: u64,
    /// Rotate a session's sending key after it has been in use this long. Default 120 s.
    pub rekey_after: Duration,
    /// How long a receiver keeps the previous receiving key after the peer's first datagram
    /// under the next one (at least this, or 3 smoothed RTTs if longer). Default 1 s.
    pub previous_key_lifetime: Duration,
    /// CookieReplies sent per second at most (burst the same). Each costs one MAC and one
    /// XChaCha20-Poly1305 seal and is smaller than its trigger; the limit only caps the
    /// reflected bandwidth, and must stay well above what legitimate initiators need under a
    /// flood (they compete with spoofed ones for it). Default 50 000.
    pub cookie_replies_per_second: u32,
    /// Stateless Resets sent per second at most (burst the same; the rest are counted as
    /// `resets_suppressed`). A Reset only hastens what the idle timeout does anyway.
    /// Default 1000.
    pub resets_per_second: u32,
    /// Admission control (caps, per-prefix limits, the memory budget, the node-wide count
    /// exchange), decided before any session state exists. `None` (the library's default):
    /// only `max_sessions` and `max_unconfirmed` bound the table. The `ringwire` binary
    /// always sets it (`[sessions.admission]`). When set, `max_sessions` becomes its
    /// `max_sessions_shard` and `max_unconfirmed` is raised to at least its
    /// `max_pending_handshakes`, so that it alone decides.
    pub admission: Option<crate::session::admission::AdmissionConfig>,
    /// The connection manager (tags, protection, trimming to the node's watermarks). `None`
    /// (the library's default): sessions are never trimmed and tag calls answer
    /// `TagError::UnknownSession`. The `ringwire` binary always sets it
    /// (`[sessions.manager]`).
    pub manager: Option<crate::session::manager::ManagerConfig>,
}

impl EndpointConfig {
    /// The default `max_payload`.
    pub const DEFAULT_MAX_PAYLOAD: usize = 1200;

    /// Noise sessions with `identity` (no pre-shared key, any authenticated peer) and the
    /// defaults above.
    #[must_use]
    pub fn new(cookie_key: [u8; 32], identity: Keypair) -> Self {
        Self::with_security(
            cookie_key,
            Security::Noise(Box::new(NoiseConfig::new(identity))),
        )
    }

    /// Plaintext sessions (`security = none`): not authenticated, not encrypted. For trusted
    /// paths and for measuring the cost of cryptography; never the default.
    #[must_use]
    pub fn plaintext(cookie_key: [u8; 32]) -> Self {
        Self::with_security(cookie_key, Security::None)
    }

    /// The defaults with this security.
    #[must_use]
    pub fn with_security(cookie_key: [u8; 32], security: Security) -> Self {
        EndpointConfig {
            cookie_key,
            security,
            unix_time_at_origin: Duration::ZERO,
            idle_timeout: Duration::from_secs(30),
            keepalive_interval: Some(Duration::from_secs(10)),
            handshake_timeout: Duration::from_secs(10),
            handshake_initial_rto: Duration::from_millis(500),
            handshake_max_rto: Duration::from_secs(2),
            cookie_rotation: Duration::from_secs(120),
            data_queue_capacity: 256,
            control_queue_capacity: 1024,
            event_queue_capacity: 4096,
            max_sessions: 65_536,
            max_payload: Self::DEFAULT_MAX_PAYLOAD,
            accept_incoming: true,
            timer_batch: 256,
            handshakes_per_second: 1000,
            handshake_queue_capacity: 256,
            handshakes_per_turn: 32,
            max_unconfirmed: 4096,
            initiation_replay_window: Duration::from_secs(180),
            replay_table_capacity: 2 * 65_536,
            rekey_after_messages: 1 << 30,
            rekey_after: Duration::from_secs(120),
            previous_key_lifetime: Duration::from_secs(1),
            cookie_replies_per_second: 50_000,
            resets_per_second: 1000,
            admission: None,
            manager: None,
        }
    }

    /// This endpoint's static public key (`None` in plaintext mode).
    #[must_use]
    pub fn public_key(&self) -> Option<PublicKey> {
        match &self.security {
            Security::Noise(n) => Some(n.identity.public),
            Security::None => None,
        }
    }

    /// Whether sessions are encrypted.
    #[must_use]
    pub fn encrypted(&self) -> bool {
        matches!(self.security, Security::Noise(_))
    }

    /// The size of buffer `poll_transmit` needs: the largest datagram this endpoint emits.
    #[must_use]
    pub fn max_datagram(&self) -> usize {
        Self::datagram_size(self.max_payload)
    }

    /// The largest datagram an endpoint with this `max_payload` emits (encrypted: 20 + n + 16),
    /// for checking a shard's datagram size before any endpoint exists.
    #[must_use]
    pub const fn datagram_size(max_payload: usize) -> usize {
        let data = super::wire::transport_len(max_payload, true);
        if data > super::wire::MAX_CONTROL_LEN {
            data
        } else {
            super::wire::MAX_CONTROL_LEN
        }
    }
}

impl std::fmt::Debug for EndpointConfig {
    /// Never prints key material (the cookie key; the identity shows its public key only).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointConfig")
            .field("security", &self.security)
            .field("idle_timeout", &self.idle_timeout)
            .field("keepalive_interval", &self.keepalive_interval)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("data_queue_capacity", &self.data_queue_capacity)
            .field("max_sessions", &self.max_sessions)
            .field("max_payload", &self.max_payload)
            .field("timer_batch", &self.timer_batch)
            .field("handshakes_per_second", &self.handshakes_per_second)
            .field("handshakes_per_turn", &self.handshakes_per_turn)
            .field("rekey_after_messages", &self.rekey_after_messages)
            .field("rekey_after", &self.rekey_after)
            .finish_non_exhaustive()
    }
}
