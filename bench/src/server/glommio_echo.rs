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
