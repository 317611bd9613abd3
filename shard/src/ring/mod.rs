//! Cross-core communication between shards: bounded SPSC rings and the park / wake protocol.
//!
//! * [`spsc`]: the ring ([`channel`], [`Producer`], [`Consumer`]); never blocks, spins or
//!   makes a system call.
//! * [`park`]: [`Parker`] (consumer shard) and [`Notifier`] (producers) decide when a parked
//!   shard must be woken, so that no wake-up is lost and a running shard is never woken;
//!   the wake itself is behind the [`Wake`] trait.
//! * [`EventFd`]: a [`Wake`] that a test or benchmark thread can sleep on.
//! * [`futex`]: the parked word as a futex (kernel 6.7+ lets a shard sleep on it with
//!   `IORING_OP_FUTEX_WAIT`): a claimed wake is then one `FUTEX_WAKE`.
//! * [`WakingProducer`] and [`recv_blocking`]: the two glued together.
//!
//! The loom models live in `tests/ring_loom.rs`; run them with `scripts/loom.sh`, i.e.
//! `RUSTFLAGS="--cfg loom" cargo test -p ringwire-shard --release --test ring_loom`.
// `deny`, not `forbid`: `spsc`, `eventfd` and `futex` opt in with `allow`; the other files
// forbid.
#![deny(unsafe_code)]

mod eventfd;
pub mod futex;
pub mod park;
pub mod spsc;
mod sync;
mod waking;

pub use eventfd::EventFd;
pub use park::{Notifier, ParkDecision, Parker, Wake};
#[cfg(loom)]
pub use spsc::channel_publishing_every;
pub use spsc::{ClosedError, Consumer, Producer, TryRecvError, TrySendError, channel};
pub use waking::{WakingProducer, recv_blocking, recv_blocking_with};
