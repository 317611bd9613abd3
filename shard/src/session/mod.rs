//! Sans-IO session protocol (issue 4): handshake, keepalive, replay protection and per-session
//! state for one shard, with no sockets and no clock.
//!
//! Every entry point of [`Endpoint`] takes the current [`Timestamp`] (nanoseconds since an
//! origin the caller picks) and bytes, and returns what happened; datagrams to send, events and
//! the next deadline are pulled with `poll_transmit`, `poll_event` and `poll_timeout`. The
//! io_uring driver calls this; so does the deterministic simulator in `sim` (feature `sim`, test support).
//!
//! # Driving an endpoint
//!
//! The driver owns one [`Endpoint`] per shard and, after anything happens (datagrams received,
//! a timer, an application call), drains transmits and events and re-arms its timer:
//!
//! ```
//! use std::net::SocketAddr;
//! use ringwire_shard::session::{ConnIdGen, Endpoint, EndpointConfig, Event, Handled, Keypair, Timestamp};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Production: cookie key and seed from the OS RNG, identity from the key file; all shards
//! // share the cookie key and the identity.
//! let server_id = Keypair::generate()?;
//! let config = EndpointConfig::new([7; 32], server_id.clone());
//! let mut ep = Endpoint::new(config, 0, 1, ConnIdGen::seed_from_u64(1), Timestamp::ZERO)?;
//! let mut buf = vec![0u8; ep.config().max_datagram()];
//!
//! // A datagram arrived (here: a client's Initiation, made by a second endpoint that knows
//! // the server's public key).
//! let mut client = Endpoint::new(EndpointConfig::new([9; 32], Keypair::generate()?), 0, 1, ConnIdGen::seed_from_u64(2), Timestamp::ZERO)?;
//! let server: SocketAddr = "192.0.2.1:4433".parse()?;
//! let _conn = client.connect(Timestamp::ZERO, server, Some(server_id.public))?;
//! let init = client.poll_transmit(Timestamp::ZERO, &mut buf).ok_or("no initiation")?;
//! let (from, bytes): (SocketAddr, Vec<u8>) = ("198.51.100.7:5000".parse()?, buf[..init.len].to_vec());
//!
//! let now = Timestamp::from_millis(5);
//! match ep.handle_datagram(now, from, &bytes) {
//!     Handled::Consumed => {}
//!     Handled::OtherShard(_k) => { /* hand (from, bytes) to shard k over its ring */ }
//!     Handled::Dropped(_reason) => { /* already counted; nothing to send */ }
//! }
//! // The Diffie-Hellman work waits for the turn's timers: at most `handshakes_per_turn` per
//! // call, after the turn's datagrams of established sessions.
//! if ep.poll_timeout().is_some_and(|t| t <= now) {
//!     ep.handle_timeout(now);
//! }
//! while let Some(t) = ep.poll_transmit(now, &mut buf) {
//!     // send &buf[..t.len] to t.dst; when its completion arrives:
//!     if let Some(conn) = t.conn {
//!         ep.on_send_completed(conn, true);
//!     }
//!     assert!(t.len <= bytes.len()); // a Response is never larger than the Initiation
//! }
//! while let Some(event) = ep.poll_event() {
//!     match event {
//!         // Connected comes when the initiator's first datagram confirms the session.
//!         Event::Connected { .. } | Event::Message { .. } | Event::Disconnected { .. } => {}
//!     }
//! }
//! if let Some(_deadline) = ep.poll_timeout() {
//!     // arm a timer; at the deadline call ep.handle_timeout(now) and drain again. It runs a
//!     // bounded batch: while poll_timeout() is still <= now, call it again next turn (once
//!     // poll_transmit has drained the control queue, if !ep.can_run_timers()).
//! }
//! assert_eq!(ep.session_count(), 1); // unconfirmed until the initiator's first datagram
//! # Ok(())
//! # }
//! ```
//!
//! Layout, one concern per file:
//!
//! | file | concern |
//! |---|---|
//! | `time.rs` | [`Timestamp`], virtual time |
//! | `conn_id.rs` | [`ConnId`], [`shard_of`], [`connect_shard`], the keyed ID generator |
//! | `wire.rs` | datagram codec with named field ranges (`docs/PROTOCOL.md`) |
//! | `identity.rs` | [`Keypair`], [`PublicKey`] (base64), [`PrivateKey`] (wiped on drop) |
//! | `crypto.rs` | HASH, MAC, the transport AEAD, REKEY, cookie sealing |
//! | `handshake.rs` | the Noise IKpsk2 messages (snow), TAI64N, plaintext-mode handshake |
//! | `cookie.rs` | mac1, mac2, cookies and their secret rotation |
//! | `initiations.rs` | the responder's initiation replay table |
//! | `bucket.rs` | token buckets (handshake load, stateless reply rates) |
//! | `replay.rs` | 1024-bit sliding replay window |
//! | `drop_reason.rs` | [`DropReason`] and counters |
//! | `config.rs` | [`EndpointConfig`] and defaults |
//! | `state.rs` | per-session state |
//! | `control.rs` | the control-frame priority queue |
//! | `stats.rs` | the flight recorder |
//! | `event.rs` | outcomes and events returned to the driver |
//! | `endpoint.rs` (+ `endpoint/`) | [`Endpoint`]: the session table and API; inbound; responder handshakes; timers |
//! | `sim.rs` | seeded in-memory network and virtual clock (test harness) |
//! | `clock.rs` | [`SessionClock`]: the server's one origin for timestamps in the shard loop |
//! | `host.rs` | [`SessionHost`]: sessions inside the shard loop, the [`SessionApp`] API |
//! | `client.rs` | a plain-socket client pool for tests and tools |
//! | `admission/` | admission control before a session exists: caps, per-prefix buckets, memory budget, the node-wide count exchange |
//! | `manager/` | the connection manager after: tags, protection, decaying tags, scores, watermark trimming |
//!
//! Protocol version 2 (`docs/PROTOCOL.md`): Noise IKpsk2 authenticates both static keys and
//! encrypts every transport message (header as associated data); plaintext only by explicit
//! choice ([`EndpointConfig::plaintext`]). Limits, on purpose: no reliability or ordering for
//! Data (datagram semantics); no connection migration (a session accepts datagrams from its
//! peer's handshake address only); rekeying ratchets keys forward without a new handshake, so
//! it gives forward secrecy for old traffic but no post-compromise security.
#![forbid(unsafe_code)]

