//! Bounded single-producer single-consumer rings between shards (see issue 3).
#![forbid(unsafe_code)]
