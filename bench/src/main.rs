//! `ringwire-bench`: load generator, baseline servers and micro-benchmarks.
fn main() {}
