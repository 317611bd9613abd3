//! Endpoint configuration and its defaults.
#![forbid(unsafe_code)]

use std::time::Duration;

/// Tunables of one endpoint. Every shard of a server must use the same `cookie_key`, cookie
/// timings and clock origin (see [`super::cookie`]).
///
/// There is deliberately no `Default`: a default cookie key would be a key every deployment
/// shares. Build one with [`EndpointConfig::new`] and a key from the OS RNG.
#[derive(Clone)]
pub struct EndpointConfig {
    /// Master key for cookie secrets (32 bytes from the OS RNG, shared by all shards).
    pub cookie_key: [u8; 32],
    /// A session that receives nothing for this long is closed (`IdleTimeout`), plus a
    /// per-session jitter of up to 1/16 of it. Default 30 s.
    pub idle_timeout: Duration,
    /// Send a Ping after this long without receiving or pinging, minus a per-session jitter of
    /// up to 1/8 of it; `None` disables. Default 10 s.
    pub keepalive_interval: Option<Duration>,
    /// A client handshake not accepted by then is abandoned. Default 10 s.
    pub handshake_timeout: Duration,
    /// First Hello retransmission delay; doubles on each retransmission. Default 500 ms.
    pub handshake_initial_rto: Duration,
    /// Cap on the retransmission delay. Default 2 s.
    pub handshake_max_rto: Duration,
    /// Cookie secret rotation period. Default 120 s (as WireGuard).
    pub cookie_rotation: Duration,
    /// Oldest cookie accepted. Default 30 s (must exceed the handshake timeout).
    pub cookie_lifetime: Duration,
    /// Messages queued per session before `send` says `Full`. Default 256.
    pub data_queue_capacity: usize,
    /// Endpoint-wide control frames pending. Stateless cookie replies may use only half, so a
    /// Hello flood can never crowd out a session's Pong, Accept or Close. Default 1024.
    pub control_queue_capacity: usize,
    /// `Message` events pending before new Data is dropped (`EventQueueFull`); lifecycle
    /// events are never dropped. Default 4096.
    pub event_queue_capacity: usize,
    /// Sessions this endpoint holds at most. Default 65 536.
    pub max_sessions: usize,
    /// Largest Data payload, in bytes. Default 1200.
    pub max_payload: usize,
    /// Answer Hellos (act as a server). Default true.
    pub accept_incoming: bool,
    /// Most timer-heap entries one `handle_timeout` call takes (session timers run, stale
    /// entries skipped); the rest stay due and run on the next call, so a loop turn's work is
    /// bounded however many timers coincide. Default 256.
    pub timer_batch: usize,
}

impl EndpointConfig {
    /// The default `max_payload`.
    pub const DEFAULT_MAX_PAYLOAD: usize = 1200;

    /// The defaults above, with this cookie key.
    #[must_use]
    pub fn new(cookie_key: [u8; 32]) -> Self {
        EndpointConfig {
            cookie_key,
            idle_timeout: Duration::from_secs(30),
            keepalive_interval: Some(Duration::from_secs(10)),
            handshake_timeout: Duration::from_secs(10),
            handshake_initial_rto: Duration::from_millis(500),
            handshake_max_rto: Duration::from_secs(2),
            cookie_rotation: Duration::from_secs(120),
            cookie_lifetime: Duration::from_secs(30),
            data_queue_capacity: 256,
            control_queue_capacity: 1024,
            event_queue_capacity: 4096,
            max_sessions: 65_536,
            max_payload: Self::DEFAULT_MAX_PAYLOAD,
            accept_incoming: true,
            timer_batch: 256,
        }
    }

    /// The size of buffer `poll_transmit` needs: the largest datagram this endpoint emits.
    #[must_use]
    pub fn max_datagram(&self) -> usize {
        Self::datagram_size(self.max_payload)
    }

    /// The largest datagram an endpoint with this `max_payload` emits: what
    /// [`EndpointConfig::max_datagram`] returns, for checking a shard's datagram size before
    /// any endpoint exists (a config file's `shard.max_datagram`).
    #[must_use]
    pub const fn datagram_size(max_payload: usize) -> usize {
        let data = super::wire::HEADER_LEN.saturating_add(max_payload);
        if data > super::wire::MAX_CONTROL_LEN {
            data
        } else {
            super::wire::MAX_CONTROL_LEN
        }
    }
}

impl std::fmt::Debug for EndpointConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointConfig")
            .field("idle_timeout", &self.idle_timeout)
            .field("keepalive_interval", &self.keepalive_interval)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("data_queue_capacity", &self.data_queue_capacity)
            .field("max_sessions", &self.max_sessions)
            .field("max_payload", &self.max_payload)
            .field("timer_batch", &self.timer_batch)
            .finish_non_exhaustive()
    }
}
