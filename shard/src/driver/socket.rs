//! The shards' UDP sockets: one per shard, all bound to one address with `SO_REUSEPORT`.
//!
//! They are created together, in shard order, on the thread that starts the engine: binding the
//! first one resolves port 0 to a real port that the others then share, and bind order is the
//! index a reuseport BPF program uses to pick a socket.
#![forbid(unsafe_code)]

use std::io;
use std::net::{SocketAddr, UdpSocket};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Why the shards' sockets could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SocketError {
    /// Creating a socket failed.
    #[error("cannot create a UDP socket: {0}")]
    Create(#[source] io::Error),
    /// Setting `SO_REUSEPORT` failed.
    #[error("cannot set SO_REUSEPORT: {0}")]
    ReusePort(#[source] io::Error),
    /// Setting `IP_MTU_DISCOVER` (or `IPV6_MTU_DISCOVER`) to `*_PMTUDISC_PROBE` failed.
    #[error("cannot set IP_MTU_DISCOVER to IP_PMTUDISC_PROBE: {0}")]
    MtuProbe(#[source] io::Error),
    /// Binding failed (address in use without `SO_REUSEPORT`, not a local address, ...).
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
}

/// Socket options applied to every shard socket.
#[derive(Debug, Clone, Copy)]
pub struct SocketOptions {
    /// Requested `SO_RCVBUF` (0: system default).
    pub recv_buffer: usize,
    /// Requested `SO_SNDBUF` (0: system default).
    pub send_buffer: usize,
    /// Send every datagram with Don't Fragment set and the kernel's path-MTU cache ignored
    /// (`IP_MTU_DISCOVER` / `IPV6_MTU_DISCOVER` = `*_PMTUDISC_PROBE`): what a protocol that
    /// discovers the path MTU itself with probes needs (QUIC, RFC 8899 and RFC 9000 §14.3): a
    /// probe too large for the path is dropped, never fragmented into a false success. A
    /// datagram larger than the interface's MTU fails to send (`EMSGSIZE`, counted).
    pub mtu_probe: bool,
}

/// Creates `count` non-blocking UDP sockets bound to `addr` with `SO_REUSEPORT`, in shard order.
/// If `addr` has port 0 the first bind picks the port and the rest reuse it.
pub fn bind_reuseport_group(
    addr: SocketAddr,
    count: usize,
    opts: SocketOptions,
) -> Result<Vec<UdpSocket>, SocketError> {
    let mut sockets = Vec::with_capacity(count);
    let mut bind_to = addr;
    for _ in 0..count {
        let socket = Socket::new(
            Domain::for_address(bind_to),
            Type::DGRAM,
            Some(Protocol::UDP),
        )
        .map_err(SocketError::Create)?;
        socket
            .set_reuse_port(true)
            .map_err(SocketError::ReusePort)?;
        socket.set_nonblocking(true).map_err(SocketError::Create)?;
        if bind_to.is_ipv6() {
            // Dual-stack sockets would make one shard group answer two families; keep v6 only.
            socket.set_only_v6(true).map_err(SocketError::Create)?;
        }
        set_buffer_sizes(&socket, opts);
        if opts.mtu_probe {
            set_mtu_probe(&socket, bind_to.is_ipv6()).map_err(SocketError::MtuProbe)?;
        }
        socket
            .bind(&SockAddr::from(bind_to))
            .map_err(|source| SocketError::Bind {
                addr: bind_to,
                source,
            })?;
        if bind_to.port() == 0 {
            let local = socket
                .local_addr()
                .map_err(SocketError::Create)?
                .as_socket()
                .ok_or_else(|| SocketError::Create(io::Error::other("bound address is not IP")))?;
            bind_to.set_port(local.port());
        }
        sockets.push(UdpSocket::from(socket));
    }
    Ok(sockets)
}

/// Don't Fragment on every datagram, the path-MTU cache ignored (see
/// [`SocketOptions::mtu_probe`]).
fn set_mtu_probe(socket: &Socket, v6: bool) -> io::Result<()> {
    if v6 {
        super::sockopt::set_int(
            socket,
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_PROBE,
        )
    } else {
        super::sockopt::set_int(
            socket,
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_PROBE,
        )
    }
}

/// Sets the socket buffers (the kernel clamps them to `net.core.rmem_max` / `wmem_max`).
/// Failures keep the default: buffer sizes are tuning, not correctness.
fn set_buffer_sizes(socket: &Socket, opts: SocketOptions) {
    if opts.recv_buffer > 0
        && let Err(e) = socket.set_recv_buffer_size(opts.recv_buffer)
    {
        tracing::warn!("SO_RCVBUF {} not applied: {e}", opts.recv_buffer);
    }
    if opts.send_buffer > 0
        && let Err(e) = socket.set_send_buffer_size(opts.send_buffer)
    {
        tracing::warn!("SO_SNDBUF {} not applied: {e}", opts.send_buffer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_shares_one_port() {
        let opts = SocketOptions {
            recv_buffer: 1 << 20,
            send_buffer: 1 << 20,
            mtu_probe: true,
        };
        let group = bind_reuseport_group("127.0.0.1:0".parse().unwrap(), 3, opts).unwrap();
        let ports: Vec<u16> = group
            .iter()
            .map(|s| s.local_addr().unwrap().port())
            .collect();
        assert_ne!(ports[0], 0);
        assert!(ports.iter().all(|p| *p == ports[0]));
    }
}
