//! The parked word as a futex: the producer's wake (`futex(2)` `FUTEX_WAKE`) and a blocking
//! wait for threads that are not shards (tests, benchmarks).
//!
//! A shard does not call [`wait`]: it arms `IORING_OP_FUTEX_WAIT` (kernel 6.7+) on
//! [`Parker::futex_word`](super::Parker::futex_word) expecting
//! [`Parker::FUTEX_PARKED`](super::Parker::FUTEX_PARKED) and sleeps in `io_uring_enter`,
//! so its other completions (datagrams, timers, the eventfd poll) end the same sleep. Both
//! waits are private 32-bit futexes, so [`wake`] reaches either.
#![allow(unsafe_code)]

use std::io;
use std::sync::atomic::AtomicU32;

/// `FUTEX2_SIZE_U32`: the futex2 flag for a 32-bit word (`IORING_OP_FUTEX_WAIT` takes futex2
/// flags).
pub const FUTEX2_SIZE_U32: u32 = 0x02;
/// `FUTEX2_PRIVATE`: the word is not shared with another process.
pub const FUTEX2_PRIVATE: u32 = 128;
/// `FUTEX_BITSET_MATCH_ANY`: a wait any wake may end.
pub const FUTEX_BITSET_MATCH_ANY: u64 = 0xffff_ffff;

/// Wakes at most one thread or io_uring wait sleeping on `word`. Returns how many were
/// woken (0 or 1). One system call; never blocks.
pub fn wake(word: &AtomicU32) -> io::Result<usize> {
    // SAFETY: FUTEX_WAKE only uses the address as a key (it neither reads nor writes the
    // word); `word` is a live, aligned `AtomicU32` for the whole call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

/// Sleeps while `word` holds `expected` (the kernel checks atomically with going to sleep),
/// until a [`wake`] on it or a signal. Returns at once if the word differs. Callers re-check
/// their condition afterwards: a return is not proof of a wake.
pub fn wait(word: &AtomicU32, expected: u32) -> io::Result<()> {
    // SAFETY: FUTEX_WAIT reads the aligned `u32` at the address atomically and sleeps; `word`
    // is live for the whole call; a null timeout means no timeout.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            std::ptr::null::<libc::timespec>(),
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        // The word had changed already, or a signal interrupted the sleep.
        Some(libc::EAGAIN | libc::EINTR) => Ok(()),
        _ => Err(err),
    }
}
