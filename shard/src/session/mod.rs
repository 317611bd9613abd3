//! Sans-IO session protocol (issue 4): handshake, keepalive, replay protection and per-session
//! state for one shard, with no sockets and no clock.
//!
//! Every entry point of [`Endpoint`] takes the current [`Timestamp`] (nanoseconds since an
//! origin the caller picks) and bytes, and returns what happened; datagrams to send, events and
//! the next deadline are pulled with `poll_transmit`, `poll_event` and `poll_timeout`. The
//! io_uring driver calls this; so does the deterministic simulator in [`sim`].
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
//! | `relay_msg.rs` | the relay application's messages carried in Data |
//!
//! Limits, on purpose: no encryption and no payload authentication (a transport for a gateway
//! on a trusted path; anyone who sees a connection ID can inject into that session); no
//! reliability or ordering for Data (datagram semantics); no connection migration (a session
//! accepts datagrams from its peer's handshake address only).
#![forbid(unsafe_code)]

pub mod config;
pub mod conn_id;
mod control;
pub mod cookie;
pub mod drop_reason;
pub mod endpoint;
pub mod event;
pub mod relay_msg;
pub mod replay;
pub mod sim;
mod state;
pub mod stats;
pub mod time;
pub mod wire;

pub use config::EndpointConfig;
pub use conn_id::{ConnId, ConnIdGen, connect_shard, shard_of};
pub use drop_reason::{DropCounters, DropReason};
pub use endpoint::{CloseOutcome, Endpoint, EndpointError, Snapshot};
pub use event::{CloseReason, Closer, ConnectError, Event, Handled, SendOutcome, Transmit};
pub use stats::{EndpointStats, SessionState, SessionStats};
pub use time::Timestamp;

/// `size_of` of one session's state as held in the table (excluding the table's own per-entry
/// overhead and any queued Data). Exposed so tests and benchmarks can report and bound it.
pub const SESSION_STATE_SIZE: usize = std::mem::size_of::<state::Session>();
