//! QUIC benchmarks: a load generator on the `quinn` client (`quic-load`) and quinn baseline
//! servers on tokio (`quic-server`), to compare with `ringwire serve --app quic-echo`.

pub mod load;
pub mod server;
pub mod tls;

pub use load::{QuicLoadArgs, QuicMode, run as load};
pub use server::{QuicServerArgs, serve};
