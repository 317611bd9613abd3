//! A seeded in-memory network with a virtual clock: the **test harness** for endpoints.
//!
//! Not for production: it exists so that tests (here and in `tests/session_*.rs`) can run many
//! endpoints through loss, duplication, reordering and corruption deterministically. Same
//! seed, same calls → same [`TraceEntry`] sequence, byte for byte.
//!
//! ```text
//!  node 0 (addr A, shards 0..n) ──poll_transmit──► FaultInjector ──► in-flight heap (at, seq)
//!        ▲                                                               │ virtual clock jumps
//!        └──── steer (the BPF rule) ◄── handle_datagram ◄────────────────┘ to the next event
//! ```
//!
//! Steering models the driver's reuseport BPF program as it is (`driver::steering_program`):
//! an Initiation (type nibble 1, like v1's Hello) or anything too short to carry byte 4 is
//! placed by hashing the source address; anything else goes to the shard in byte 4 if it
//! exists. Protocol version 2 is correct under this program and under the uniform one
//! `docs/PROTOCOL.md` §2 specifies (`byte[4] mod N` for everything of at least 12 bytes):
//! the endpoint hands an Initiation to the shard its route byte names and a Reset to the shard
//! that holds sessions to its sender (`Handled::OtherShard`), which the simulator forwards as
//! the driver would.
//!
//! [`Sim::connect`] finds the server's static public key by its address among the nodes, as
//! a real client is configured with it.
//!
//! Faults are a layer ([`FaultConfig`]) applied to each datagram as it leaves, drawing from
//! the simulator's own `SplitMix64` stream (independent of the endpoints' keyed generators).
#![forbid(unsafe_code)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::Duration;

use super::config::EndpointConfig;
use super::conn_id::{ConnId, ConnIdGen, connect_shard};
use super::endpoint::{CloseOutcome, Endpoint};
use super::event::{CloseReason, ConnectError, Event, Handled, SendOutcome};
use super::identity::PublicKey;
use super::time::Timestamp;
use super::wire::MsgType;

/// Network faults, applied independently to each datagram sent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaultConfig {
    /// One-way latency.
    pub latency: Duration,
    /// Extra uniformly random delay in `0..=jitter`.
    pub jitter: Duration,
    /// Probability a datagram is lost.
    pub loss: f64,
    /// Probability a datagram is delivered twice (the copy a little later).
    pub duplicate: f64,
    /// Probability a datagram is held back by up to `reorder_delay` extra.
    pub reorder: f64,
    /// The most a reordered datagram is held back.
    pub reorder_delay: Duration,
    /// Probability one random byte of a datagram is replaced by a random value.
    pub corrupt: f64,
}

impl Default for FaultConfig {
    /// A perfect 10 ms network.
    fn default() -> Self {
        FaultConfig {
            latency: Duration::from_millis(10),
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(50),
            corrupt: 0.0,
        }
    }
}

/// SplitMix64: tiny, fast, and fully determined by its seed. Not for secrets.
#[derive(Clone, Debug)]
pub struct SimRng(u64);

impl SimRng {
    /// A generator from a seed.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        SimRng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (`0` when `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.next_f64() < p
    }
}

/// One application event, where and when it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEntry {
    /// Virtual time.
    pub at: Timestamp,
    /// Node index (from [`Sim::add_node`]).
    pub node: usize,
    /// Shard of that node.
    pub shard: u16,
    /// The event.
    pub event: Event,
}

/// A datagram as it left an endpoint (recorded when [`Sim::set_capture`] is on).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Captured {
    /// When it was sent.
    pub at: Timestamp,
    /// Source address.
    pub from: SocketAddr,
    /// Destination address.
    pub to: SocketAddr,
    /// The bytes, before any fault.
    pub bytes: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: Timestamp,
    seq: u64,
    from: SocketAddr,
    to: SocketAddr,
    bytes: Vec<u8>,
}

#[derive(Debug)]
struct Node {
    addr: SocketAddr,
    public: Option<PublicKey>,
    shards: Vec<Endpoint>,
}

