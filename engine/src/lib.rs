//! ringwire: a thread-per-core io_uring UDP transport engine.
#![forbid(unsafe_code)]
