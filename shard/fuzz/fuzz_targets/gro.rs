//! libFuzzer entry point of the `gro` target (the body is `ringwire_fuzz::gro::run`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringwire_fuzz::gro::run(data));
