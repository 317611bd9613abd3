//! libFuzzer entry point of the `handshake` target (the body is `ringwire_fuzz::handshake::run`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringwire_fuzz::handshake::run(data));
