//! Raw datagrams: echo every datagram back to its sender, on every shard.
//!
//! ```text
//! cargo run --example echo                    # self-test: start, echo 1,000 datagrams, print counters, stop
//! cargo run --example echo -- 127.0.0.1:4500  # serve on that address until stdin closes (Ctrl-D)
//! ```
//!
//! A [`Handler`] lives on one shard, built on that shard's thread, so it needs no lock and need
//! not be `Send`. Everything it asks for (here: one send per datagram) is staged and submitted
//! with the rest of the loop turn in one `io_uring_enter`. Every outcome is explicit: a send
//! can be refused (`QueueFull`, `TooLarge`), and the refusal is counted by the shard too.
#![forbid(unsafe_code)]

use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use ringwire::{Ctx, Engine, EngineConfig, Handler, SendOutcome};

/// One shard's echo: counts what it could not send back.
#[derive(Default)]
struct Echo {
    refused: u64,
}

impl Handler for Echo {
    type Message = ();

    fn on_datagram(&mut self, peer: SocketAddr, payload: &[u8], ctx: &mut Ctx<'_, ()>) {
        match ctx.send_to(peer, payload) {
            SendOutcome::Queued => {}
            // Every send slot is in flight, or the payload is larger than the shard sends: the
            // shard counted it as well; the peer sees a lost datagram, as UDP allows.
            _ => self.refused += 1,
        }
    }

    fn counters(&self, out: &mut Vec<(&'static str, u64)>) {
        out.push(("echo_refused", self.refused));
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let serve: Option<SocketAddr> = std::env::args().nth(1).map(|a| a.parse()).transpose()?;
    let bind = serve.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    // Two shards, not pinned (pinning needs the cores to be free; a server would pin).
    let config = EngineConfig::unpinned(bind, 2);
    let engine = Engine::start(&config, |_shard| Echo::default())?;
    println!("echo: listening on {}", engine.local_addr());

    if serve.is_some() {
        println!("echo: serving until stdin closes");
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
    } else {
        self_test(engine.local_addr())?;
    }

    let report = engine.shutdown(Duration::from_secs(2))?;
    for shard in &report.shards {
        println!("{}", shard.stats);
    }
    let total = report.total();
    println!(
        "total: {} datagrams in, {} out",
        total.datagrams_in, total.datagrams_out
    );
    Ok(())
}

/// Sends 1,000 numbered datagrams from 8 sockets (so both shards get some: the kernel spreads
/// source ports over the `SO_REUSEPORT` group) and checks each comes back.
fn self_test(server: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let clients: Vec<UdpSocket> = (0..8)
        .map(|_| UdpSocket::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    let mut echoed = 0u32;
    let deadline = Instant::now() + Duration::from_secs(10);
    for i in 0..1000u32 {
        let client = &clients[i as usize % clients.len()];
        client.set_read_timeout(Some(Duration::from_millis(200)))?;
        let mut buf = [0u8; 16];
        // UDP may lose a datagram even on loopback: resend until it comes back or time is up.
        loop {
            client.send_to(&i.to_be_bytes(), server)?;
            match client.recv_from(&mut buf) {
                Ok((4, _)) if buf[..4] == i.to_be_bytes() => break,
                Ok(_) | Err(_) if Instant::now() < deadline => continue,
                _ => return Err(format!("datagram {i} never came back").into()),
            }
        }
        echoed += 1;
    }
    println!("echo: {echoed} datagrams echoed");
    Ok(())
}
