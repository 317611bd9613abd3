//! `ringwire-bench quic-load`: the QUIC load generator, on the `quinn` crate (an independent
//! QUIC implementation) and a tokio runtime on one thread. Closed loop: each connection keeps
//! `--window` requests outstanding (DATAGRAM frames, or request/response streams) and sends the
//! next when one comes back; latency into an HDR histogram. With `--rebind-ms` every
//! connection's client moves to a new UDP port that often (a NAT rebinding), and connections
//! that die are counted.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;

use crate::sys::affinity;

/// What each request is.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuicMode {
    /// One DATAGRAM frame, echoed.
    Datagram,
    /// A new bidirectional stream: `--size` bytes written and finished, all echoed back.
    Stream,
    /// A new connection per request: handshake, one stream echo, close.
    Handshake,
}

/// `ringwire-bench quic-load`.
#[derive(clap::Args, Debug)]
pub struct QuicLoadArgs {
    /// The server.
    #[arg(long)]
    pub server: SocketAddr,
    /// Connections, each from its own UDP socket.
    #[arg(long, default_value_t = 8)]
    pub conns: usize,
    /// Requests outstanding per connection.
    #[arg(long, default_value_t = 8)]
    pub window: usize,
    /// Request size, bytes.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Request kind.
    #[arg(long, value_enum, default_value = "datagram")]
    pub mode: QuicMode,
    /// How long to measure, seconds (after every connection is up).
    #[arg(long, default_value = "5", value_parser = crate::args::parse_secs)]
    pub duration: f64,
    /// Move every connection's client to a new UDP port this often, milliseconds.
    #[arg(long)]
    pub rebind_ms: Option<u64>,
    /// Core to pin the client thread to.
    #[arg(long)]
    pub core: Option<usize>,
}

/// A DATAGRAM frame not answered for this long is taken as lost and its slot in the window
/// is refilled.
const LOSS: Duration = Duration::from_millis(200);

#[derive(Default)]
struct Tally {
    responses: u64,
    lost: u64,
    conns_lost: u64,
    rebinds: u64,
}

/// Runs the load and prints one line of results (and a JSON object).
pub fn run(args: QuicLoadArgs) -> crate::CmdResult {
    if let Some(core) = args.core {
        affinity::pin_or_warn(core);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, drive(args))
}

