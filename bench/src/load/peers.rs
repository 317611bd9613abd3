//! The simulated peers: one connected, non-blocking UDP socket (and so one
//! source port) per peer, all registered in one epoll set per worker.
//!
//! One source IP has about 28k ephemeral ports (`ip_local_port_range`), so
//! against an IPv4 loopback target the peers are spread over 127.0.0.1,
//! 127.0.0.2, ... in blocks of [`PEERS_PER_LOOPBACK_IP`]: any number of
//! peers the file-descriptor limit allows gets a distinct (IP, port).

use crate::sys::epoll::Epoll;
use crate::sys::gso::{self, GroBatch};
use crate::sys::mmsg::MmsgBatch;
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

/// Peers per loopback source address (well under the ephemeral port range).
pub const PEERS_PER_LOOPBACK_IP: usize = 16_384;

/// Receive buffer per peer socket; bursts of echoes must not overflow it.
const PEER_RCVBUF: usize = 256 * 1024;

/// Receive buffer per peer socket in bulk mode: a peer's share of the window in 1200-byte
/// datagrams, sent back one by one by a server without GSO, must fit.
const BULK_RCVBUF: usize = 4 << 20;

/// A batch of receive buffers [`PeerSet::for_each_ready`] reads into: plain datagrams
/// ([`MmsgBatch`]) or coalesced buffers ([`GroBatch`]).
pub trait RecvBatch {
    /// Buffers per call.
    fn count(&self) -> usize;
    /// Receives up to `max` into buffers `0..n`; returns `n`.
    fn recv(&mut self, fd: RawFd, max: usize, flags: libc::c_int) -> io::Result<usize>;
}

impl RecvBatch for MmsgBatch {
    fn count(&self) -> usize {
        MmsgBatch::count(self)
    }
    fn recv(&mut self, fd: RawFd, max: usize, flags: libc::c_int) -> io::Result<usize> {
        MmsgBatch::recv(self, fd, max, flags)
    }
}

impl RecvBatch for GroBatch {
    fn count(&self) -> usize {
        GroBatch::count(self)
    }
    fn recv(&mut self, fd: RawFd, max: usize, flags: libc::c_int) -> io::Result<usize> {
        GroBatch::recv(self, fd, max, flags)
    }
}

/// The local address peer number `global_index` (over all workers) binds, `per_ip` peers to
/// each loopback address.
fn source_ip(target: SocketAddr, global_index: usize, per_ip: usize) -> IpAddr {
    match target {
        SocketAddr::V4(t) if t.ip().is_loopback() => {
            let block = u32::try_from(global_index / per_ip.max(1)).unwrap_or(0);
            // 127.0.0.1 + block, staying inside 127.0.0.0/8.
            Ipv4Addr::from(u32::from(Ipv4Addr::LOCALHOST) + (block % 0x00FF_FFFE)).into()
        }
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    }
}

fn open_peer(
    target: SocketAddr,
    global_index: usize,
    per_ip: usize,
    bulk: bool,
) -> io::Result<UdpSocket> {
    let domain = Domain::for_address(target);
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_nonblocking(true)?;
    // Best effort: the kernel caps it at net.core.rmem_max.
    let _ = socket.set_recv_buffer_size(if bulk { BULK_RCVBUF } else { PEER_RCVBUF });
    if bulk {
        let offload = |what: &str, e: io::Error| {
            io::Error::new(
                e.kind(),
                format!("bulk mode needs {what} on peer sockets: {e}"),
            )
        };
        gso::enable_gro(socket.as_raw_fd()).map_err(|e| offload("UDP_GRO", e))?;
        gso::probe_gso(socket.as_raw_fd()).map_err(|e| offload("UDP_SEGMENT", e))?;
    }
    let local = source_ip(target, global_index, per_ip);
    socket.bind(&SocketAddr::new(local, 0).into()).map_err(|e| {
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
    /// Opens `count` peer sockets connected to `target`; `first_index` is
    /// the global number of the first (it picks the source address, `per_ip`
    /// peers to each loopback address; at most [`PEERS_PER_LOOPBACK_IP`]). `bulk`:
    /// with `UDP_GRO` on and larger receive buffers (bulk mode).
    pub fn open(
        target: SocketAddr,
        first_index: usize,
        count: usize,
        per_ip: usize,
        bulk: bool,
    ) -> io::Result<Self> {
        let epoll = Epoll::new(256)?;
        let mut sockets = Vec::with_capacity(count);
        for i in 0..count {
            let s = open_peer(target, first_index + i, per_ip, bulk).map_err(|e| {
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

    /// The source addresses (IP and port) the peers send from.
    #[must_use]
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.sockets
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }

    /// The epoll set watching every peer.
    pub fn epoll_mut(&mut self) -> &mut Epoll {
        &mut self.epoll
    }

    /// Waits up to `timeout_ms` (0: poll) for readable peers, drains each
    /// one with `recvmmsg` into `rx` (non-blocking, as many batches as it
    /// holds) and calls `f(peer, rx, n)` per batch of `n` datagrams. Only the
    /// sockets epoll reports are read. Returns the receive errors seen.
    pub fn for_each_ready<B: RecvBatch>(
        &mut self,
        timeout_ms: i32,
        rx: &mut B,
        mut f: impl FnMut(usize, &B, usize),
    ) -> io::Result<u64> {
        let mut errors = 0;
        let batch = rx.count();
        let ready = self.epoll.wait(timeout_ms)?;
        for r in 0..ready {
            let peer = usize::try_from(self.epoll.token(r)).unwrap_or(usize::MAX);
            let Some(socket) = self.sockets.get(peer) else {
                continue;
            };
            let fd = socket.as_raw_fd();
            loop {
                let n = match rx.recv(fd, batch, libc::MSG_DONTWAIT) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        errors += 1;
                        break;
                    }
                };
                f(peer, rx, n);
                if n < batch {
                    break;
                }
            }
        }
        Ok(errors)
    }
}
