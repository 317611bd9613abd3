//! The simulated peers: one connected, non-blocking UDP socket (and so one
//! source port) per peer, all registered in one epoll set per worker.

use crate::sys::epoll::Epoll;
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

/// One worker's peer sockets and the epoll set watching them; the epoll
/// token of each socket is its index.
pub struct PeerSet {
    sockets: Vec<UdpSocket>,
    epoll: Epoll,
}

/// Receive buffer per peer socket; bursts of echoes must not overflow it.
const PEER_RCVBUF: usize = 256 * 1024;

fn open_peer(target: SocketAddr) -> io::Result<UdpSocket> {
    let domain = Domain::for_address(target);
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_nonblocking(true)?;
    // Best effort: the kernel caps it at net.core.rmem_max.
    let _ = socket.set_recv_buffer_size(PEER_RCVBUF);
    let any: IpAddr = match target {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    socket.bind(&SocketAddr::new(any, 0).into()).map_err(|e| {
        if e.kind() == io::ErrorKind::AddrInUse {
            io::Error::new(
                e.kind(),
                "ephemeral ports exhausted binding a peer socket (see net.ipv4.ip_local_port_range)",
            )
        } else {
            e
        }
    })?;
    socket.connect(&target.into())?;
    Ok(socket.into())
}

impl PeerSet {
    /// Opens `count` peer sockets connected to `target`.
    pub fn open(target: SocketAddr, count: usize) -> io::Result<Self> {
        let epoll = Epoll::new(256)?;
        let mut sockets = Vec::with_capacity(count);
        for i in 0..count {
            let s = open_peer(target).map_err(|e| {
                if e.raw_os_error() == Some(libc::EMFILE) {
                    io::Error::new(
                        e.kind(),
                        format!("out of file descriptors after {i} peer sockets (RLIMIT_NOFILE)"),
                    )
                } else {
                    e
                }
            })?;
            epoll.add_readable(s.as_raw_fd(), i as u64)?;
            sockets.push(s);
        }
        Ok(Self { sockets, epoll })
    }

    /// Number of peers.
    #[must_use]
    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    /// Whether there are no peers.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }

    /// Peer `i`'s descriptor.
    #[must_use]
    pub fn fd(&self, i: usize) -> RawFd {
        self.sockets[i].as_raw_fd()
    }

    /// The source ports the peers send from.
    #[must_use]
    pub fn local_ports(&self) -> Vec<u16> {
        self.sockets
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .map(|a| a.port())
            .collect()
    }

    /// The epoll set watching every peer.
    pub fn epoll_mut(&mut self) -> &mut Epoll {
        &mut self.epoll
    }
}
