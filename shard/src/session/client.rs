//! A plain-socket session client: one [`Endpoint`] driving many sessions, each from its own
//! UDP socket (its own source port). For tests and the load generator, not the data path: it
//! uses blocking-free std sockets and reads every socket in turn.
#![forbid(unsafe_code)]

use crate::id_hash::IdMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Instant;

use crate::session::{
    CloseOutcome, CloseReason, ConnId, ConnIdGen, ConnectError, Endpoint, EndpointConfig,
    EndpointError, EndpointStats, Event, PublicKey, SendOutcome, Timestamp,
};

/// Why the client could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A socket call failed.
    #[error("socket: {0}")]
    Io(#[from] io::Error),
    /// The endpoint refused to start.
    #[error("endpoint: {0}")]
    Endpoint(#[from] EndpointError),
    /// The endpoint refused a connect.
    #[error("connect: {0}")]
    Connect(#[from] ConnectError),
}

/// Many client sessions, one socket each.
pub struct ClientPool {
    ep: Endpoint,
    sockets: Vec<UdpSocket>,
    /// Our own connection IDs: hashed with one multiply (`crate::id_hash`, D84).
    by_conn: IdMap<ConnId, usize>,
    origin: Instant,
    buf: Vec<u8>,
    rx: Vec<u8>,
    unroutable: u64,
    loss: Loss,
}

/// Simulated loss on the pool's own sockets (soak and chaos tools): each datagram sent or
/// received is dropped with a probability, from a seeded SplitMix64 stream.
#[derive(Debug, Default)]
struct Loss {
    /// Probability scaled to `u64::MAX`; 0: none.
    threshold: u64,
    state: u64,
    lost: u64,
}

impl Loss {
    fn drop_one(&mut self) -> bool {
        if self.threshold == 0 {
            return false;
        }
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        let lose = (z ^ (z >> 31)) < self.threshold;
        self.lost += u64::from(lose);
        lose
    }
}

impl ClientPool {
    /// An empty pool. `seed` makes connection IDs and handshake randomness reproducible (tests
    /// and tools only). The pool only connects: it answers no Initiations, whatever
    /// `config.accept_incoming` says.
    pub fn new(mut config: EndpointConfig, seed: u64) -> Result<Self, ClientError> {
        config.accept_incoming = false;
        let clock = crate::session::SessionClock::start();
        config.unix_time_at_origin = clock.unix_time_at_origin();
        let buf = vec![0u8; config.max_datagram()];
        let ep = Endpoint::new(
            config,
            0,
            1,
            ConnIdGen::seed_from_u64(seed),
            Timestamp::ZERO,
        )?;
        Ok(Self {
            ep,
            sockets: Vec::new(),
            by_conn: IdMap::default(),
            origin: clock.origin(),
            buf,
            rx: vec![0u8; 65536],
            unroutable: 0,
            loss: Loss::default(),
        })
    }

    fn now(&self) -> Timestamp {
        Timestamp(self.origin.elapsed().as_nanos() as u64)
    }

    /// Opens a session to `server` from a new socket bound to `local` (port 0: any).
    /// `server_key`: the server's static public key (required in Noise mode).
    pub fn connect(
        &mut self,
        local: SocketAddr,
        server: SocketAddr,
        server_key: Option<PublicKey>,
    ) -> Result<ConnId, ClientError> {
        let socket = UdpSocket::bind(local)?;
        socket.set_nonblocking(true)?;
        let conn = self.ep.connect(self.now(), server, server_key)?;
        self.by_conn.insert(conn, self.sockets.len());
        self.sockets.push(socket);
        self.flush()?;
        Ok(conn)
    }

    /// Queues `bytes` on `conn` and sends what can be sent.
    pub fn send(&mut self, conn: ConnId, bytes: &[u8]) -> Result<SendOutcome, ClientError> {
        let outcome = self.ep.send(self.now(), conn, bytes);
        self.flush()?;
        Ok(outcome)
    }

    /// Closes `conn` (a Close goes to the server) and sends it.
    pub fn close(
        &mut self,
        conn: ConnId,
        reason: CloseReason,
    ) -> Result<CloseOutcome, ClientError> {
        let outcome = self.ep.close(self.now(), conn, reason);
        self.flush()?;
        Ok(outcome)
    }

    /// Reads every socket once, runs timers, sends what is due, and appends events to
    /// `events`. Returns how many datagrams were read.
    pub fn poll(&mut self, events: &mut Vec<Event>) -> Result<usize, ClientError> {
        let mut read = 0;
        for i in 0..self.sockets.len() {
            loop {
                match self.sockets[i].recv_from(&mut self.rx) {
                    Ok(_) if self.loss.drop_one() => {}
                    Ok((n, from)) => {
                        read += 1;
                        let now = self.now();
                        let _ = self.ep.handle_datagram(now, from, &self.rx[..n]);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let now = self.now();
        if self.ep.poll_timeout().is_some_and(|t| t <= now) {
            self.ep.handle_timeout(now);
        }
        self.flush()?;
        while let Some(e) = self.ep.poll_event() {
            events.push(e);
        }
        Ok(read)
    }

    /// Loses each datagram the pool sends or receives with `probability` (clamped to 0..=1),
    /// drawn from a stream seeded with `seed`: network loss for soak and chaos tools. Lost
    /// datagrams are counted ([`ClientPool::lost`]) and never reach the socket or the endpoint.
    pub fn set_loss(&mut self, probability: f64, seed: u64) {
        self.loss.threshold = (probability.clamp(0.0, 1.0) * u64::MAX as f64) as u64;
        self.loss.state = seed;
    }

    /// Datagrams lost on purpose ([`ClientPool::set_loss`]), both directions.
    pub fn lost(&self) -> u64 {
        self.loss.lost
    }

    /// Datagrams the endpoint emitted that no socket of the pool could send (dropped).
    pub fn unroutable(&self) -> u64 {
        self.unroutable
    }

    /// The pool's endpoint counters: drops by reason, Resets it drew, ...
    pub fn stats(&self) -> EndpointStats {
        self.ep.stats()
    }

    /// Live sessions.
    pub fn session_count(&self) -> usize {
        self.ep.session_count()
    }

    /// The local address of `conn`'s socket.
    pub fn local_addr(&self, conn: ConnId) -> Option<SocketAddr> {
        let i = *self.by_conn.get(&conn)?;
        self.sockets[i].local_addr().ok()
    }

    fn flush(&mut self) -> Result<(), ClientError> {
        let now = self.now();
        while let Some(t) = self.ep.poll_transmit(now, &mut self.buf) {
            let Some(&i) = t.conn.and_then(|c| self.by_conn.get(&c)) else {
                // No socket of ours sends it (a frame of no session of this pool): counted.
                self.unroutable += 1;
                continue;
            };
            if self.loss.drop_one() {
                // Lost on the way: the kernel would have taken it.
                if let Some(c) = t.conn {
                    self.ep.on_send_completed(c, true);
                }
                continue;
            }
            match self.sockets[i].send_to(&self.buf[..t.len], t.dst) {
                Ok(_) => {
                    if let Some(c) = t.conn {
                        self.ep.on_send_completed(c, true);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Some(c) = t.conn {
                        self.ep.on_send_completed(c, false);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
