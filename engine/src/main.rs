//! The `ringwire` binary.
#![forbid(unsafe_code)]
fn main() {}
