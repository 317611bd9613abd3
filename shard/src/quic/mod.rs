//! QUIC on the shards: one `quinn_proto::Endpoint` per shard, steered by connection ID.
//!
//! quinn-proto is quinn's sans-IO protocol core (QUIC v1, RFC 9000/9001/9002, DATAGRAM
//! frames of RFC 9221); TLS 1.3 is rustls with its `ring` provider. ringwire supplies what
//! quinn's tokio layer would: datagrams in from the shard's multishot receive (with GRO),
//! datagrams out through its send slots (with GSO), timers on its timer set. No tokio runs on a
//! shard thread.
//!
//! - [`cid`]: server connection IDs whose first byte names the owning shard, and the rule
//!   ([`owner_shard`]) the steering program
//!   ([`quic_steering_program`](crate::driver::quic_steering_program)) applies in the kernel;
//! - [`config`]: certificate, key, ALPN and limits ([`QuicOptions`], [`QuicTls`]);
//! - [`host`]: [`QuicHost`], the [`Handler`](crate::Handler) that owns the endpoint;
//! - `control`: Retry under load, admission control and the connection manager for QUIC
//!   connections (the session layer's, wired into a connection's life);
//! - [`app`]: the application API ([`QuicApp`], [`QuicConn`]);
//! - [`stats`]: the host's counters.
//!
//! quinn-proto's own types (stream IDs, error codes, errors) are re-exported as [`proto`].
#![forbid(unsafe_code)]

pub mod app;
pub mod cid;
pub mod config;
mod control;
pub mod host;
mod report;
pub mod stats;

pub use app::{QuicApp, QuicConn, QuicConnId, StreamRead};
pub use cid::{CID_LEN, ShardCidGenerator, owner_shard};
pub use config::{CLOSE_TRIMMED, QuicConfigError, QuicOptions, QuicTls, RetryMode};
pub use host::{QuicHost, QuicMsg};
/// quinn's protocol crate, for its types ([`proto::StreamId`], [`proto::VarInt`], errors).
pub use quinn_proto as proto;
pub use stats::QuicStats;
