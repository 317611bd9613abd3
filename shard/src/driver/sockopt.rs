//! `setsockopt` with an `int` value: the one socket call the driver makes besides those
//! `socket2` offers (`SO_RXQ_OVFL`, `UDP_SEGMENT`, `UDP_GRO`, `SO_NO_CHECK` in tests).
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::os::fd::AsRawFd;

/// Sets option `name` of `level` on `socket` to `value`.
pub(super) fn set_int(
    socket: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` is a live c_int and its size is passed; the fd is open for the call
    // (`socket` borrows its owner).
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
