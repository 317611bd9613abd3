//! ringwire: a thread-per-core io_uring UDP transport engine for gateway and peer-to-peer nodes.
//!
//! Each **shard** is one thread pinned to one core that owns an `SO_REUSEPORT` UDP socket, its
//! own io_uring and every piece of per-peer state it holds, so lookups take no lock. Work
//! crosses cores only through bounded SPSC rings (the [`mesh`]) whose operations return at
//! once: sent, full (item handed back) or closed (item handed back).
//!
//! This is the one crate a user names. It starts and stops shards ([`Engine`]), and re-exports
//! everything an application needs:
//!
//! | you want | start at |
//! |---|---|
//! | raw datagrams on every core | [`Handler`], [`Ctx`], [`Engine::start`] |
//! | sessions (handshake, keepalive, idle timeout, flight recorder) | [`session::SessionApp`], [`session::SessionHost`] |
//! | messages between shards | [`Ctx::send_to_shard`], [`mesh`] |
//! | timers | [`Ctx::set_timer`], [`TimerId`] |
//! | counters | [`EngineHandle::stats`], [`ShardStats`] |
//! | tuning | [`EngineConfig`], [`ShardConfig`]; the TOML [`config`] (features `cli`/`serde`) |
//!
//! Examples that run: `engine/examples/` (`cargo run --example echo`, `relay_gateway`,
//! `custom_protocol`).
//!
//! ```no_run
//! use ringwire::apps::Echo;
//! use ringwire::{Engine, EngineConfig};
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = EngineConfig::unpinned("127.0.0.1:0".parse()?, 2);
//! let engine = Engine::start(&config, |_shard| Echo)?;
//! println!("echoing on {}", engine.local_addr());
//! let report = engine.shutdown(Duration::from_secs(2))?;
//! println!("{}", report.total());
//! # Ok(())
//! # }
//! ```
//!
//! # A handler
//!
//! A [`Handler`] is one shard's application. The engine builds one per shard, on that shard's
//! thread, so it needs no lock and need not be `Send`; it is called for every datagram, mesh
//! message and timer, and whatever it asks for is submitted with the rest of the loop turn.
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use std::time::Duration;
//! use ringwire::{Ctx, Engine, EngineConfig, Handler, SendOutcome};
//!
//! /// Answers every datagram with its length, and says how many it answered every second.
//! #[derive(Default)]
//! struct Lengths {
//!     answered: u64,
//! }
//!
//! impl Handler for Lengths {
//!     type Message = ();
//!
//!     fn on_datagram(&mut self, peer: SocketAddr, payload: &[u8], ctx: &mut Ctx<'_, ()>) {
//!         let reply = (payload.len() as u32).to_be_bytes();
//!         if ctx.send_to(peer, &reply) == SendOutcome::Queued {
//!             self.answered += 1;
//!         }
//!     }
//!
//!     fn on_timer(&mut self, _token: u64, ctx: &mut Ctx<'_, ()>) {
//!         println!("shard {}: {} answered", ctx.shard_index(), self.answered);
//!         let _ = ctx.set_timer_after(Duration::from_secs(1), 0);
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Engine::start(&EngineConfig::unpinned("127.0.0.1:0".parse()?, 2), |_| {
//!     Lengths::default()
//! })?;
//! # engine.shutdown(Duration::from_secs(1))?;
//! # Ok(())
//! # }
//! ```
//!
//! # A session application
//!
//! A [`session::SessionApp`] sees sessions, not datagrams: connected, message, disconnected.
//! [`session::SessionHost`] runs it as the shard's handler.
//!
//! ```no_run
//! use std::time::Duration;
//! use ringwire::session::{
//!     ConnId, EndpointConfig, Keypair, Placement, SessionApp, SessionClock, SessionHost,
//!     Sessions, random_key,
//! };
//! use ringwire::{Engine, EngineConfig};
//!
//! /// Sends every message back, upper-cased.
//! struct Shout;
//!
//! impl SessionApp for Shout {
//!     fn on_message(&mut self, conn: ConnId, bytes: &[u8], s: &mut Sessions<'_, '_>) {
//!         let _ = s.send(conn, &bytes.to_ascii_uppercase());
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Shared by every shard: a cookie issued by one is checked by another.
//! let (cookie_key, clock) = (random_key()?, SessionClock::start());
//! // One static identity for every shard (a real server loads it from its key file).
//! let identity = Keypair::generate()?;
//! let mut config = EngineConfig::unpinned("127.0.0.1:0".parse()?, 2);
//! config.steering = true; // each session's datagrams go to the shard that owns it
//! let max_datagram = config.shard.max_datagram;
//! let engine = Engine::try_start(&config, move |shard| {
//!     let place = Placement::new(clock, shard.index, shard.shards, max_datagram);
//!     SessionHost::new(EndpointConfig::new(cookie_key, identity.clone()), place, random_key()?, Shout)
//!         .map_err(std::io::Error::other)
//! })?;
//! # engine.shutdown(Duration::from_secs(1))?;
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//! - `cli` (default): the `ringwire` binary and TOML file loading ([`config::Config::from_file`]).
//! - `serde`: `Deserialize` for the config types, so a gateway can embed a `[ringwire]` table
//!   in its own config file.
//! - `metrics` (with `cli`): [`metrics::MetricsServer`], Prometheus text and a JSON live view
//!   served from a control thread.
#![forbid(unsafe_code)]

pub mod apps;
pub mod config;
pub mod cores;
pub mod engine;
#[cfg(feature = "metrics")]
pub mod metrics;
pub mod quic_settings;
pub mod security;

pub use engine::{
    Engine, EngineConfig, EngineError, EngineEvent, EngineHandle, EngineNotifier, EngineObserver,
    EngineReport, FactoryError, NotifyError, ReportCounters, ShardInfo, ShutdownHandle,
    SocketBuffers, Worst,
};
#[doc(inline)]
pub use ringwire_shard::driver::ReportError;
#[doc(inline)]
pub use ringwire_shard::timer::{TimerError, TimerId};
#[doc(inline)]
pub use ringwire_shard::{
    Ctx, Datagrams, Handler, Offload, Rank, ReportItem, ReportPage, ReportRequest, SendOutcome,
    ShardConfig, ShardConfigError, ShardError, ShardExit, ShardReport, ShardStats, WakeMechanism,
};

pub mod mesh {
    //! Messages between shards: two bounded SPSC rings per ordered pair of shards, a control lane
    //! drained first and a data lane. Send with [`Ctx::send_to_shard`](crate::Ctx::send_to_shard)
    //! and [`Ctx::send_control_to_shard`](crate::Ctx::send_control_to_shard); receive in
    //! [`Handler::on_message`](crate::Handler::on_message).
    #[doc(inline)]
    pub use ringwire_shard::mesh::{Lane, LaneStats, MeshConfig, MeshSendError};
}

pub mod session {
    //! Sessions on top of the shards: Noise-authenticated and encrypted by default (protocol
    //! version 2: mac1/mac2 cookies, replay protection, rekeying, stateless resets), keepalive,
    //! idle timeout, control frames that never wait behind data, and a flight recorder per
    //! session. Implement [`SessionApp`] and run it with [`SessionHost`] as the engine's handler.
    //! The wire format is in `docs/PROTOCOL.md`.
    #[doc(inline)]
    pub use ringwire_shard::session::{
        CloseReason, Closer, ConnId, ConnIdGen, ConnectError, Connecting, DropCounters, DropReason,
        Endpoint, EndpointConfig, EndpointError, EndpointStats, Event, HostError, HostStats,
        KeyError, Keypair, NoiseConfig, Placement, PrivateKey, PublicKey, Security, SendOutcome,
        SessionApp, SessionClock, SessionHost, SessionMsg, SessionSend, SessionState, SessionStats,
        Sessions, ShardSend, Snapshot, Timestamp, random_key, shard_of,
    };

    pub mod admission {
        //! Admission control, decided before a session exists: caps per shard and node, per
        //! source prefix (sessions and a token bucket), pending handshakes, the memory budget
        //! (`EndpointConfig::admission`; `docs/CONFIG.md`).
        #[doc(inline)]
        pub use ringwire_shard::session::admission::*;
    }

    pub mod manager {
        //! The connection manager: tags, decaying tags, protection, trimming to the node's
        //! watermarks (`EndpointConfig::manager`; the calls are on [`super::Sessions`]).
        #[doc(inline)]
        pub use ringwire_shard::session::manager::*;
    }

    pub mod client {
        //! A plain-socket session client pool (many sessions, one socket each) for tests and
        //! tools; not for the data path.
        #[doc(inline)]
        pub use ringwire_shard::session::client::{ClientError, ClientPool};
    }
}

pub mod quic {
    //! QUIC on the shards: one `quinn_proto::Endpoint` per shard ([`QuicHost`], a handler),
    //! connection IDs that name their shard, kernel steering by connection ID
    //! ([`EngineConfig::steering_program`](crate::EngineConfig::steering_program) =
    //! [`SteeringProgram::Quic`]), and an application API of connection, stream and DATAGRAM
    //! events ([`QuicApp`]). Standard QUIC v1: any QUIC client talks to it.
    #[doc(inline)]
    pub use ringwire_shard::driver::SteeringProgram;
    #[doc(inline)]
    pub use ringwire_shard::quic::{
        CID_LEN, CLOSE_TRIMMED, QuicApp, QuicConfigError, QuicConn, QuicConnId, QuicHost, QuicMsg,
        QuicOptions, QuicStats, QuicTls, RetryMode, ShardCidGenerator, StreamRead, owner_shard,
        proto,
    };
    /// Admission control and the connection manager's settings ([`QuicOptions::admission`],
    /// [`QuicOptions::manager`]): the session layer's, applied to QUIC connections.
    #[doc(inline)]
    pub use ringwire_shard::session::{
        admission::{AdmissionConfig, RateLimit},
        manager::ManagerConfig,
    };
}

pub mod kernel {
    //! What the kernel offers: the start-up probe of io_uring opcodes and features, and thread
    //! CPU time for measurements.
    #[doc(inline)]
    pub use ringwire_shard::driver::{
        ProbeReport, RingMode, SetupError, SocketError, available_or_explain, kernel_release,
        probe, skip_or_fail, thread_cpu_time,
    };
}