/// The simulated network: nodes, datagrams in flight, the virtual clock and the event trace.
#[derive(Debug)]
pub struct Sim {
    now: Timestamp,
    rng: SimRng,
    faults: FaultConfig,
    nodes: Vec<Node>,
    in_flight: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    trace: Vec<TraceEntry>,
    capture: Option<Vec<Captured>>,
    buf: Vec<u8>,
    uniform_steering: bool,
    /// Datagrams the fault layer dropped.
    pub lost: u64,
    /// Datagrams delivered to some endpoint (duplicates included).
    pub delivered: u64,
}

impl Sim {
    /// An empty network at time zero.
    #[must_use]
    pub fn new(seed: u64, faults: FaultConfig) -> Self {
        Sim {
            now: Timestamp::ZERO,
            rng: SimRng::new(seed),
            faults,
            nodes: Vec::new(),
            in_flight: BinaryHeap::new(),
            seq: 0,
            trace: Vec::new(),
            capture: None,
            buf: Vec::new(),
            uniform_steering: false,
            lost: 0,
            delivered: 0,
        }
    }

    /// Adds a host at `addr` with `n_shards` endpoints sharing `config`; returns its index.
    ///
    /// # Panics
    /// If `n_shards` is not in `1..=256` (a harness misuse).
    pub fn add_node(&mut self, addr: SocketAddr, n_shards: u16, config: EndpointConfig) -> usize {
        let shards = (0..n_shards)
            .map(|i| {
                let seed = ConnIdGen::seed_from_u64(self.rng.next_u64());
                Endpoint::new(config.clone(), i, n_shards, seed, self.now)
                    .expect("valid shard count")
            })
            .collect();
        self.buf
            .resize(self.buf.len().max(config.max_datagram()), 0);
        let public = config.public_key();
        self.nodes.push(Node {
            addr,
            public,
            shards,
        });
        self.nodes.len() - 1
    }

    /// Restarts `node`: its endpoints are replaced by fresh ones with the same configuration
    /// (identity included) and new seeds, as a process that restarted and lost every session.
    /// Pending events and transmits are flushed first; datagrams in flight still arrive.
    pub fn restart_node(&mut self, node: usize) {
        self.flush();
        let n = u16::try_from(self.nodes[node].shards.len()).unwrap_or(1);
        let config = self.nodes[node].shards[0].config().clone();
        let now = self.now;
        for i in 0..n {
            let seed = ConnIdGen::seed_from_u64(self.rng.next_u64());
            self.nodes[node].shards[usize::from(i)] =
                Endpoint::new(config.clone(), i, n, seed, now).expect("valid shard count");
        }
    }