pub mod admission;
mod bucket;
pub mod client;
pub mod clock;
pub mod config;
pub mod conn_id;
mod control;
pub mod cookie;
pub mod crypto;
pub mod drop_reason;
pub mod endpoint;
pub mod event;
pub mod handshake;
pub mod host;
pub mod identity;
mod initiations;
pub mod manager;
pub mod replay;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
mod state;
pub mod stats;
pub mod time;
pub mod wire;

pub use clock::SessionClock;
pub use config::{EndpointConfig, NoiseConfig, Security};
pub use conn_id::{ConnId, ConnIdGen, connect_shard, shard_of};
pub use drop_reason::{DropCounters, DropReason};
pub use endpoint::{Admit, CloseOutcome, Endpoint, EndpointError, Snapshot};
pub use event::{CloseReason, Closer, ConnectError, Event, Handled, SendOutcome, Transmit};
pub use host::{
    Connecting, HostError, HostStats, Placement, SessionApp, SessionHost, SessionMsg, SessionSend,
    Sessions, ShardSend, random_key,
};
pub use identity::{KeyError, Keypair, PrivateKey, PublicKey};
pub use stats::{EndpointStats, SessionState, SessionStats};
pub use time::Timestamp;

/// `size_of` of one session's state as held in the table (excluding the table's own per-entry
/// overhead and any queued Data). Exposed so tests and benchmarks can report and bound it.
/// Keys (two 32-byte keys and their rotation state) are inline; an idle session owns no other
/// heap memory (its Data queue and previous receiving key are boxed and freed when unused).
pub const SESSION_STATE_SIZE: usize = std::mem::size_of::<state::Session>();

/// The other per-session memory of an endpoint, entry by entry (each table adds one control
/// byte per slot and its slack), for `tests/session_memory.rs`'s bytes-per-idle-session figure.
pub mod footprint {
    use std::mem::size_of;
    use std::net::SocketAddr;

    use super::{ConnId, Timestamp};

    /// A slot of the session table: ID and boxed session.
    pub const SESSION_TABLE_ENTRY: usize = size_of::<(ConnId, Box<super::state::Session>)>();
    /// A slot of the responder's initiation replay table (Noise mode; one per session).
    pub const INITIATION_TABLE_ENTRY: usize = super::initiations::ENTRY_SIZE;
    /// A slot of the peer index (plaintext responders and every initiator session).
    pub const PEER_INDEX_ENTRY: usize = size_of::<((SocketAddr, u64), ConnId)>();
    /// An entry of the timer heap (one per session when idle).
    pub const TIMER_ENTRY: usize = size_of::<std::cmp::Reverse<(Timestamp, ConnId)>>();
}
