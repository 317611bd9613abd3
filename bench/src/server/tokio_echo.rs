//! tokio baseline: a current-thread runtime per thread, written the way a
//! tokio user would: `recv_from` then `send_to`, one datagram at a time.

use super::ready::Ready;
use super::report::ThreadReport;
use crate::sys::{affinity, cpu_time, stop::StopFlag};
use socket2::Socket;
use std::cell::Cell;
use std::io;
use std::time::Duration;
use tokio::net::UdpSocket;

/// How often the runtime checks the stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);

async fn echo(sock: &UdpSocket, served: &Cell<u64>, max_datagram: usize) -> io::Result<()> {
    let mut buf = vec![0u8; max_datagram];
    loop {
        let (n, from) = sock.recv_from(&mut buf).await?;
        // A send error (peer gone, buffer full) drops this datagram only.
        if sock.send_to(&buf[..n], from).await.is_ok() {
            served.set(served.get() + 1);
        }
    }
}

async fn stopped(stop: &StopFlag) {
    while !stop.is_raised() {
        tokio::time::sleep(STOP_POLL).await;
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
    let pinned = affinity::pin_or_warn(core);
    sock.set_nonblocking(true)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let served = Cell::new(0u64);
    rt.block_on(async {
        let sock = UdpSocket::from_std(sock.into())?;
        ready.up();
        tokio::select! {
            biased;
            r = echo(&sock, &served, max_datagram) => r,
            () = stopped(stop) => Ok(()),
        }
    })?;
    Ok(ThreadReport {
        core: pinned,
        served: served.get(),
        cpu: cpu_time::current_thread(),
    })
}
