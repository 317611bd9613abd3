//! libFuzzer entry point of the `wire` target (the body is `ringwire_fuzz::wire::run`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringwire_fuzz::wire::run(data));
