//! Binding one `SO_REUSEPORT` UDP socket per server thread on one address.

use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::SocketAddr;

/// Receive/send buffer asked for per server socket (capped by the kernel's
/// rmem_max/wmem_max): large enough that a closed-loop window of a few
/// thousand datagrams is not dropped at the socket.
const SERVER_BUF: usize = 4 << 20;

/// `count` blocking UDP sockets bound to `addr` with `SO_REUSEPORT`. When
/// `addr` has port 0, the first socket picks the port and the rest join it.
pub fn bind_reuseport(addr: SocketAddr, count: usize) -> io::Result<Vec<Socket>> {
    let mut bound = addr;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        s.set_reuse_port(true)?;
        let _ = s.set_recv_buffer_size(SERVER_BUF);
        let _ = s.set_send_buffer_size(SERVER_BUF);
        s.bind(&bound.into())?;
        if bound.port() == 0
            && let Some(a) = s.local_addr()?.as_socket()
        {
            bound = a;
        }
        out.push(s);
    }
    Ok(out)
}

/// Whether a failed receive on a server socket (blocking, with a read timeout so that the
/// thread can see its stop flag) only means "nothing yet": try again.
pub fn nothing_yet(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted | io::ErrorKind::TimedOut
    )
}
