//! Target `handshake`: initiation, response and cookie-reply handling, mac1 and mac2 included,
//! on a responder and an initiator `Endpoint` (Noise or plaintext mode, with or without load).
//!
//! A fuzzer cannot forge a MAC, so besides raw bytes the input can ask for its bytes to be
//! sent with mac1 (and mac2, from a cookie the responder would issue) recomputed, or for real
//! handshake messages with bytes flipped and MACs fixed up afterwards; that takes it past the
//! MAC checks into the Noise messages, the cookie opening and the replay table.
//!
//! Properties: no panic; a stranger never gets a reply larger than the datagram that
//! triggered it; nothing but the real initiator gets a session; the initiator connects only
//! to the responder it dialled.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use ringwire_shard::session::cookie::{self, CookieJar};
use ringwire_shard::session::wire::{self, field};
use ringwire_shard::session::{
    ConnIdGen, Endpoint, EndpointConfig, Event, Handled, Keypair, Timestamp,
};

use crate::input::Input;

const COOKIE_KEY: [u8; 32] = [0x5a; 32];
const UNIX_AT_ZERO: Duration = Duration::from_secs(1_700_000_000);

fn addr(last: u8, port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, last), port))
}

struct Setup {
    plaintext: bool,
    server_key: Keypair,
    client_key: Keypair,
    server: Endpoint,
    client: Endpoint,
    jar: CookieJar,
    now: Timestamp,
    buf: Vec<u8>,
}

/// The responder's address.
fn server_addr() -> SocketAddr {
    addr(2, 2000)
}

/// The real initiator's address.
fn client_addr() -> SocketAddr {
    addr(1, 1000)
}

fn config(plaintext: bool, key: &Keypair, under_load: bool) -> EndpointConfig {
    let mut c = if plaintext {
        EndpointConfig::plaintext(COOKIE_KEY)
    } else {
        EndpointConfig::new(COOKIE_KEY, key.clone())
    };
    c.unix_time_at_origin = UNIX_AT_ZERO;
    if under_load {
        c.handshakes_per_second = 0;
    }
    c
}

impl Setup {
    fn new(flags: u8) -> Self {
        let plaintext = flags & 0x10 != 0;
        let under_load = flags & 0x20 != 0;
        let server_key = Keypair::from_seed_bytes([2; 32]);
        let client_key = Keypair::from_seed_bytes([3; 32]);
        let sc = config(plaintext, &server_key, under_load);
        let rotation = sc.cookie_rotation;
        let server = Endpoint::new(sc, 0, 1, ConnIdGen::seed_from_u64(1), Timestamp::ZERO)
            .expect("one shard");
        let client = Endpoint::new(
            config(plaintext, &client_key, false),
            0,
            1,
            ConnIdGen::seed_from_u64(2),
            Timestamp::ZERO,
        )
        .expect("one shard");
        let buf = vec![0u8; server.config().max_datagram()];
        Setup {
            plaintext,
            server_key,
            client_key,
            server,
            client,
            jar: CookieJar::new(COOKIE_KEY, rotation, Timestamp::ZERO),
            now: Timestamp::ZERO,
            buf,
        }
    }

    /// The real client's first Initiation.
    fn initiation(&mut self) -> Vec<u8> {
        let key = (!self.plaintext).then_some(self.server_key.public);
        let _conn = self
            .client
            .connect(self.now, server_addr(), key)
            .expect("room");
        let out = self.drain_client();
        out.into_iter().next().expect("an Initiation").1
    }

    /// Gives `bytes` from `from` to the server, runs its turn; returns what it sent.
    fn deliver_to_server(&mut self, from: SocketAddr, bytes: &[u8]) -> Vec<(SocketAddr, Vec<u8>)> {
        let h = self.server.handle_datagram(self.now, from, bytes);
        assert!(!matches!(h, Handled::OtherShard(_)), "one shard owns all");
        let out = self.drain_server();
        for (dst, reply) in &out {
            // The real client becomes a peer once it has a session; everyone else is a
            // stranger and never gets more bytes than it sent.
            if *dst != client_addr() || self.server.session_count() == 0 {
                assert!(
                    reply.len() <= bytes.len(),
                    "a reply of {} bytes to a {}-byte datagram",
                    reply.len(),
                    bytes.len()
                );
            }
        }
        assert!(self.server.session_count() <= 1, "only the real initiator");
        out
    }

    /// Gives `bytes` from `from` to the client, runs its turn; returns what it sent.
    fn deliver_to_client(&mut self, from: SocketAddr, bytes: &[u8]) -> Vec<(SocketAddr, Vec<u8>)> {
        let _ = self.client.handle_datagram(self.now, from, bytes);
        self.drain_client()
    }

    fn drain_server(&mut self) -> Vec<(SocketAddr, Vec<u8>)> {
        drain(&mut self.server, self.now, &mut self.buf)
    }

    fn drain_client(&mut self) -> Vec<(SocketAddr, Vec<u8>)> {
        let out = drain(&mut self.client, self.now, &mut self.buf);
        while let Some(e) = self.client.poll_event() {
            if let Event::Connected { peer, .. } = e {
                assert_eq!(
                    peer,
                    server_addr(),
                    "connected only to the responder dialled"
                );
            }
        }
        out
    }

