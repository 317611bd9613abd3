//! Connection-manager benchmarks (`docs/BENCHMARKS.md`, "Connection manager").
//!
//! - `ringwire-bench trim-turns`: the session layer's part of each loop turn while the
//!   manager trims a shard holding N sessions (N = 1k, 10k, 100k) from above its high
//!   watermark to its low one: per turn, `handle_timeout` (one trim step and its closes) plus
//!   draining the Closes and the `Disconnected` events, as a host does. Sans-IO (plaintext
//!   sessions opened in memory), so it measures the trimming work itself, not io_uring.
//! - `ringwire-bench flood`: a session flood against a running `ringwire serve` from many
//!   loopback source addresses (one socket and one endpoint per address, many sessions per
//!   socket, as the attack of issue 10), sampling the server's RSS throughout.
#![allow(clippy::cast_precision_loss)]

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use ringwire_shard::session::admission::{AdmissionConfig, BudgetConfig, RateLimit};
use ringwire_shard::session::manager::ManagerConfig;
use ringwire_shard::session::wire::{self, Body, MsgType};
use ringwire_shard::session::{
    CloseReason, ConnIdGen, ConnectError, Endpoint, EndpointConfig, Event, Handled, Keypair,
    PublicKey, SessionClock, Timestamp, cookie, crypto, handshake,
};

use crate::sys::cpu_time::involuntary_switches;

/// Arguments of `ringwire-bench trim-turns`.
#[derive(clap::Args, Debug, Clone)]
pub struct TrimArgs {
    /// Session counts per shard.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000, 10_000, 100_000])]
    pub sessions: Vec<usize>,
}

/// Runs `trim-turns`: one line per session count.
pub fn trim(args: TrimArgs) -> crate::CmdResult {
    println!("sessions  trimmed  turns  longest_turn_ms  total_ms  turns_switched_out  open_s");
    for n in args.sessions {
        let r = trim_once(n)?;
        println!(
            "{n:>8}  {:>7}  {:>5}  {:>15.3}  {:>8.1}  {:>18}  {:>6.1}",
            r.trimmed,
            r.turns,
            r.longest.as_secs_f64() * 1e3,
            r.total.as_secs_f64() * 1e3,
            r.switched,
            r.open.as_secs_f64(),
        );
    }
    Ok(())
}

struct TrimRun {
    trimmed: usize,
    turns: usize,
    longest: Duration,
    total: Duration,
    switched: usize,
    open: Duration,
}

fn trim_once(n: usize) -> Result<TrimRun, Box<dyn std::error::Error + Send + Sync>> {
    let mut cfg = EndpointConfig::plaintext([1; 32]);
    cfg.cookie_replies_per_second = u32::MAX;
    cfg.keepalive_interval = None;
    let mut adm = AdmissionConfig::default();
    adm.max_sessions_shard = n + 1;
    adm.max_sessions_node = n + 1;
    adm.prefix_table_capacity = n + 2;
    adm.max_pending_handshakes = n + 1;
    adm.new_sessions_per_prefix = RateLimit::per_second(1_000_000_000, 1_000_000);
    adm.memory = {
        let mut b = BudgetConfig::default();
        b.limit = 4 << 30;
        b.session_limit = 3 << 30;
        b.shed_above = 3 << 30;
        b
    };
    // As the measurement: the shard crosses its high watermark with its last
    // session and trims a sixth of them.
    let mut mgr = ManagerConfig::default();
    mgr.high_watermark = n - 1;
    mgr.low_watermark = n - n / 6;
    mgr.grace_period = Duration::ZERO;
    cfg.admission = Some(adm);
    cfg.manager = Some(mgr);
    let mut ep = Endpoint::new(cfg, 0, 1, ConnIdGen::seed_from_u64(7), Timestamp::ZERO)?;
    let mut buf = vec![0u8; ep.config().max_datagram()];
    let now = Timestamp::from_millis(1);
    let opened = Instant::now();
    for i in 0..n {
        let b = (i as u32).to_be_bytes();
        let from = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, b[1], b[2], b[3])), 4000);
        open_plain(&mut ep, now, from, i as u64 + 1, &mut buf)?;
    }
    let open = opened.elapsed();
    while ep.poll_event().is_some() {}
    let before = ep.session_count();
    let (mut turns, mut total, mut longest, mut switched) = (0, Duration::ZERO, Duration::ZERO, 0);
    while ep.poll_timeout().is_some_and(|t| t <= now) && turns < 1_000_000 {
        let inv = involuntary_switches();
        let t = Instant::now();
        ep.handle_timeout(now);
        while ep.poll_transmit(now, &mut buf).is_some() {}
        while ep.poll_event().is_some() {}
        let dt = t.elapsed();
        turns += 1;
        total += dt;
        if involuntary_switches() == inv {
            longest = longest.max(dt);
        } else {
            switched += 1;
        }
    }
    Ok(TrimRun {
        trimmed: before - ep.session_count(),
        turns,
        longest,
        total,
        switched,
        open,
    })
}

