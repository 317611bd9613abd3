//! The `ringwire` binary's parts beyond argument parsing.
#![forbid(unsafe_code)]

pub mod output;
pub mod run;
pub mod signals;
#[cfg(feature = "test-hooks")]
pub mod test_hooks;
