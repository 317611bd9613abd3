//! libFuzzer entry point of the `session` target (the body is `ringwire_fuzz::session::run`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringwire_fuzz::session::run(data));
