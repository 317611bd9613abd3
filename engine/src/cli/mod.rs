//! The `ringwire` binary's parts beyond argument parsing.
#![forbid(unsafe_code)]

pub mod config_cmd;
pub mod keygen;
pub mod logging;
pub mod output;
pub mod reload;
pub mod run;
pub mod signals;
pub mod stats;
#[cfg(feature = "test-hooks")]
pub mod test_hooks;