    /// Recomputes an Initiation's mac1 (for the server's key) and, with `with_mac2`, its mac2
    /// from the cookie the server would give `from` now.
    fn fix_initiation_macs(&mut self, b: &mut [u8], from: SocketAddr, with_mac2: bool) {
        let (m1, m2) = if self.plaintext {
            (field::INIT_PLAIN_MAC1, field::INIT_PLAIN_MAC2)
        } else {
            (field::INIT_MAC1, field::INIT_MAC2)
        };
        if b.len() < m2.end {
            return;
        }
        let key = self.mac1_key(self.server_key.public.as_bytes());
        let mac1 = cookie::mac1(&key, &b[..m1.start]);
        b[m1.clone()].copy_from_slice(&mac1);
        if with_mac2 {
            let c = self.jar.cookie(self.now, from);
            let mac2 = cookie::mac2(&c, &b[..m2.start]);
            b[m2].copy_from_slice(&mac2);
        }
    }

    /// Recomputes a Response's mac1 (for the client's key).
    fn fix_response_mac(&self, b: &mut [u8]) {
        let m1 = if self.plaintext {
            field::RESP_PLAIN_MAC1
        } else {
            field::RESP_MAC1
        };
        if b.len() < m1.end {
            return;
        }
        let key = self.mac1_key(self.client_key.public.as_bytes());
        let mac1 = cookie::mac1(&key, &b[..m1.start]);
        b[m1].copy_from_slice(&mac1);
    }

    /// Plaintext mode keys mac1 with the all-zero key.
    fn mac1_key(&self, public: &[u8; 32]) -> [u8; 32] {
        cookie::mac1_key(if self.plaintext { &[0; 32] } else { public })
    }
}

fn drain(ep: &mut Endpoint, now: Timestamp, buf: &mut [u8]) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut out = Vec::new();
    // A bounded number of timer batches (each runs queued handshakes).
    for _ in 0..4 {
        if ep.poll_timeout().is_some_and(|t| t <= now) {
            ep.handle_timeout(now);
        }
        while let Some(t) = ep.poll_transmit(now, buf) {
            if let Some(c) = t.conn {
                ep.on_send_completed(c, true);
            }
            out.push((t.dst, buf[..t.len].to_vec()));
        }
    }
    out
}

/// Flips bytes of `b` at positions and with masks the input chooses.
fn mutate(input: &mut Input<'_>, b: &mut [u8]) {
    let n = input.u8() % 8;
    for _ in 0..n {
        let at = usize::from(input.u8());
        let mask = input.u8();
        if !b.is_empty() {
            let i = at % b.len();
            b[i] ^= mask;
        }
    }
}

/// One input: flags (mode, plaintext, load), then the mode's bytes.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.u8();
    let mut s = Setup::new(flags);
    s.now = Timestamp::from_millis(u64::from(input.u16()));
    let with_mac2 = flags & 0x40 != 0;
    let fix = flags & 0x80 != 0;
    match flags & 0x7 {
        // Raw bytes to the responder, from the client's address or a stranger's.
        0 => {
            let from = if fix { addr(9, 9000) } else { client_addr() };
            let _ = s.deliver_to_server(from, input.rest());
        }
        // The input as an Initiation's bytes with valid MACs.
        1 => {
            let len = if s.plaintext {
                wire::INITIATION_PLAIN_LEN
            } else {
                wire::INITIATION_LEN
            };
            let mut b = input.bytes(len).to_vec();
            b.resize(len, 0);
            b[0] = (wire::VERSION << 4) | wire::MsgType::Initiation as u8;
            s.fix_initiation_macs(&mut b, client_addr(), with_mac2);
            let _ = s.deliver_to_server(client_addr(), &b);
        }
        // The real Initiation, bytes flipped, MACs fixed or not; its answers to the client.
        2 => {
            let mut b = s.initiation();
            mutate(&mut input, &mut b);
            if fix {
                s.fix_initiation_macs(&mut b, client_addr(), with_mac2);
            }
            let answers = s.deliver_to_server(client_addr(), &b);
            for (_, a) in answers {
                let _ = s.deliver_to_client(server_addr(), &a);
            }
        }
        // Raw bytes to an initiator waiting for its Response.
        3 => {
            let _init = s.initiation();
            let mut b = input.rest().to_vec();
            if fix {
                s.fix_response_mac(&mut b);
            }
            let _ = s.deliver_to_client(server_addr(), &b);
        }
        // The real Response (or CookieReply, under load), bytes flipped, MAC fixed or not.
        4 => {
            let init = s.initiation();
            let answers = s.deliver_to_server(client_addr(), &init);
            for (_, mut a) in answers {
                mutate(&mut input, &mut a);
                if fix && a.first() == Some(&((wire::VERSION << 4) | wire::MsgType::Response as u8))
                {
                    s.fix_response_mac(&mut a);
                }
                // A CookieReply accepted: the client retries with mac2, back to the server.
                for (_, retry) in s.deliver_to_client(server_addr(), &a) {
                    for (_, r) in s.deliver_to_server(client_addr(), &retry) {
                        let _ = s.deliver_to_client(server_addr(), &r);
                    }
                }
            }
        }
        // A sequence of datagrams from several addresses, time moving on; the real
        // Initiation somewhere among them.
        _ => {
            let init = s.initiation();
            let mut sent_init = false;
            while !input.is_empty() {
                let op = input.u8();
                s.now = s
                    .now
                    .saturating_add(Duration::from_millis(u64::from(op >> 4) * 50));
                let from = addr(op & 0x3, 1000 + u16::from(op & 0x3));
                let mut b = input.short_bytes().to_vec();
                if op & 0x4 != 0 && !sent_init {
                    sent_init = true;
                    b = init.clone();
                } else if op & 0x8 != 0 {
                    s.fix_initiation_macs(&mut b, from, with_mac2);
                }
                let _ = s.deliver_to_server(from, &b);
            }
        }
    }
}
