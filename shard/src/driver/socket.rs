//! The shards' UDP sockets: one per shard, all bound to one address with `SO_REUSEPORT`.
//!
//! They are created together, in shard order, on the thread that starts the engine, and bind
//! order is the index a reuseport BPF program uses to pick a socket.
//!
//! **Port 0 is resolved without `SO_REUSEPORT`.** The kernel's ephemeral-port search for a
//! socket with `SO_REUSEPORT` skips only ports it could not share: a port whose holders all set
//! `SO_REUSEPORT` and belong to the same user counts as free (`udp_lib_lport_inuse`), so a
//! port-0 bind can land in *another process's* group. It then receives part of that group's
//! traffic and, attaching its steering program, replaces the other group's program (the
//! program belongs to the group). A 65-minute soak showed it: another engine of the same user,
//! started on port 0, joined the soak server's group, and from then on half of the second
//! shard's datagrams reached the first one and were handed over. So port 0 is first resolved
//! by a plain socket, whose search skips every held port, and the group binds that port.
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
/// If `addr` has port 0, a port nobody holds is picked first (see the module documentation)
/// and every socket binds it.
pub fn bind_reuseport_group(
    addr: SocketAddr,
    count: usize,
    opts: SocketOptions,
) -> Result<Vec<UdpSocket>, SocketError> {
    let mut sockets = Vec::with_capacity(count);
    let mut bind_to = addr;
    if bind_to.port() == 0 {
        bind_to.set_port(unheld_port(addr)?);
    }
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

/// A port no socket holds on `addr`'s address, picked by the kernel for a plain socket (no
/// `SO_REUSEPORT`), which is closed again before the group binds the port. Another process could
/// take the port in between; it would then have to set `SO_REUSEPORT` as the same user to share
/// it, the narrow case the engine's held-port check before binding cannot see either.
fn unheld_port(addr: SocketAddr) -> Result<u16, SocketError> {
    let probe = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(SocketError::Create)?;
    if addr.is_ipv6() {
        probe.set_only_v6(true).map_err(SocketError::Create)?;
    }
    probe
        .bind(&SockAddr::from(addr))
        .map_err(|source| SocketError::Bind { addr, source })?;
    probe
        .local_addr()
        .map_err(SocketError::Create)?
        .as_socket()
        .map(|a| a.port())
        .ok_or_else(|| SocketError::Create(io::Error::other("bound address is not IP")))
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

    /// Groups bound to port 0 never share a port with a group this process already holds.
    /// Before the fix, a reuseport bind to port 0 could join a held group (the kernel counts a
    /// same-user reuseport port as free): 800 held single-socket groups over the 28,232 ports
    /// of the default range meet about 11 such joins, so this failed in practice every time.
    #[test]
    fn port_zero_never_joins_a_held_group() {
        let opts = SocketOptions {
            recv_buffer: 0,
            send_buffer: 0,
            mtu_probe: false,
        };
        let mut held = Vec::new();
        let mut ports = std::collections::HashSet::new();
        for _ in 0..800 {
            let group = bind_reuseport_group("127.0.0.1:0".parse().unwrap(), 1, opts).unwrap();
            let port = group[0].local_addr().unwrap().port();
            assert!(
                ports.insert(port),
                "port {port} bound twice: joined a held group"
            );
            held.push(group);
        }
    }
}
