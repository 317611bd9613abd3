//! glommio 0.9 baseline: a `LocalExecutor` pinned to its core, its
//! `UdpSocket` (one `recvmsg` per datagram through io_uring).
#![allow(unsafe_code)]

use super::ready::Ready;
use super::report::ThreadReport;
use crate::sys::rlimit::{self, Resource};
use crate::sys::{cpu_time, stop::StopFlag};
use glommio::{LocalExecutorBuilder, Placement};
use socket2::Socket;
use std::cell::Cell;
use std::io;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::time::Duration;

/// glommio refuses to start below this RLIMIT_MEMLOCK (its own check).
pub const MIN_MEMLOCK: u64 = 512 * 1024;
/// How often the executor checks the stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);

/// Raises RLIMIT_MEMLOCK for glommio's io_uring, or explains why it cannot.
pub fn check_memlock() -> Result<(), rlimit::LimitError> {
    rlimit::raise(Resource::LockedMemory, MIN_MEMLOCK).map(|_| ())
}

/// Why the glommio baseline cannot run on this host. [`super::start`] returns it (boxed) before
/// spawning anything, so a caller can tell "this host cannot run glommio" (skip) from "the
/// server broke" (fail) by downcasting.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    /// RLIMIT_MEMLOCK is too low for glommio's rings and cannot be raised.
    #[error("glommio cannot run here: {0}")]
    Memlock(#[source] rlimit::LimitError),
    /// io_uring is disabled, blocked (seccomp, container policy) or too old.
    #[error("glommio cannot run here: {0}")]
    IoUring(#[source] ringwire_shard::driver::SetupError),
}

/// Checks, without starting glommio, that it can run here: RLIMIT_MEMLOCK (raised if need be)
/// and io_uring. glommio itself panics when `io_uring_setup` is refused and exits the process
/// when an opcode is missing; every opcode it checks dates from Linux 5.6 or earlier, and
/// ringwire's probe asks for more (5.11+ features), so a host that passes the probe runs glommio.
pub fn check_available() -> Result<(), Unavailable> {
    check_memlock().map_err(Unavailable::Memlock)?;
    ringwire_shard::driver::probe().map_err(Unavailable::IoUring)?;
    Ok(())
}

async fn echo(
    sock: &glommio::net::UdpSocket,
    served: &Cell<u64>,
    max_datagram: usize,
) -> io::Result<()> {
    let mut buf = vec![0u8; max_datagram];
    loop {
        let (n, from) = sock.recv_from(&mut buf).await?;
        if sock.send_to(&buf[..n], from).await.is_ok() {
            served.set(served.get() + 1);
        }
    }
}

async fn stopped(stop: &StopFlag) {
    while !stop.is_raised() {
        glommio::timer::sleep(STOP_POLL).await;
    }
}

/// Echoes on `sock` (datagrams up to `max_datagram` bytes) until `stop` is
/// raised; calls [`Ready::up`] once set up.
pub fn serve(
    sock: Socket,
    core: usize,
    max_datagram: usize,
    stop: &StopFlag,
    ready: Ready,
) -> io::Result<ThreadReport> {
    let executor = LocalExecutorBuilder::new(Placement::Fixed(core))
        .name("glommio-echo")
        .make()
        .map_err(|e| io::Error::other(format!("glommio executor on core {core}: {e}")))?;
    let served = Cell::new(0u64);
    let result: io::Result<()> = executor.run(async {
        // SAFETY: `into_raw_fd` hands over sole ownership of a valid UDP
        // socket descriptor; glommio's socket now owns and closes it.
        let sock = unsafe { glommio::net::UdpSocket::from_raw_fd(sock.into_raw_fd()) };
        ready.up();
        futures_lite::future::or(echo(&sock, &served, max_datagram), async {
            stopped(stop).await;
            Ok(())
        })
        .await
    });
    result?;
    Ok(ThreadReport {
        core: Some(core),
        served: served.get(),
        cpu: cpu_time::current_thread(),
    })
}
