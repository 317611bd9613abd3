//! The fan-out floor: a plain-UDP relay of one publisher to N subscribers, no sessions, no
//! cryptography, one thread; each publish's copies leave with `sendmmsg`, every header of a
//! call pointing at the same received bytes (`sys::fanout_send`). The best a one-core
//! kernel-socket relay can do, to set ringwire's fan-out beside (`scripts/scale.sh`'s fan-out
//! phase, `load --mode raw-fanout`).
//!
//! Protocol: a datagram of [`SUBSCRIBE_LEN`] bytes, [`SUBSCRIBE_TAG`] and a subscriber number
//! (u32, little-endian), subscribes (source address, number) and is sent back as the
//! acknowledgement (again if repeated; the subscription is kept once). Any datagram of at least
//! [`crate::load::payload::MIN_LEN`] bytes is a publish: its bytes go, unchanged, to every
//! subscription in the order they came. Anything else is ignored.

use super::ready::Ready;
use super::report::ThreadReport;
use super::socket;
use crate::load::payload::MIN_LEN;
use crate::sys::fanout_send::FanoutSend;
use crate::sys::{affinity, cpu_time, mmsg::MmsgBatch, stop::StopFlag};
use socket2::{SockAddr, Socket};
use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// Datagrams per receive.
const RECV_BATCH: usize = 64;
/// How often a blocked receive wakes to check the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);
/// The first four bytes of a subscription.
pub const SUBSCRIBE_TAG: [u8; 4] = *b"RWSB";
/// A subscription's length: the tag and a u32.
pub const SUBSCRIBE_LEN: usize = 8;

/// Subscriber `id`'s subscription (and its acknowledgement).
#[must_use]
pub fn subscribe_msg(id: u32) -> [u8; SUBSCRIBE_LEN] {
    let mut m = [0; SUBSCRIBE_LEN];
    m[..4].copy_from_slice(&SUBSCRIBE_TAG);
    m[4..].copy_from_slice(&id.to_le_bytes());
    m
}

/// The subscriber number of a subscription (or its acknowledgement); `None` for anything else.
#[must_use]
pub fn parse_subscribe(bytes: &[u8]) -> Option<u32> {
    let id = bytes.strip_prefix(&SUBSCRIBE_TAG)?;
    Some(u32::from_le_bytes(id.try_into().ok()?))
}

/// Relays on `sock` (datagrams up to `max_datagram` bytes), `batch` copies per `sendmmsg`,
/// until `stop` is raised; calls [`Ready::up`] once set up. `served` counts copies sent.
pub fn serve(
    sock: Socket,
    core: usize,
    max_datagram: usize,
    batch: usize,
    stop: &StopFlag,
    ready: Ready,
) -> io::Result<ThreadReport> {
    let pinned = affinity::pin_or_warn(core);
    sock.set_read_timeout(Some(STOP_POLL))?;
    let fd = sock.as_raw_fd();
    let mut rx = MmsgBatch::new(RECV_BATCH, max_datagram, true);
    let mut fan = FanoutSend::new(batch);
    let mut subscribers: Vec<SockAddr> = Vec::new();
    let mut known: HashSet<(SocketAddr, u32)> = HashSet::new();
    let (mut publishes, mut copies, mut refused) = (0u64, 0u64, 0u64);
    ready.up();
    while !stop.is_raised() {
        let n = match rx.recv(fd, RECV_BATCH, libc::MSG_WAITFORONE) {
            Ok(n) => n,
            Err(e) if socket::nothing_yet(&e) => continue,
            Err(e) => return Err(e),
        };
        for i in 0..n {
            let bytes = rx.received(i);
            if let Some(id) = parse_subscribe(bytes) {
                let Some(from) = rx.source(i) else { continue };
                if known.insert((from, id)) {
                    subscribers.push(from.into());
                }
                // The acknowledgement; a lost one makes the subscriber ask again.
                let _ = sock.send_to(bytes, &from.into());
            } else if bytes.len() >= MIN_LEN {
                let sent = fan.send(fd, bytes, &subscribers);
                publishes += 1;
                copies += sent.sent;
                refused += sent.failed;
            }
        }
    }
    eprintln!(
        "fan-out floor: {} subscriptions, {publishes} publishes, {copies} copies sent, {refused} refused, {} per sendmmsg",
        subscribers.len(),
        fan.batch()
    );
    Ok(ThreadReport {
        core: pinned,
        served: copies,
        cpu: cpu_time::current_thread(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscription_round_trips_and_a_probe_is_not_one() {
        let m = subscribe_msg(0xDEAD_BEEF);
        assert_eq!(parse_subscribe(&m), Some(0xDEAD_BEEF));
        assert_eq!(parse_subscribe(&m[..7]), None);
        assert_eq!(parse_subscribe(&[0u8; MIN_LEN]), None);
        const { assert!(SUBSCRIBE_LEN < MIN_LEN) };
    }
}
