//! The kernel floor: a blocking `recvmmsg` (MSG_WAITFORONE) / `sendmmsg`
//! loop, batch 64, no runtime at all.

use super::ready::Ready;
use super::report::ThreadReport;
use super::socket;
use crate::sys::{affinity, cpu_time, mmsg::MmsgBatch, stop::StopFlag};
use socket2::Socket;
use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// Datagrams per syscall.
pub const BATCH: usize = 64;
/// How often a blocked receive wakes to check the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

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
    sock.set_read_timeout(Some(STOP_POLL))?;
    let fd = sock.as_raw_fd();
    let mut batch = MmsgBatch::new(BATCH, max_datagram, true);
    let mut served = 0u64;
    ready.up();
    while !stop.is_raised() {
        let n = match batch.recv(fd, BATCH, libc::MSG_WAITFORONE) {
            Ok(n) => n,
            Err(e) if socket::nothing_yet(&e) => continue,
            Err(e) => return Err(e),
        };
        batch.reflect_received(n);
        let mut done = 0;
        while done < n {
            match batch.send(fd, done, n, 0) {
                Ok(k) => done += k.max(1),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A peer that went away (ICMP unreachable) or a full buffer:
                // drop the rest of this batch, as a UDP server would.
                Err(_) => break,
            }
        }
        served += done as u64;
    }
    Ok(ThreadReport {
        core: pinned,
        served,
        cpu: cpu_time::current_thread(),
    })
}
