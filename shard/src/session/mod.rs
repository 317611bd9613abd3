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
//! use ringwire_shard::session::{ConnIdGen, Endpoint, EndpointConfig, Event, Handled, Timestamp};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Production: cookie key and seed from the OS RNG; all shards share the key.
//! let config = EndpointConfig::new([7; 32]);
//! let mut ep = Endpoint::new(config, 0, 1, ConnIdGen::seed_from_u64(1), Timestamp::ZERO)?;
//! let mut buf = vec![0u8; ep.config().max_datagram()];
//!
//! // A datagram arrived (here: a client's first Hello, made by a second endpoint).
//! let mut client = Endpoint::new(EndpointConfig::new([9; 32]), 0, 1, ConnIdGen::seed_from_u64(2), Timestamp::ZERO)?;
//! let server: SocketAddr = "192.0.2.1:4433".parse()?;
//! let _conn = client.connect(Timestamp::ZERO, server)?;
//! let hello = client.poll_transmit(Timestamp::ZERO, &mut buf).ok_or("no hello")?;
//! let (from, bytes): (SocketAddr, Vec<u8>) = ("198.51.100.7:5000".parse()?, buf[..hello.len].to_vec());
//!
//! let now = Timestamp::from_millis(5);
//! match ep.handle_datagram(now, from, &bytes) {
//!     Handled::Consumed => {}
//!     Handled::OtherShard(_k) => { /* hand (from, bytes) to shard k over its ring */ }
//!     Handled::Dropped(_reason) => { /* already counted; nothing to send */ }
//! }
//! while let Some(t) = ep.poll_transmit(now, &mut buf) {
//!     // send &buf[..t.len] to t.dst; when its completion arrives:
//!     if let Some(conn) = t.conn {
//!         ep.on_send_completed(conn, true);
//!     }
//!     assert!(t.len <= bytes.len()); // a Cookie is never larger than the Hello
//! }
//! while let Some(event) = ep.poll_event() {
//!     match event {
//!         Event::Connected { .. } | Event::Message { .. } | Event::Disconnected { .. } => {}
//!     }
//! }
//! if let Some(_deadline) = ep.poll_timeout() {
//!     // arm a timer; at the deadline call ep.handle_timeout(now) and drain again. It runs a
//!     // bounded batch: while poll_timeout() is still <= now, call it again next turn (once
//!     // poll_transmit has drained the control queue, if !ep.can_run_timers()).
//! }
//! assert_eq!(ep.session_count(), 0); // a Hello without cookie allocates nothing
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
//! | `cookie.rs` | stateless handshake cookies, secret rotation |
//! | `replay.rs` | 1024-bit sliding replay window |
//! | `drop_reason.rs` | [`DropReason`] and counters |
//! | `config.rs` | [`EndpointConfig`] and defaults |
//! | `state.rs` | per-session state |
//! | `control.rs` | the control-frame priority queue |
//! | `stats.rs` | the flight recorder |
//! | `event.rs` | outcomes and events returned to the driver |
//! | `endpoint.rs` (+ `endpoint/`) | [`Endpoint`]: the session table and API; inbound; timers |
//! | `sim.rs` | seeded in-memory network and virtual clock (test harness) |
//! | `clock.rs` | [`SessionClock`]: the server's one origin for timestamps in the shard loop |
//! | `host.rs` | [`SessionHost`]: sessions inside the shard loop, the [`SessionApp`] API |
//! | `client.rs` | a plain-socket client pool for tests and tools |
//! | `admission/` | admission control before a session exists: caps, per-prefix buckets, memory budget, the node-wide count exchange |
//! | `manager/` | the connection manager after: tags, protection, decaying tags, scores, watermark trimming |
//!
//! Limits, on purpose: no encryption and no payload authentication (a transport for a gateway
//! on a trusted path; anyone who sees a connection ID can inject into that session); no
//! reliability or ordering for Data (datagram semantics); no connection migration (a session
//! accepts datagrams from its peer's handshake address only).
#![forbid(unsafe_code)]

pub mod admission;
pub mod client;
pub mod clock;
pub mod config;
pub mod conn_id;
mod control;
pub mod cookie;
pub mod drop_reason;
pub mod endpoint;
pub mod event;
pub mod host;
pub mod manager;
pub mod replay;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
mod state;
pub mod stats;
pub mod time;
pub mod wire;

pub use clock::SessionClock;
pub use config::EndpointConfig;
pub use conn_id::{ConnId, ConnIdGen, connect_shard, shard_of};
pub use drop_reason::{DropCounters, DropReason};
pub use endpoint::{CloseOutcome, Endpoint, EndpointError, Snapshot};
pub use event::{CloseReason, Closer, ConnectError, Event, Handled, SendOutcome, Transmit};
pub use host::{
    Connecting, HostError, HostStats, Placement, SessionApp, SessionHost, SessionMsg, SessionSend,
    Sessions, random_key,
};
pub use stats::{EndpointStats, SessionState, SessionStats};
pub use time::Timestamp;

/// `size_of` of one session's state as held in the table (excluding the table's own per-entry
/// overhead and any queued Data). Exposed so tests and benchmarks can report and bound it.
pub const SESSION_STATE_SIZE: usize = std::mem::size_of::<state::Session>();
