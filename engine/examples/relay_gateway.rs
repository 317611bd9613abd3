//! Sessions: a small gateway that forwards text messages between its clients, across shards,
//! and closes the peers that ask to leave or misbehave.
//!
//! ```text
//! cargo run --example relay_gateway
//! ```
//!
//! The server side is a [`SessionApp`]: one instance per shard, told about sessions that
//! connect, the messages they send, and how they ended. A session lives on exactly one shard
//! (the one its connection ID names); [`Sessions::send`] reaches a session on another shard by
//! handing the message to that shard over the mesh, and says so in its outcome.
//!
//! The wire protocol between client and gateway (inside session messages, UTF-8):
//! - gateway -> client, once: `id <hex>`: the client's ID at the gateway;
//! - client -> gateway: `to <hex> <text>`: deliver `<text>` to that client as `from <hex> <text>`;
//! - client -> gateway: `bye`: the gateway closes the session (`Close(Normal)`);
//! - anything else: the gateway closes the session with application code 400.
//!
//! The client side here uses the bundled plain-socket `ClientPool` (one socket per session).
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ringwire::session::client::ClientPool;
use ringwire::session::{
    CloseReason, Closer, ConnId, EndpointConfig, Keypair, Placement, SendOutcome, SessionApp,
    SessionClock, SessionHost, SessionSend, Sessions, random_key,
};
use ringwire::{Engine, EngineConfig};

/// Application close code for a message the gateway does not understand.
const BAD_REQUEST: u16 = 400;

/// One shard's gateway.
#[derive(Default)]
struct Gateway {
    forwarded: u64,
    unreachable: u64,
    closed_bad: u64,
}

impl SessionApp for Gateway {
    fn on_connected(&mut self, conn: ConnId, peer: SocketAddr, s: &mut Sessions<'_, '_>) {
        println!(
            "gateway shard {}: {peer} connected as {:x}",
            s.shard_index(),
            conn.0
        );
        let _ = s.send(conn, format!("id {:x}", conn.0).as_bytes());
    }

    fn on_message(&mut self, conn: ConnId, bytes: &[u8], s: &mut Sessions<'_, '_>) {
        let text = String::from_utf8_lossy(bytes);
        if text == "bye" {
            s.close(conn, CloseReason::Normal);
            return;
        }
        let Some((dst, body)) = text
            .strip_prefix("to ")
            .and_then(|rest| rest.split_once(' '))
            .and_then(|(dst, body)| Some((u64::from_str_radix(dst, 16).ok()?, body)))
        else {
            self.closed_bad += 1;
            s.close(conn, CloseReason::Application(BAD_REQUEST));
            return;
        };
        let out = format!("from {:x} {body}", conn.0);
        match s.send(ConnId(dst), out.as_bytes()) {
            // On this shard, or handed to the shard that owns `dst`.
            SessionSend::SentNow | SessionSend::Queued | SessionSend::HandedToShard(_) => {
                self.forwarded += 1;
            }
            // No such session here, or its queue or its shard's lane is full.
            _ => {
                self.unreachable += 1;
                let _ = s.send(conn, format!("unreachable {dst:x}").as_bytes());
            }
        }
    }

    fn on_disconnected(
        &mut self,
        conn: ConnId,
        reason: CloseReason,
        by: Closer,
        s: &mut Sessions<'_, '_>,
    ) {
        println!(
            "gateway shard {}: {:x} disconnected ({reason:?}, by {by:?})",
            s.shard_index(),
            conn.0
        );
    }