async fn drive(args: QuicLoadArgs) -> crate::CmdResult {
    let client = super::tls::client_config()?;
    let hist = Rc::new(RefCell::new(Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));
    let tally = Rc::new(RefCell::new(Tally::default()));
    let payload = Bytes::from(vec![0x5au8; args.size.max(8)]);
    let mut conns = Vec::new();
    if args.mode != QuicMode::Handshake {
        for _ in 0..args.conns {
            let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
            let conn = endpoint
                .connect_with(client.clone(), args.server, "localhost")?
                .await?;
            conns.push((endpoint, conn));
        }
    }
    // Datagrams each way from the handshakes on, to subtract them from the measured phase's.
    let before = udp_counts(&conns);
    let cpu_before = thread_cpu();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(args.duration);
    let mut tasks = Vec::new();
    if args.mode == QuicMode::Handshake {
        for _ in 0..args.conns * args.window {
            let (client, payload, hist, tally) =
                (client.clone(), payload.clone(), hist.clone(), tally.clone());
            let server = args.server;
            tasks.push(tokio::task::spawn_local(async move {
                let endpoint =
                    match quinn::Endpoint::client("127.0.0.1:0".parse().unwrap_or(server)) {
                        Ok(e) => e,
                        Err(_) => return,
                    };
                while Instant::now() < end {
                    let t = Instant::now();
                    let ok = async {
                        let conn = endpoint
                            .connect_with(client.clone(), server, "localhost")
                            .ok()?
                            .await
                            .ok()?;
                        let back = stream_echo(&conn, &payload).await;
                        conn.close(0u32.into(), b"");
                        back
                    }
                    .await;
                    match ok {
                        Some(()) => {
                            let _ = hist.borrow_mut().record(t.elapsed().as_micros() as u64);
                            tally.borrow_mut().responses += 1;
                        }
                        None => tally.borrow_mut().conns_lost += 1,
                    }
                }
            }));
        }
    }
    for (endpoint, conn) in &conns {
        if let Some(ms) = args.rebind_ms {
            let (endpoint, tally) = (endpoint.clone(), tally.clone());
            tasks.push(tokio::task::spawn_local(async move {
                let mut every = tokio::time::interval(Duration::from_millis(ms.max(1)));
                every.tick().await;
                while Instant::now() < end {
                    every.tick().await;
                    if let Ok(s) = std::net::UdpSocket::bind("127.0.0.1:0")
                        && endpoint.rebind(s).is_ok()
                    {
                        tally.borrow_mut().rebinds += 1;
                    }
                }
            }));
        }
        match args.mode {
            QuicMode::Datagram => {
                let (conn, payload, hist, tally) =
                    (conn.clone(), payload.clone(), hist.clone(), tally.clone());
                let window = args.window;
                tasks.push(tokio::task::spawn_local(async move {
                    datagram_loop(conn, payload, window, end, start, hist, tally).await;
                }));
            }
            QuicMode::Stream => {
                for _ in 0..args.window {
                    let (conn, payload, hist, tally) =
                        (conn.clone(), payload.clone(), hist.clone(), tally.clone());
                    tasks.push(tokio::task::spawn_local(async move {
                        while Instant::now() < end {
                            let t = Instant::now();
                            if stream_echo(&conn, &payload).await.is_none() {
                                tally.borrow_mut().conns_lost += 1;
                                return;
                            }
                            let _ = hist.borrow_mut().record(t.elapsed().as_micros() as u64);
                            tally.borrow_mut().responses += 1;
                        }
                    }));
                }
            }
            QuicMode::Handshake => {}
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    let secs = start.elapsed().as_secs_f64();
    // The client's own CPU time in the measured phase: near `secs` means the one client thread,
    // not the server, bounds the closed-loop rate.
    let client_cpu = match (cpu_before, thread_cpu()) {
        (Some(a), Some(b)) => format!("{:.2}", b.saturating_sub(a).as_secs_f64()),
        _ => "-".to_owned(),
    };
    let h = hist.borrow();
    let t = tally.borrow();
    // A connection counted lost in the datagram loop is also one whose close reason is set.
    let dead = conns
        .iter()
        .filter(|(_, c)| c.close_reason().is_some())
        .count();
    let after = udp_counts(&conns);
    // Client datagrams per response, each way: how many requests share a packet (the same
    // for every server, so a difference is the server's batching). Only with long-lived
    // connections.
    let per = |n: u64| n as f64 / (t.responses.max(1) as f64);
    println!(
        "quic-load: mode={:?} conns={} window={} size={} secs={secs:.2} responses={} rate={:.0}/s \
         p50_us={} p99_us={} lost_requests={} conns_lost={} rebinds={} \
         client_tx_per_response={:.3} client_rx_per_response={:.3} client_cpu_s={client_cpu}",
        args.mode,
        args.conns,
        args.window,
        args.size,
        t.responses,
        t.responses as f64 / secs,
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        t.lost,
        t.conns_lost.max(dead as u64),
        t.rebinds,
        per(after.0 - before.0),
        per(after.1 - before.1),
    );
    for (endpoint, conn) in &conns {
        conn.close(0u32.into(), b"");
        endpoint.close(0u32.into(), b"");
    }
    Ok(())
}

/// This thread's CPU time so far (the runtime and every connection run on it), from
/// `/proc/thread-self/schedstat` (nanoseconds on the CPU); `None` where the kernel has none.
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// UDP datagrams sent and received by every connection so far.
fn udp_counts(conns: &[(quinn::Endpoint, quinn::Connection)]) -> (u64, u64) {
    conns.iter().fold((0, 0), |(tx, rx), (_, c)| {
        let s = c.stats();
        (tx + s.udp_tx.datagrams, rx + s.udp_rx.datagrams)
    })
}

/// One request/response over a new bidirectional stream; `None` if the connection failed.
async fn stream_echo(conn: &quinn::Connection, payload: &Bytes) -> Option<()> {
    let (mut send, mut recv) = conn.open_bi().await.ok()?;
    send.write_all(payload).await.ok()?;
    send.finish().ok()?;
    let back = recv.read_to_end(payload.len() + 1).await.ok()?;
    (back.len() == payload.len()).then_some(())
}

/// Keeps `window` DATAGRAM frames outstanding on `conn`, each stamped with its send time.
async fn datagram_loop(
    conn: quinn::Connection,
    payload: Bytes,
    window: usize,
    end: Instant,
    start: Instant,
    hist: Rc<RefCell<Histogram<u64>>>,
    tally: Rc<RefCell<Tally>>,
) {
    let stamped = |now: Instant| {
        let mut p = payload.to_vec();
        p[..8].copy_from_slice(&(now.duration_since(start).as_nanos() as u64).to_be_bytes());
        Bytes::from(p)
    };
    let mut outstanding = 0;
    while Instant::now() < end {
        while outstanding < window {
            if conn.send_datagram(stamped(Instant::now())).is_err() {
                tally.borrow_mut().conns_lost += 1;
                return;
            }
            outstanding += 1;
        }
        match tokio::time::timeout(LOSS, conn.read_datagram()).await {
            Ok(Ok(d)) if d.len() >= 8 => {
                let mut sent = [0u8; 8];
                sent.copy_from_slice(&d[..8]);
                let sent = start + Duration::from_nanos(u64::from_be_bytes(sent));
                let _ = hist
                    .borrow_mut()
                    .record(Instant::now().duration_since(sent).as_micros().max(1) as u64);
                tally.borrow_mut().responses += 1;
                outstanding -= 1;
            }
            Ok(Ok(_)) => outstanding -= 1,
            Ok(Err(_)) => {
                tally.borrow_mut().conns_lost += 1;
                return;
            }
            Err(_) => {
                tally.borrow_mut().lost += outstanding as u64;
                outstanding = 0;
            }
        }
    }
}
