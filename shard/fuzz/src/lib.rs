//! The fuzz targets' bodies, one module per target. Each `run(data)` must never panic on any
//! input; the assertions inside are the properties checked. The main workspace's tests replay
//! the committed corpora through the same files (`#[path]`), so they build on stable and in CI.
#![forbid(unsafe_code)]

pub mod config;
pub mod gro;
pub mod handshake;
pub mod input;
pub mod session;
pub mod wire;