    fn counters(&self, out: &mut Vec<(&'static str, u64)>) {
        out.extend([
            ("forwarded", self.forwarded),
            ("unreachable", self.unreachable),
            ("closed_bad_request", self.closed_bad),
        ]);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Every shard shares the cookie key and the clock (a cookie issued by one shard is checked
    // by another); each gets its own connection-ID seed.
    let cookie_key = random_key()?;
    // The gateway's static identity; clients are configured with its public key.
    let identity = Keypair::generate()?;
    let server_key = identity.public;
    let mut config = EngineConfig::unpinned("127.0.0.1:0".parse()?, 2);
    config.steering = true; // the kernel delivers each session's datagrams to its shard
    // One clock for every shard: a cookie issued on one is checked on another.
    let clock = SessionClock::start();
    let max_datagram = config.shard.max_datagram;
    let engine = Engine::try_start(&config, move |shard| {
        let place = Placement::new(clock, shard.index, shard.shards, max_datagram);
        let seed = random_key()?;
        SessionHost::new(
            EndpointConfig::new(cookie_key, identity.clone()),
            place,
            seed,
            Gateway::default(),
        )
        .map_err(std::io::Error::other)
    })?;
    let server = engine.local_addr();
    println!("gateway: listening on {server}");

    let mut pool = ClientPool::new(EndpointConfig::new(random_key()?, Keypair::generate()?), 7)?;
    let names = ["alice", "bob", "carol", "mallory"];
    let local: SocketAddr = "127.0.0.1:0".parse()?;
    let conns: Vec<ConnId> = names
        .iter()
        .map(|_| pool.connect(local, server, Some(server_key)))
        .collect::<Result<_, _>>()?;
    let mut inbox = Inbox::default();

    // Each client learns its ID at the gateway.
    inbox.pump(&mut pool, |i| {
        conns.iter().all(|c| i.text(*c, "id ").is_some())
    })?;
    let id = |c: ConnId, inbox: &Inbox| inbox.text(c, "id ").map(|t| t[3..].to_string());
    let (alice, bob, carol, mallory) = (conns[0], conns[1], conns[2], conns[3]);
    let bob_id = id(bob, &inbox).ok_or("bob has no id")?;
    let alice_id = id(alice, &inbox).ok_or("alice has no id")?;

    // alice -> bob and bob -> alice (possibly across shards), carol leaves, mallory misbehaves.
    for (conn, text) in [
        (alice, format!("to {bob_id} hello bob")),
        (bob, format!("to {alice_id} hi alice")),
        (carol, "bye".to_string()),
        (mallory, "GET / HTTP/1.1".to_string()),
    ] {
        // Full or UnknownConnection: the message was not queued.
        match pool.send(conn, text.as_bytes())? {
            SendOutcome::Queued => {}
            refused => return Err(format!("{conn:?}: {refused:?}").into()),
        }
    }
    inbox.pump(&mut pool, |i| {
        i.text(bob, "from ").is_some()
            && i.text(alice, "from ").is_some()
            && i.closed.contains_key(&carol)
            && i.closed.contains_key(&mallory)
    })?;
    for (name, conn) in names.iter().zip(&conns) {
        let got = inbox
            .messages
            .get(conn)
            .map(Vec::as_slice)
            .unwrap_or_default();
        println!(
            "{name}: received {got:?}, closed: {:?}",
            inbox.closed.get(conn)
        );
    }

    let report = engine.shutdown(Duration::from_secs(2))?;
    for shard in &report.shards {
        let app: Vec<String> = shard.app.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("shard {}: {}", shard.stats.shard, app.join(" "));
    }
    Ok(())
}

/// What the clients received, by session.
#[derive(Default)]
struct Inbox {
    messages: HashMap<ConnId, Vec<String>>,
    closed: HashMap<ConnId, CloseReason>,
}

impl Inbox {
    fn text(&self, conn: ConnId, prefix: &str) -> Option<&str> {
        self.messages
            .get(&conn)?
            .iter()
            .find(|m| m.starts_with(prefix))
            .map(String::as_str)
    }

    /// Polls the clients until `done` holds (or 10 s pass: then an error).
    fn pump(
        &mut self,
        pool: &mut ClientPool,
        done: impl Fn(&Inbox) -> bool,
    ) -> Result<(), Box<dyn std::error::Error>> {
        use ringwire::session::Event;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut events = Vec::new();
        while !done(self) {
            if Instant::now() > deadline {
                return Err("the gateway did not answer within 10 s".into());
            }
            if pool.poll(&mut events)? == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            for event in events.drain(..) {
                match event {
                    Event::Message { conn, bytes } => self
                        .messages
                        .entry(conn)
                        .or_default()
                        .push(String::from_utf8_lossy(&bytes).into_owned()),
                    Event::Disconnected { conn, reason, .. } => {
                        self.closed.insert(conn, reason);
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}
