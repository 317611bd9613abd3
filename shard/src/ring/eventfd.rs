//! A Linux eventfd as the consumer's sleep and the producer's [`Wake`].
//!
//! The fd is non-blocking, so [`EventFd::wake`](Wake::wake) never blocks a producer (a
//! counter at its maximum, 2^64 - 2, means a wake is pending anyway). The consumer sleeps in
//! `poll(2)` and then drains the counter with `read(2)`; a shard driver instead registers the
//! fd with its io_uring (multishot poll) and sleeps in `io_uring_enter`.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::park::Wake;

/// An eventfd (`EFD_NONBLOCK | EFD_CLOEXEC`). Writing wakes whoever polls or reads it.
#[derive(Debug)]
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    /// Creates an eventfd with counter 0.
    pub fn new() -> io::Result<Self> {
        // SAFETY: `eventfd` takes no pointers; a non-negative return is a new fd we own.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by `eventfd`, is open, and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd })
    }

    /// Adds 1 to the counter: one `write(2)` of 8 bytes. Never blocks.
    pub fn signal(&self) -> io::Result<()> {
        let one: u64 = 1;
        loop {
            // SAFETY: the buffer is a live `u64` of exactly the 8 bytes we pass, and the fd is
            // owned by `self` and open.
            let n = unsafe {
                libc::write(
                    self.fd.as_raw_fd(),
                    (&raw const one).cast::<libc::c_void>(),
                    size_of::<u64>(),
                )
            };
            if n == size_of::<u64>() as isize {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                // The counter is saturated: the reader has a wake pending already.
                io::ErrorKind::WouldBlock => return Ok(()),
                _ => return Err(err),
            }
        }
    }

    /// Reads and resets the counter without blocking; `Ok(0)` if it was 0.
    pub fn try_drain(&self) -> io::Result<u64> {
        let mut value: u64 = 0;
        loop {
            // SAFETY: the buffer is a live, writable `u64` of exactly the 8 bytes we pass, and
            // the fd is owned by `self` and open.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    (&raw mut value).cast::<libc::c_void>(),
                    size_of::<u64>(),
                )
            };
            if n == size_of::<u64>() as isize {
                return Ok(value);
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Ok(0),
                _ => return Err(err),
            }
        }
    }

    /// Sleeps in `poll(2)` until the counter is non-zero, then drains it and returns its
    /// value (at least 1). Uses no CPU while it sleeps.
    pub fn wait(&self) -> io::Result<u64> {
        loop {
            let drained = self.try_drain()?;
            if drained > 0 {
                return Ok(drained);
            }
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: `pfd` is one live, writable `pollfd` and we pass a count of 1.
            let rc = unsafe { libc::poll(&raw mut pfd, 1, -1) };
            if rc < 0 {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }
}

impl Wake for EventFd {
    fn wake(&self) -> io::Result<()> {
        self.signal()
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
