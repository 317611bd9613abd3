//! `ringwire-shard`: one core's world.
//!
//! A shard is one thread pinned to one core. It owns an `SO_REUSEPORT` UDP socket, its own
//! io_uring, and every piece of per-peer state it holds; nothing here is shared with another
//! shard except through the bounded SPSC rings in [`ring`].
//!
//! The sans-IO parts (the `timer` wheel, [`session`] protocol state) take `now` and bytes and
//! return actions; only `driver` talks to the kernel.

pub mod ring;
pub mod session;
