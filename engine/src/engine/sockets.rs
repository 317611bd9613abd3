//! Before and after binding the shards' sockets: refusing a port another process holds, and
//! reading back the socket buffers the kernel granted.
#![forbid(unsafe_code)]

use std::io;
use std::net::{SocketAddr, UdpSocket};

use socket2::{Domain, Protocol, SockAddr, SockRef, Socket, Type};

/// The socket buffer sizes asked for and granted, in bytes (the kernel doubles a request for
/// its own bookkeeping and caps it at `net.core.rmem_max` / `wmem_max` first).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SocketBuffers {
    /// `shard.socket_recv_buffer` (0: the system default).
    pub recv_asked: usize,
    /// What `SO_RCVBUF` reads back on shard 0's socket.
    pub recv_granted: usize,
    /// `shard.socket_send_buffer` (0: the system default).
    pub send_asked: usize,
    /// What `SO_SNDBUF` reads back on shard 0's socket.
    pub send_granted: usize,
}

impl SocketBuffers {
    /// Reads back what the kernel granted `socket` and warns, naming the sysctl to raise, when
    /// it is less than asked for.
    pub(super) fn read_back(socket: &UdpSocket, recv_asked: usize, send_asked: usize) -> Self {
        let sock = SockRef::from(socket);
        let buffers = Self {
            recv_asked,
            recv_granted: sock.recv_buffer_size().unwrap_or(0),
            send_asked,
            send_granted: sock.send_buffer_size().unwrap_or(0),
        };
        for (name, asked, granted, sysctl) in [
            (
                "shard.socket_recv_buffer",
                recv_asked,
                buffers.recv_granted,
                "net.core.rmem_max",
            ),
            (
                "shard.socket_send_buffer",
                send_asked,
                buffers.send_granted,
                "net.core.wmem_max",
            ),
        ] {
            // The kernel reports twice what it accepted of the request.
            if asked > 0 && granted / 2 < asked {
                let limit =
                    std::fs::read_to_string(format!("/proc/sys/{}", sysctl.replace('.', "/")))
                        .map_or_else(|_| "unknown".to_string(), |s| s.trim().to_string());
                tracing::warn!(
                    setting = name,
                    asked,
                    granted,
                    sysctl,
                    limit = %limit,
                    "the kernel granted less socket buffer than asked for: it caps the request \
                     at {sysctl} ({limit}) and reports twice what it accepted; raise {sysctl} \
                     (docs/OPERATIONS.md) or lower {name}"
                );
            }
        }
        buffers
    }
}

/// Whether another socket (another process, or an engine of this one) is bound to `addr`: a
/// plain bind without `SO_REUSEPORT` fails with `EADDRINUSE` when any socket holds the port
/// and address, with or without `SO_REUSEPORT`. Port 0 is never held.
pub(super) fn port_held(addr: SocketAddr) -> io::Result<bool> {
    if addr.port() == 0 {
        return Ok(false);
    }
    let probe = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // As the shards' sockets: IPv6 only, so an IPv4 holder of the port is no conflict.
        probe.set_only_v6(true)?;
    }
    match probe.bind(&SockAddr::from(addr)) {
        Ok(()) => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Ok(true),
        Err(e) => Err(e),
    }
}
