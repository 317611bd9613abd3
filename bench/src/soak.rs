//! `ringwire-bench soak`: the client side of `scripts/soak.sh`. Sessions to a `session-echo`
//! server in overlapping generations (each lives `--lifetime` seconds, then closes and its
//! sockets are freed, and a new one connects: session churn), messages at a fixed rate on the
//! connected sessions, each datagram of the pool lost with `--loss`, and garbage datagrams
//! (random bytes, some shaped like ringwire headers) at `--garbage` of the message rate from a
//! socket of their own. Every echo is checked: it must be a message this run sent, seen once.
//! At the end, a JSON summary on standard output; progress on standard error every 10 s.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use clap::Args;
use ringwire_shard::session::client::{ClientError, ClientPool};
use ringwire_shard::session::{CloseReason, ConnId, EndpointConfig, Event, Keypair, PublicKey};

/// `ringwire-bench soak` arguments.
#[derive(Args, Debug)]
pub struct SoakArgs {
    /// The server (`ringwire serve --app session-echo`).
    #[arg(long)]
    pub server: SocketAddr,
    /// The server's static public key (base64, as `ringwire serve` prints it).
    #[arg(long)]
    pub server_key: PublicKey,
    /// How long to run, in seconds.
    #[arg(long, value_parser = crate::args::parse_secs)]
    pub seconds: f64,
    /// Sessions open at once (split over the generations).
    #[arg(long, default_value_t = 64)]
    pub sessions: usize,
    /// Generations of sessions; one is replaced every `lifetime / generations`.
    #[arg(long, default_value_t = 8)]
    pub generations: usize,
    /// How long a generation lives, in seconds.
    #[arg(long, default_value_t = 16.0, value_parser = crate::args::parse_secs)]
    pub lifetime: f64,
    /// Messages per second, over all sessions.
    #[arg(long, default_value_t = 1000.0, value_parser = crate::args::parse_rate)]
    pub rate: f64,
    /// Probability that a datagram the pools send or receive is lost.
    #[arg(long, default_value_t = 0.01)]
    pub loss: f64,
    /// Garbage datagrams per message sent.
    #[arg(long, default_value_t = 0.01)]
    pub garbage: f64,
    /// Seed of loss, garbage and identities.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// One generation: a pool and its sessions.
struct Generation {
    pool: ClientPool,
    conns: Vec<ConnId>,
    ready: Vec<ConnId>,
    born: Instant,
}

/// What the run saw (the JSON summary).
#[derive(Debug, Default, serde::Serialize)]
struct Summary {
    seconds: f64,
    sent: u64,
    send_refused: u64,
    echoed: u64,
    duplicates: u64,
    unknown: u64,
    lost_by_tool: u64,
    garbage_sent: u64,
    connects: u64,
    connect_errors: u64,
    connected: u64,
    closed_by_us: u64,
    disconnected: HashMap<String, u64>,
    generations: u64,
}

/// SplitMix64 for loss seeds and garbage.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Runs the soak client.
pub fn run(args: SoakArgs) -> Result<(), ClientError> {
    let mut rng = Rng(args.seed);
    let generations = args.generations.max(1);
    let per_generation = args.sessions.div_ceil(generations).max(1);
    let lifetime = Duration::from_secs_f64(args.lifetime.max(0.1));
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(args.seconds);
    let mut s = Summary::default();
    let mut gens: Vec<Generation> = Vec::new();
    let new_generation = |s: &mut Summary, rng: &mut Rng, age: Duration| {
        let key = Keypair::from_seed_bytes(
            rng.next()
                .to_le_bytes()
                .repeat(4)
                .try_into()
                .unwrap_or([7; 32]),
        );
        let mut pool = ClientPool::new(EndpointConfig::new([0; 32], key), rng.next())?;
        pool.set_loss(args.loss, rng.next());
        let mut conns = Vec::new();
        for _ in 0..per_generation {
            s.connects += 1;
            match pool.connect(
                "127.0.0.1:0".parse().expect("an address"),
                args.server,
                Some(args.server_key),
            ) {
                Ok(c) => conns.push(c),
                Err(_) => s.connect_errors += 1,
            }
        }
        s.generations += 1;
        Ok::<_, ClientError>(Generation {
            pool,
            conns,
            ready: Vec::new(),
            born: Instant::now().checked_sub(age).unwrap_or_else(Instant::now),
        })
    };
    for i in 0..generations {
        // Staggered ages, so that one generation is replaced at a time.
        let age = lifetime.mul_f64(i as f64 / generations as f64);
        gens.push(new_generation(&mut s, &mut rng, age)?);
    }
    let garbage = UdpSocket::bind("127.0.0.1:0")?;
    garbage.set_nonblocking(true)?;
    // Message IDs seen, one bit each.
    let mut seen: Vec<u64> = Vec::new();
    let mut events = Vec::new();
    let mut next_id: u64 = 0;
    let mut credit = 0.0f64;
    let mut last = Instant::now();
    let mut next_progress = start + Duration::from_secs(10);
    let mut rr = 0usize;
    while Instant::now() < end {
        let now = Instant::now();
        credit = (credit + now.duration_since(last).as_secs_f64() * args.rate).min(args.rate);
        last = now;
        // Churn: replace generations past their lifetime.
        for g in &mut gens {
            if now.duration_since(g.born) >= lifetime {
                for &c in &g.conns {
                    s.closed_by_us += 1;
                    let _ = g.pool.close(c, CloseReason::Normal);
                }
                s.lost_by_tool += g.pool.lost();
                *g = new_generation(&mut s, &mut rng, Duration::ZERO)?;
            }
        }
        // Messages, round-robin over ready sessions.
        while credit >= 1.0 {
            credit -= 1.0;
            let n = gens.len();
            let gen_ = &mut gens[rr % n];
            rr = rr.wrapping_add(1);
            if gen_.ready.is_empty() {
                continue;
            }
            let conn = gen_.ready[(rr / n) % gen_.ready.len()];
            let mut payload = next_id.to_be_bytes().to_vec();
            payload.resize(32, 0xa5);
            match gen_.pool.send(conn, &payload)? {
                ringwire_shard::session::SendOutcome::Queued => {
                    s.sent += 1;
                    next_id += 1;
                }
                _ => s.send_refused += 1,
            }
            if (rng.next() as f64 / u64::MAX as f64) < args.garbage {
                let len = 1 + (rng.next() % 200) as usize;
                let mut b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                if rng.next().is_multiple_of(2) {
                    // Shaped like a ringwire datagram: version 2, a known type.
                    b[0] = 0x20 | (1 + (rng.next() % 8) as u8);
                }
                if garbage.send_to(&b, args.server).is_ok() {
                    s.garbage_sent += 1;
                }
            }
        }
        for g in &mut gens {
            events.clear();
            g.pool.poll(&mut events)?;
            for e in events.drain(..) {
                match e {
                    Event::Connected { conn, .. } => {
                        s.connected += 1;
                        g.ready.push(conn);
                    }
                    Event::Message { bytes, .. } => {
                        let Some(id) = bytes
                            .get(..8)
                            .map(|b| u64::from_be_bytes(b.try_into().unwrap_or([0; 8])))
                        else {
                            s.unknown += 1;
                            continue;
                        };
                        if id >= next_id || bytes.len() != 32 {
                            s.unknown += 1;
                            continue;
                        }
                        let (word, bit) = ((id / 64) as usize, id % 64);
                        if seen.len() <= word {
                            seen.resize(word + 1, 0);
                        }
                        if seen[word] & (1 << bit) != 0 {
                            s.duplicates += 1;
                        } else {
                            seen[word] |= 1 << bit;
                            s.echoed += 1;
                        }
                    }
                    Event::Disconnected { conn, reason, .. } => {
                        g.ready.retain(|c| *c != conn);
                        *s.disconnected.entry(format!("{reason:?}")).or_default() += 1;
                    }
                }
            }
        }
        if now >= next_progress {
            next_progress += Duration::from_secs(10);
            let ready: usize = gens.iter().map(|g| g.ready.len()).sum();
            eprintln!(
                "soak client: {:.0}s sent {} echoed {} ready {} generations {} garbage {}",
                start.elapsed().as_secs_f64(),
                s.sent,
                s.echoed,
                ready,
                s.generations,
                s.garbage_sent
            );
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    for g in &mut gens {
        for &c in &g.conns {
            s.closed_by_us += 1;
            let _ = g.pool.close(c, CloseReason::Normal);
        }
        s.lost_by_tool += g.pool.lost();
    }
    s.seconds = start.elapsed().as_secs_f64();
    println!("{}", serde_json::to_string(&s).unwrap_or_default());
    Ok(())
}
