//! A protocol of your own on raw datagrams, with timers and messages between shards.
//!
//! ```text
//! cargo run --example custom_protocol
//! ```
//!
//! The protocol counts heartbeats node-wide. A client sends `beat` datagrams to any shard (the
//! kernel picks one by its 4-tuple) and asks `total?`; the answer is `total N`, the number of
//! beats the whole node has counted. No shard shares memory with another:
//!
//! - each shard counts its own beats;
//! - every 50 ms a timer on each shard sends its count to shard 0 on the mesh's **control
//!   lane** (small, drained before any data, never behind bulk traffic);
//! - a `total?` that lands on shard k != 0 is handed to shard 0 on the **data lane** with the
//!   client's address; shard 0 answers from its own socket (all shards share the port, so the
//!   client sees the same source address).
//!
//! Every mesh send returns at once with an outcome: sent, or the item handed back because the
//! lane is full or the peer stopped. Nothing blocks, nothing spins.
#![forbid(unsafe_code)]

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use ringwire::mesh::{Lane, MeshSendError};
use ringwire::{Ctx, Engine, EngineConfig, Handler, ShardInfo};

const TICK: Duration = Duration::from_millis(50);

/// What shards tell each other.
enum Msg {
    /// Shard `from` has counted `beats` so far (control lane).
    Count { from: usize, beats: u64 },
    /// A client asked for the total (data lane).
    Query { client: SocketAddr },
}

struct Heartbeats {
    shard: usize,
    /// Beats this shard counted.
    beats: u64,
    /// On shard 0: every shard's latest count.
    counts: Vec<u64>,
    ticking: bool,
    /// Reports and queries the mesh refused (full lane or stopped shard).
    mesh_refused: u64,
}

impl Heartbeats {
    fn new(info: ShardInfo) -> Self {
        Self {
            shard: info.index,
            beats: 0,
            counts: vec![0; info.shards],
            ticking: false,
            mesh_refused: 0,
        }
    }

    fn answer(&self, client: SocketAddr, ctx: &mut Ctx<'_, Msg>) {
        let total: u64 = self.counts.iter().sum();
        let _ = ctx.send_to(client, format!("total {total}").as_bytes());
    }

    fn refused<T>(&mut self, r: Result<(), MeshSendError<T>>) {
        if r.is_err() {
            self.mesh_refused += 1;
        }
    }
}

impl Handler for Heartbeats {
    type Message = Msg;

    fn on_datagram(&mut self, peer: SocketAddr, payload: &[u8], ctx: &mut Ctx<'_, Msg>) {
        match payload {
            b"beat" => self.beats += 1,
            b"total?" if self.shard == 0 => self.answer(peer, ctx),
            b"total?" => {
                let r = ctx.send_to_shard(0, Msg::Query { client: peer });
                self.refused(r);
            }
            // Not our protocol: count it and send nothing back.
            _ => ctx.reject(),
        }
    }

    fn on_message(&mut self, _from: usize, _lane: Lane, msg: Msg, ctx: &mut Ctx<'_, Msg>) {
        match msg {
            Msg::Count { from, beats } => self.counts[from] = beats,
            Msg::Query { client } => self.answer(client, ctx),
        }
    }

    fn on_turn(&mut self, ctx: &mut Ctx<'_, Msg>) {
        // Arm the periodic timer on the first turn.
        if !self.ticking {
            self.ticking = ctx.set_timer_after(TICK, 0).is_ok();
        }
    }

    fn on_timer(&mut self, _token: u64, ctx: &mut Ctx<'_, Msg>) {
        if self.shard == 0 {
            self.counts[0] = self.beats;
        } else {
            let r = ctx.send_control_to_shard(
                0,
                Msg::Count {
                    from: self.shard,
                    beats: self.beats,
                },
            );
            self.refused(r);
        }
        self.ticking = ctx.set_timer_after(TICK, 0).is_ok();
    }

    fn counters(&self, out: &mut Vec<(&'static str, u64)>) {
        out.extend([("beats", self.beats), ("mesh_refused", self.mesh_refused)]);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = EngineConfig::unpinned("127.0.0.1:0".parse()?, 2);
    let engine = Engine::start(&config, Heartbeats::new)?;
    let server = engine.local_addr();
    println!("heartbeats: listening on {server}");

    // 16 clients (16 source ports: the kernel spreads them over both shards), 25 beats each.
    let clients: Vec<UdpSocket> = (0..16)
        .map(|_| UdpSocket::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    for client in &clients {
        client.set_read_timeout(Some(Duration::from_millis(100)))?;
        for _ in 0..25 {
            client.send_to(b"beat", server)?;
        }
    }
    let sent = 16 * 25;

    // Ask until the node-wide total has caught up (UDP on loopback may still drop a beat: then
    // the total stays below what was sent, and we say so).
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = 0;
    while Instant::now() < deadline && last < sent {
        for client in &clients {
            client.send_to(b"total?", server)?;
            let mut buf = [0u8; 64];
            if let Ok((n, _)) = client.recv_from(&mut buf)
                && let Some(t) = std::str::from_utf8(&buf[..n])?.strip_prefix("total ")
            {
                last = last.max(t.parse()?);
            }
        }
    }
    println!("heartbeats: {sent} sent, node-wide total {last}");

    let report = engine.shutdown(Duration::from_secs(2))?;
    for shard in &report.shards {
        let app: Vec<String> = shard.app.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "shard {}: {} datagrams in, {} mesh messages in, {}",
            shard.stats.shard,
            shard.stats.datagrams_in,
            shard.stats.mesh_received,
            app.join(" ")
        );
    }
    Ok(())
}
