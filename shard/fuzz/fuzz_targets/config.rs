//! libFuzzer entry point of the `config` target (the body is `ringwire_fuzz::config::run`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringwire_fuzz::config::run(data));
