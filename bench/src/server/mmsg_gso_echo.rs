//! The GSO/GRO floor: the `mmsg` floor with the kernel's UDP offloads, as `quinn-udp` uses
//! them. `UDP_GRO` on the socket, a blocking `recvmmsg` (MSG_WAITFORONE) of up to 64 buffers
//! of 64 KiB, each possibly holding several datagrams of one sender (their segment size in a
//! control message), and a `sendmmsg` that sends each buffer back to its sender with that
//! segment size (`UDP_SEGMENT`), so the kernel cuts it into the same datagrams again. No copy,
//! no per-datagram work in user space: the most a kernel-socket echo server can do.

use super::ready::Ready;
use super::report::ThreadReport;
use super::socket;
use crate::sys::{affinity, cpu_time, gso, gso::GroBatch, stop::StopFlag};
use socket2::Socket;
use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// Buffers per syscall.
pub const BATCH: usize = 64;
/// How often a blocked receive wakes to check the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

/// Echoes on `sock` until `stop` is raised; calls [`Ready::up`] once set up. Fails when the
/// socket refuses `UDP_GRO` or `UDP_SEGMENT`. Served counts datagrams, not buffers.
pub fn serve(sock: Socket, core: usize, stop: &StopFlag, ready: Ready) -> io::Result<ThreadReport> {
    let pinned = affinity::pin_or_warn(core);
    sock.set_read_timeout(Some(STOP_POLL))?;
    let fd = sock.as_raw_fd();
    gso::enable_gro(fd).map_err(|e| io::Error::new(e.kind(), format!("UDP_GRO: {e}")))?;
    gso::probe_gso(fd).map_err(|e| io::Error::new(e.kind(), format!("UDP_SEGMENT: {e}")))?;
    let mut batch = GroBatch::new(BATCH, true);
    let mut served = 0u64;
    let mut datagrams = [0u64; BATCH];
    ready.up();
    while !stop.is_raised() {
        let n = match batch.recv(fd, BATCH, libc::MSG_WAITFORONE) {
            Ok(n) => n,
            Err(e) if socket::nothing_yet(&e) => continue,
            Err(e) => return Err(e),
        };
        for (i, d) in datagrams.iter_mut().enumerate().take(n) {
            *d = batch.datagrams(i).len().max(1) as u64;
        }
        batch.prepare_reflect(n);
        let mut done = 0;
        while done < n {
            match batch.send(fd, done, n) {
                Ok(k) => {
                    served += datagrams[done..done + k].iter().sum::<u64>();
                    done += k.max(1);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A peer that went away or a full buffer: drop the rest of this batch, as a
                // UDP server would.
                Err(_) => break,
            }
        }
    }
    Ok(ThreadReport {
        core: pinned,
        served,
        cpu: cpu_time::current_thread(),
    })
}
