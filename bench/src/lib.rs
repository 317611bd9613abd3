//! ringwire's load generator and baseline UDP echo servers.
//!
//! The binary (`src/main.rs`) is a thin clap front end: each subcommand is an
//! `Args` struct and a `run` function in one of these modules.
//!
//! - [`load`]: the UDP load generator (`ringwire-bench load`), closed- and
//!   open-loop, many peer sockets, latency into an HDR histogram.
//! - [`server`]: baseline echo servers (`ringwire-bench server`) to compare the
//!   engine against: tokio, glommio and a `recvmmsg`/`sendmmsg` kernel floor.
//! - [`session_server`]: ringwire's session apps with benchmark settings
//!   (`ringwire-bench session-server`).
//! - [`compare`]: the table `scripts/bench.sh` prints from its JSON reports.
//! - [`engine`]: the ringwire binary's server report (CPU from `/proc`).
//! - [`flood`]: Initiation-shaped datagrams without mac1 (`scripts/bench-secure.sh`).
//! - [`callgrind`]: instructions per request from callgrind runs.
//! - [`sockperf`]: parsing the sockperf client's output.
//! - [`report`] and [`plot`]: `docs/BENCHMARKS.md` and its latency SVG.
//! - [`validity`]: which cells may be reported (the client kept its
//!   schedule) and when a run is quiet; [`quiet`] waits for a quiet machine.
//! - [`scale`]: the session-scale page from `scripts/scale.sh`'s output.
//! - [`connmgr`]: trim turns of the connection manager and a session flood from many
//!   addresses (`docs/BENCHMARKS.md`, "Connection manager").
//! - [`quic`]: the QUIC load generator (on the `quinn` client) and quinn baseline servers.
//! - [`sys`]: the few Linux calls both need (rlimits, per-thread CPU time,
//!   batched socket I/O, epoll, pinning, stop signals).

pub mod args;
pub mod callgrind;
pub mod compare;
pub mod connmgr;
pub mod engine;
pub mod flood;
pub mod load;
pub mod plot;
pub mod quic;
pub mod quiet;
pub mod report;
pub mod rings;
pub mod scale;
pub mod scale_reference;
pub mod server;
pub mod session_server;
pub mod soak;
pub mod sockperf;
pub mod sys;
pub mod validity;

/// What every subcommand's `run` returns; the binary prints the error and
/// exits with status 1.
pub type CmdResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