/// A plaintext-mode client's handshake against `ep`, in memory: Initiation, CookieReply,
/// Initiation with mac2, Response, then the confirming Ping.
fn open_plain(
    ep: &mut Endpoint,
    now: Timestamp,
    from: SocketAddr,
    cid: u64,
    buf: &mut [u8],
) -> Result<(), String> {
    let mut init = [0u8; wire::INITIATION_LEN];
    let n = handshake::write_plain_initiation(cid, 0, None, &mut init);
    let _ = ep.handle_datagram(now, from, &init[..n]);
    let t = ep.poll_transmit(now, buf).ok_or("no cookie reply")?;
    let d = wire::parse(&buf[..t.len]).map_err(|e| format!("{e:?}"))?;
    let Body::CookieReply { nonce, sealed } = d.body else {
        return Err(format!("expected a CookieReply: {d:?}"));
    };
    let mut mac1 = [0u8; 16];
    mac1.copy_from_slice(&init[wire::field::INIT_PLAIN_MAC1]);
    let c = crypto::open_cookie(&cookie::cookie_seal_key(&[0; 32]), &nonce, &mac1, &sealed)
        .ok_or("bad cookie")?;
    let n = handshake::write_plain_initiation(cid, 1, Some(c), &mut init);
    if ep.handle_datagram(now, from, &init[..n]) != Handled::Consumed {
        return Err("initiation refused".into());
    }
    let t = ep.poll_transmit(now, buf).ok_or("no response")?;
    let d = wire::parse(&buf[..t.len]).map_err(|e| format!("{e:?}"))?;
    let Body::Response { plain_conn_id, .. } = d.body else {
        return Err(format!("expected a Response: {d:?}"));
    };
    let mut ping = vec![0u8; wire::transport_len(wire::PING_BODY, false)];
    wire::write_header(&mut ping, MsgType::Ping, 0, plain_conn_id, 0);
    let _ = ep.handle_datagram(now, from, &ping);
    while ep.poll_transmit(now, buf).is_some() {}
    Ok(())
}

/// Arguments of `ringwire-bench flood`.
#[derive(clap::Args, Debug, Clone)]
pub struct FloodArgs {
    /// The server.
    #[arg(long)]
    pub target: SocketAddr,
    /// The server's static public key (base64, as `ringwire serve` prints it).
    #[arg(long)]
    pub server_key: PublicKey,
    /// Source addresses: 127.0.<k / 250 + 1>.<k % 250 + 1> for k below this.
    #[arg(long, default_value_t = 200)]
    pub addresses: usize,
    /// Sessions each address tries.
    #[arg(long, default_value_t = 100)]
    pub sessions: usize,
    /// The server's process ID, to sample its RSS (`VmRSS`) every 50 ms.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Give up on attempts still unresolved after this many seconds.
    #[arg(long, default_value_t = 30)]
    pub max_s: u64,
    /// Each client handshake's timeout, in seconds.
    #[arg(long, default_value_t = 30)]
    pub handshake_timeout_s: u64,
}