    /// The current virtual time.
    #[must_use]
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Steers with [`steer_uniform`] (the v2 program) instead of [`steer`] (today's).
    pub fn set_uniform_steering(&mut self, on: bool) {
        self.uniform_steering = on;
    }

    /// Changes the fault layer from now on.
    pub fn set_faults(&mut self, faults: FaultConfig) {
        self.faults = faults;
    }

    /// Starts (or stops) recording every datagram sent.
    pub fn set_capture(&mut self, on: bool) {
        self.capture = on.then(Vec::new);
    }

    /// The datagrams recorded since capture was turned on.
    #[must_use]
    pub fn captured(&self) -> &[Captured] {
        self.capture.as_deref().unwrap_or(&[])
    }

    /// Every application event so far, in order.
    #[must_use]
    pub fn trace(&self) -> &[TraceEntry] {
        &self.trace
    }

    /// A node's address.
    #[must_use]
    pub fn addr(&self, node: usize) -> SocketAddr {
        self.nodes[node].addr
    }

    /// One endpoint.
    #[must_use]
    pub fn endpoint(&self, node: usize, shard: u16) -> &Endpoint {
        &self.nodes[node].shards[usize::from(shard)]
    }

    /// One endpoint, mutably (drive it directly, then call [`Sim::flush`]).
    pub fn endpoint_mut(&mut self, node: usize, shard: u16) -> &mut Endpoint {
        &mut self.nodes[node].shards[usize::from(shard)]
    }

    /// Sessions held by all shards of `node`.
    #[must_use]
    pub fn session_count(&self, node: usize) -> usize {
        self.nodes[node]
            .shards
            .iter()
            .map(Endpoint::session_count)
            .sum()
    }

    /// Connects from `node` to `to`, on the shard [`connect_shard`] picks, with the static
    /// public key of the node at `to` (if any node is there).
    pub fn connect(&mut self, node: usize, to: SocketAddr) -> Result<ConnId, ConnectError> {
        let key = self
            .nodes
            .iter()
            .find(|n| n.addr == to)
            .and_then(|n| n.public);
        self.connect_with_key(node, to, key)
    }

    /// Connects from `node` to `to` with the server key `key` (e.g. a wrong one).
    pub fn connect_with_key(
        &mut self,
        node: usize,
        to: SocketAddr,
        key: Option<PublicKey>,
    ) -> Result<ConnId, ConnectError> {
        let n = u16::try_from(self.nodes[node].shards.len()).unwrap_or(1);
        let shard = connect_shard(to, n);
        let now = self.now;
        let r = self.endpoint_mut(node, shard).connect(now, to, key);
        self.flush();
        r
    }

    /// Sends on `conn` of `node` (the shard is the one in the ID).
    pub fn send(&mut self, node: usize, conn: ConnId, bytes: &[u8]) -> SendOutcome {
        let now = self.now;
        let r = self.endpoint_mut(node, conn.shard()).send(now, conn, bytes);
        self.flush();
        r
    }

    /// Closes `conn` of `node`.
    pub fn close(&mut self, node: usize, conn: ConnId, reason: CloseReason) -> CloseOutcome {
        let now = self.now;
        let r = self
            .endpoint_mut(node, conn.shard())
            .close(now, conn, reason);
        self.flush();
        r
    }

    /// Puts raw bytes in flight from `from` to `to`, with the base latency and no faults (for
    /// replaying captured or hand-made datagrams).
    pub fn inject(&mut self, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
        let at = self.now.saturating_add(self.faults.latency);
        self.seq += 1;
        self.in_flight.push(Reverse(InFlight {
            at,
            seq: self.seq,
            from,
            to,
            bytes,
        }));
    }

    /// The next time anything happens: a delivery or an endpoint timer.
    #[must_use]
    pub fn next_event(&self) -> Option<Timestamp> {
        let net = self.in_flight.peek().map(|Reverse(f)| f.at);
        let timers = self
            .nodes
            .iter()
            .flat_map(|n| n.shards.iter())
            .filter_map(Endpoint::poll_timeout)
            .min();
        match (net, timers) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Advances to the next event and processes everything due then. False if nothing is left.
    pub fn step(&mut self) -> bool {
        let Some(t) = self.next_event() else {
            return false;
        };
        self.now = self.now.max(t);
        let now = self.now;
        while self.in_flight.peek().is_some_and(|Reverse(f)| f.at <= now) {
            let Some(Reverse(f)) = self.in_flight.pop() else {
                break;
            };
            self.deliver(f);
        }
        for n in &mut self.nodes {
            for ep in &mut n.shards {
                if ep.poll_timeout().is_some_and(|d| d <= now) {
                    ep.handle_timeout(now);
                }
            }
        }
        self.flush();
        true
    }

    /// Runs every event up to and including `t`, then sets the clock to `t`.
    pub fn run_until(&mut self, t: Timestamp) {
        while self.next_event().is_some_and(|e| e <= t) {
            self.step();
        }
        self.now = self.now.max(t);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now.saturating_add(d));
    }

    fn deliver(&mut self, f: InFlight) {
        let Some(ni) = self.nodes.iter().position(|n| n.addr == f.to) else {
            return;
        };
        self.delivered += 1;
        let now = self.now;
        let node = &mut self.nodes[ni];
        let n = u16::try_from(node.shards.len()).unwrap_or(1);
        let mut shard = if self.uniform_steering {
            steer_uniform(&f.bytes, f.from, n)
        } else {
            steer(&f.bytes, f.from, n)
        };
        // At most one forward: the owner never answers OtherShard for its own IDs.
        for _ in 0..2 {
            match node.shards[usize::from(shard)].handle_datagram(now, f.from, &f.bytes) {
                Handled::OtherShard(k) if k != shard && k < n => shard = k,
                _ => break,
            }
        }
    }

    /// Drains every endpoint's transmits (through the fault layer) and events (into the trace),
    /// and hands each load report of the count exchange to the other shards of its node at
    /// once (a host does so over the mesh's control lane).
    pub fn flush(&mut self) {
        let now = self.now;
        for ni in 0..self.nodes.len() {
            let from = self.nodes[ni].addr;
            let shards = &mut self.nodes[ni].shards;
            for si in 0..shards.len() {
                while let Some(r) = shards[si].poll_load_report() {
                    for (sj, ep) in shards.iter_mut().enumerate() {
                        if sj != si {
                            ep.on_load_report(r);
                        }
                    }
                }
            }
            for si in 0..self.nodes[ni].shards.len() {
                while let Some(t) = self.nodes[ni].shards[si].poll_transmit(now, &mut self.buf) {
                    let bytes = self.buf[..t.len].to_vec();
                    if let Some(c) = t.conn {
                        // The simulated kernel always completes sends successfully.
                        self.nodes[ni].shards[si].on_send_completed(c, true);
                    }
                    self.transmit(from, t.dst, bytes);
                }
                while let Some(event) = self.nodes[ni].shards[si].poll_event() {
                    let shard = u16::try_from(si).unwrap_or(u16::MAX);
                    self.trace.push(TraceEntry {
                        at: now,
                        node: ni,
                        shard,
                        event,
                    });
                }
            }
        }
    }

    fn transmit(&mut self, from: SocketAddr, to: SocketAddr, mut bytes: Vec<u8>) {
        if let Some(c) = &mut self.capture {
            c.push(Captured {
                at: self.now,
                from,
                to,
                bytes: bytes.clone(),
            });
        }
        let f = self.faults;
        if self.rng.chance(f.loss) {
            self.lost += 1;
            return;
        }
        if !bytes.is_empty() && self.rng.chance(f.corrupt) {
            let i = self.rng.below(bytes.len() as u64) as usize;
            bytes[i] = self.rng.next_u64() as u8;
        }
        let jitter = self.rng.below(
            u64::try_from(f.jitter.as_nanos())
                .unwrap_or(u64::MAX)
                .saturating_add(1),
        );
        let mut at = self
            .now
            .saturating_add(f.latency)
            .saturating_add(Duration::from_nanos(jitter));
        if self.rng.chance(f.reorder) {
            let extra = self.rng.below(
                u64::try_from(f.reorder_delay.as_nanos())
                    .unwrap_or(u64::MAX)
                    .saturating_add(1),
            );
            at = at.saturating_add(Duration::from_nanos(extra));
        }
        if self.rng.chance(f.duplicate) {
            self.seq += 1;
            let later = at.saturating_add(Duration::from_nanos(1 + self.rng.below(1_000_000)));
            self.in_flight.push(Reverse(InFlight {
                at: later,
                seq: self.seq,
                from,
                to,
                bytes: bytes.clone(),
            }));
        }
        self.seq += 1;
        self.in_flight.push(Reverse(InFlight {
            at,
            seq: self.seq,
            from,
            to,
            bytes,
        }));
    }
}

/// The reuseport steering rule, as the driver's classic-BPF program
/// (`driver::steering_program`) implements it: datagrams shorter than 12 bytes (type and CID)
/// and Initiations by source-address hash (standing in for the kernel's 4-tuple hash), everything
/// else by byte 4 (the owner's shard index) when it names an existing shard, by hash when it
/// does not.
#[must_use]
pub fn steer(bytes: &[u8], from: SocketAddr, n_shards: u16) -> u16 {
    match bytes {
        [version_type, _, _, _, owner, _, _, _, _, _, _, _, ..]
            if version_type & 0x0f != MsgType::Initiation as u8 && u16::from(*owner) < n_shards =>
        {
            u16::from(*owner)
        }
        _ => connect_shard(from, n_shards),
    }
}

/// The uniform steering rule of protocol version 2 (`docs/PROTOCOL.md` §2) that the BPF
/// program is to adopt: datagrams under 12 bytes by source-address hash, everything else to
/// shard `byte[4] mod N`. [`Sim::set_uniform_steering`] switches the simulator to it.
#[must_use]
pub fn steer_uniform(bytes: &[u8], from: SocketAddr, n_shards: u16) -> u16 {
    let n = n_shards.max(1);
    if bytes.len() < 12 {
        return connect_shard(from, n);
    }
    u16::from(bytes[4]) % n
}
