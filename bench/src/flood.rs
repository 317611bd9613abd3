//! `ringwire-bench spoof-flood`: a spoofed-Initiation flood for `scripts/bench-secure.sh`.
//!
//! Sends 168-byte datagrams shaped like protocol version 2 Initiations (type byte `0x21`, zero
//! flags and reserved bytes, a route byte, an attempt number, a non-zero initiator connection
//! ID) whose other 140 bytes are pseudo-random, so their mac1 does not verify: each costs the
//! server one keyed BLAKE2s and is dropped (`bad_mac`) with no reply and no Diffie-Hellman
//! work. On loopback the sender cannot forge source addresses; it rotates over `--sources`
//! sockets (ports) instead, which is what matters to a server that keeps no per-source state
//! for them. Open loop at `--rate`, or as fast as the sockets take them.

use crate::args::{parse_rate, parse_secs};
use crate::sys::affinity;
use crate::sys::stop::StopFlag;
use clap::Args;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// The size of an Initiation (`docs/PROTOCOL.md` §4.1).
pub const INITIATION_LEN: usize = 168;

/// Arguments of `ringwire-bench spoof-flood`.
#[derive(Debug, Clone, Args)]
pub struct FloodArgs {
    /// The server, e.g. 127.0.0.1:4500.
    #[arg(long)]
    pub target: SocketAddr,
    /// Datagrams per second (default: as fast as the sockets take them).
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Seconds to flood (SIGINT or SIGTERM stops it earlier, with the same report).
    #[arg(long, default_value = "10", value_parser = parse_secs)]
    pub duration: f64,
    /// Source sockets (ports), used in turn.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub sources: u32,
    /// Core to pin to.
    #[arg(long)]
    pub core: Option<usize>,
    /// Also write `{"sent":..,"bytes":..,"send_errors":..,"seconds":..}` here.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// One Initiation-shaped datagram without a valid mac1, from `state` (xorshift64).
#[must_use]
pub fn initiation(state: &mut u64) -> [u8; INITIATION_LEN] {
    let mut next = || {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    };
    let mut d = [0u8; INITIATION_LEN];
    for chunk in d.chunks_mut(8) {
        let v = next().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    d[0] = 0x21;
    d[1..4].fill(0);
    d[5..12].fill(0);
    // A non-zero initiator connection ID.
    d[20] |= 1;
    d
}

/// Runs the flood and prints what was sent.
pub fn run(args: FloodArgs) -> crate::CmdResult {
    if let Some(core) = args.core {
        affinity::pin_or_warn(core);
    }
    let bind: SocketAddr = if args.target.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let sockets = (0..args.sources)
        .map(|_| UdpSocket::bind(bind))
        .collect::<Result<Vec<_>, _>>()?;
    let stop = StopFlag::new();
    stop.raise_on_signals()?;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let start = Instant::now();
    let end = Duration::from_secs_f64(args.duration);
    let (mut sent, mut errors) = (0u64, 0u64);
    loop {
        let elapsed = start.elapsed();
        if elapsed >= end || stop.is_raised() {
            break;
        }
        if let Some(rate) = args.rate {
            let due = (elapsed.as_secs_f64() * rate) as u64;
            if sent + errors >= due {
                std::thread::sleep(Duration::from_micros(100));
                continue;
            }
        }
        for _ in 0..64 {
            let d = initiation(&mut state);
            let s = &sockets[((sent + errors) % u64::from(args.sources)) as usize];
            match s.send_to(&d, args.target) {
                Ok(_) => sent += 1,
                Err(_) => errors += 1,
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "flood: sent {sent} Initiation-shaped datagrams without mac1 ({} bytes) in {seconds:.2} s: {:.0}/s, {errors} send errors",
        sent * INITIATION_LEN as u64,
        sent as f64 / seconds
    );
    if let Some(path) = &args.json {
        std::fs::write(
            path,
            format!(
                "{{\"sent\": {sent}, \"bytes\": {}, \"send_errors\": {errors}, \"seconds\": {seconds:.3}}}\n",
                sent * INITIATION_LEN as u64
            ),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_look_like_initiations_and_differ() {
        let mut s = 1;
        let (a, b) = (initiation(&mut s), initiation(&mut s));
        for d in [a, b] {
            assert_eq!((d[0], d[1], d[2], d[3]), (0x21, 0, 0, 0));
            assert_eq!(&d[5..12], &[0; 7]);
            assert_ne!(d[20] & 1, 0);
        }
        assert_ne!(a[136..152], b[136..152], "mac1 fields differ");
    }
}
