//! Synchronisation primitives for the rings, swapped for loom's under `cfg(loom)`.
//!
//! Every atomic and every shared cell the rings touch comes from here, so the same code runs
//! on std in production and under the loom model checker in `tests/ring_loom.rs`
//! (s2n-quic does the same). The std [`UnsafeCell`] wrapper mirrors loom's closure API
//! (`with` / `with_mut`) so call sites are identical under both.
#![forbid(unsafe_code)]

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;
#[cfg(loom)]
pub(crate) use loom::sync::Arc;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering, fence};

#[cfg(not(loom))]
pub(crate) use std::sync::Arc;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering, fence};

/// `std::cell::UnsafeCell` with loom's access API: the raw pointer is only reachable inside a
/// closure, which is where loom records the access to detect data races.
/// `repr(transparent)`: an array of cells has the layout of an array of `T`, which the
/// rings' block copies rely on.
#[cfg(not(loom))]
#[derive(Debug)]
#[repr(transparent)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    /// Calls `f` with a pointer for reading. Dereferencing it is the caller's unsafe act.
    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Calls `f` with a pointer for writing. Dereferencing it is the caller's unsafe act.
    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}