/// Runs `flood`: prints the outcome of every attempt and the server's RSS before, at its
/// peak and after.
pub fn flood(args: FloodArgs) -> crate::CmdResult {
    let clock = SessionClock::start();
    let identity = Keypair::from_seed_bytes([0x61; 32]);
    let mut peers = Vec::with_capacity(args.addresses);
    for k in 0..args.addresses {
        let ip = Ipv4Addr::new(127, 0, (k / 250 + 1) as u8, (k % 250 + 1) as u8);
        let socket = UdpSocket::bind(SocketAddr::new(IpAddr::V4(ip), 0))?;
        socket.set_nonblocking(true)?;
        let mut cfg = EndpointConfig::new([3; 32], identity.clone());
        cfg.accept_incoming = false;
        cfg.keepalive_interval = None;
        cfg.idle_timeout = Duration::from_secs(3600);
        // A starved client (a busy machine) must not give up on handshakes the server is
        // still working through.
        cfg.handshake_timeout = Duration::from_secs(args.handshake_timeout_s);
        cfg.max_sessions = args.sessions + 1;
        cfg.replay_table_capacity = 64;
        cfg.unix_time_at_origin = clock.unix_time_at_origin();
        let ep = Endpoint::new(
            cfg,
            0,
            1,
            ConnIdGen::seed_from_u64(k as u64 + 1),
            Timestamp::ZERO,
        )?;
        peers.push((socket, ep, 0usize));
    }
    let rss = |pid: Option<u32>| pid.and_then(rss_kib);
    let rss_before = rss(args.server_pid);
    let mut rss_peak = rss_before.unwrap_or(0);
    let mut last_sample = Instant::now();
    let total = args.addresses * args.sessions;
    let (mut connected, mut refused, mut timed_out, mut other) = (0, 0, 0, 0);
    let mut buf = vec![0u8; 2048];
    let mut rx = vec![0u8; 2048];
    let begun = Instant::now();
    while connected + refused + timed_out + other < total
        && begun.elapsed() < Duration::from_secs(args.max_s)
    {
        let mut read = 0;
        for (socket, ep, started) in &mut peers {
            let now = clock.stamp(Instant::now());
            for _ in 0..8 {
                if *started == args.sessions {
                    break;
                }
                match ep.connect(now, args.target, Some(args.server_key)) {
                    Ok(_) => *started += 1,
                    Err(ConnectError::ControlQueueFull) => break,
                    Err(e) => return Err(e.into()),
                }
            }
            if ep.poll_timeout().is_some_and(|t| t <= now) {
                ep.handle_timeout(now);
            }
            while let Some(t) = ep.poll_transmit(now, &mut buf) {
                let _ = socket.send_to(&buf[..t.len], t.dst);
            }
            loop {
                match socket.recv_from(&mut rx) {
                    Ok((n, from)) => {
                        read += 1;
                        let _ = ep.handle_datagram(clock.stamp(Instant::now()), from, &rx[..n]);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e.into()),
                }
            }
            while let Some(t) = ep.poll_transmit(now, &mut buf) {
                let _ = socket.send_to(&buf[..t.len], t.dst);
            }
            while let Some(e) = ep.poll_event() {
                match e {
                    Event::Connected { .. } => connected += 1,
                    Event::Disconnected {
                        reason: CloseReason::Refused,
                        ..
                    } => refused += 1,
                    Event::Disconnected {
                        reason: CloseReason::HandshakeTimeout,
                        ..
                    } => timed_out += 1,
                    Event::Disconnected { .. } => other += 1,
                    Event::Message { .. } => {}
                }
            }
        }
        if last_sample.elapsed() >= Duration::from_millis(50) {
            last_sample = Instant::now();
            rss_peak = rss_peak.max(rss(args.server_pid).unwrap_or(0));
        }
        if read == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let rss_after = rss(args.server_pid);
    rss_peak = rss_peak.max(rss_after.unwrap_or(0));
    println!(
        "flood: {} addresses x {} sessions = {total} attempts in {:.1} s: {connected} connected, \
         {refused} refused, {timed_out} timed out, {other} closed otherwise, {} unresolved",
        args.addresses,
        args.sessions,
        begun.elapsed().as_secs_f64(),
        total - connected - refused - timed_out - other,
    );
    if let Some(before) = rss_before {
        println!(
            "server rss: before {before} KiB, peak {rss_peak} KiB, after {} KiB",
            rss_after.unwrap_or(0)
        );
    }
    Ok(())
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}
