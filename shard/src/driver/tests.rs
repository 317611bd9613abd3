//! Driver tests that need the driver's own constants or build SQEs themselves (unsafe code,
//! which only the driver may hold).
#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::{IoUring, opcode, types};

use super::bind_reuseport_group;
use super::{
    SEND, Shard, ShardControl, ShardExit, SocketOptions, available_or_explain, skip_or_fail,
};
use super::{cmsg, offload, sockopt};
use crate::mesh::MeshEnd;
use crate::ring::Wake;
use crate::{Ctx, Datagrams, Handler, ShardConfig, ShardStats};

/// Liveness guard for every wait below, never a speed bound: only a hang reaches it.
const HANG: Duration = Duration::from_secs(60);

struct Echo;

impl Handler for Echo {
    type Message = ();
    fn on_datagram(&mut self, peer: SocketAddr, payload: &[u8], ctx: &mut Ctx<'_, ()>) {
        let _counted = ctx.send_to(peer, payload);
    }
}

fn start() -> (
    SocketAddr,
    Arc<ShardControl>,
    std::thread::JoinHandle<ShardExit>,
) {
    let (addr, control, thread) = start_with(|_| {}, Echo);
    let thread = std::thread::spawn(move || thread.join().unwrap().0);
    (addr, control, thread)
}

/// A started shard: its address, its control and its thread.
type Started<H> = (
    SocketAddr,
    Arc<ShardControl>,
    std::thread::JoinHandle<(ShardExit, H)>,
);

/// [`start_with`] where io_uring is available and the kernel takes both `UDP_GRO` and
/// `UDP_SEGMENT` on the shard's socket (asked here, before the shard starts, with the calls
/// the shard makes: its published counters may not be out yet); otherwise says why (`None`).
/// Under `RINGWIRE_REQUIRE_IO_URING` a refusal fails the test: CI's kernel takes both, and a
/// refusal there must not pass as a skip.
fn start_offloaded<H: Handler<Message = ()> + Send + 'static>(
    prepare: impl FnOnce(&UdpSocket),
    handler: H,
) -> Option<Started<H>> {
    if !available_or_explain() {
        return None;
    }
    let mut refused = None;
    let started = start_with(
        |socket| {
            prepare(socket);
            if let Err(e) = offload::enable_gro(socket).and_then(|()| offload::probe_gso(socket)) {
                refused = Some(e);
            }
        },
        handler,
    );
    if let Some(e) = refused {
        let (_, control, thread) = started;
        control.request_stop().unwrap();
        thread.join().unwrap();
        skip_or_fail(format_args!(
            "this kernel refused UDP_GRO or UDP_SEGMENT: {e}"
        ));
        return None;
    }
    Some(started)
}

/// On a socket that refuses GSO sends (`SO_NO_CHECK`, which the kernel answers with
/// `EINVAL`), a shard running `handler` gets two coalesced bursts of six datagrams: the first
/// one's GSO send is refused, and only the second burst comes back, one datagram per send.
/// Returns the exit and the handler (`None`: skipped, see [`start_offloaded`]).
fn refused_gso_then_plain<H: Handler<Message = ()> + Send + 'static>(
    handler: H,
) -> Option<(ShardExit, H)> {
    let no_check =
        |s: &UdpSocket| sockopt::set_int(s, libc::SOL_SOCKET, libc::SO_NO_CHECK, 1).unwrap();
    let (addr, control, thread) = start_offloaded(no_check, handler)?;
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (first, _) = six_datagrams(1);
    send_segmented(&client, addr, &first, 100);
    wait_for(&control, "the refused GSO send", |s| s.gso_fallbacks == 1);
    let (second, datagrams) = six_datagrams(11);
    send_segmented(&client, addr, &second, 100);
    assert_eq!(read_n(&client, 6), datagrams);
    control.request_stop().unwrap();
    Some(thread.join().unwrap())
}

/// A shard running `handler` on a loopback socket that `prepare` may change first; the thread
/// returns the exit and the handler.
fn start_with<H: Handler<Message = ()> + Send + 'static>(
    prepare: impl FnOnce(&UdpSocket),
    mut handler: H,
) -> Started<H> {
    let opts = SocketOptions {
        recv_buffer: 0,
        send_buffer: 0,
        mtu_probe: false,
    };
    let socket = bind_reuseport_group("127.0.0.1:0".parse().unwrap(), 1, opts)
        .unwrap()
        .remove(0);
    prepare(&socket);
    let addr = socket.local_addr().unwrap();
    let control = Arc::new(ShardControl::new(0, 1).unwrap());
    let c = Arc::clone(&control);
    let thread = std::thread::spawn(move || {
        let exit = Shard::new(c, socket, &ShardConfig::default())
            .unwrap()
            .run(&mut handler, MeshEnd::solo(0))
            .unwrap();
        (exit, handler)
    });
    (addr, control, thread)
}

/// Sends `payload` to `to` as one `UDP_SEGMENT` send cut every `segment` bytes, as a GSO
/// sender does (on loopback the datagrams then reach a GRO socket as one buffer).
fn send_segmented(socket: &UdpSocket, to: SocketAddr, payload: &[u8], segment: u16) {
    let SocketAddr::V4(v4) = to else {
        panic!("IPv4 only")
    };
    let name = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(v4.ip().octets()),
        },
        sin_zero: [0; 8],
    };
    let mut control = cmsg::segment_message(segment);
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr().cast_mut().cast(),
        iov_len: payload.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is an empty header.
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_name = (&raw const name).cast_mut().cast();
    hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
    hdr.msg_iov = &raw mut iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = control.as_mut_ptr().cast();
    hdr.msg_controllen = control.len();
    // SAFETY: every pointer in `hdr` names a live local (name, vector over `payload`, control
    // message) for the duration of the call, which only reads them.
    let sent = unsafe { libc::sendmsg(socket.as_raw_fd(), &raw const hdr, 0) };
    assert_eq!(
        sent,
        payload.len() as isize,
        "{}",
        std::io::Error::last_os_error()
    );
}

/// Echoes every datagram tagged with its arrival number, and records each send's outcome.
#[derive(Default)]
struct TaggedEcho {
    received: u64,
    completed: Vec<(u64, Result<usize, i32>)>,
}

impl Handler for TaggedEcho {
    type Message = ();
    fn on_datagram(&mut self, peer: SocketAddr, payload: &[u8], ctx: &mut Ctx<'_, ()>) {
        self.received += 1;
        let _counted = ctx.send_to_tagged(peer, payload, self.received);
    }
    fn on_send_complete(&mut self, tag: u64, result: std::io::Result<usize>) {
        let result = result.map_err(|e| e.raw_os_error().unwrap_or(0));
        self.completed.push((tag, result));
    }
}

/// Echoes every datagram out of its receive buffer (`Ctx::send_received`).
struct InPlaceEcho;

impl Handler for InPlaceEcho {
    type Message = ();
    fn on_datagram(&mut self, peer: SocketAddr, payload: &[u8], ctx: &mut Ctx<'_, ()>) {
        let _counted = ctx.send_received(peer, payload);
    }
}

/// Polls the shard's counters until `done` holds (a liveness bound, not a timing claim).
fn wait_for(control: &ShardControl, what: &str, done: impl Fn(&ShardStats) -> bool) {
    let deadline = Instant::now() + HANG;
    loop {
        let s = control.stats();
        if done(&s) {
            return;
        }
        assert!(Instant::now() < deadline, "waiting for {what}: {s}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Reads `n` datagrams (a liveness bound of [`HANG`] each).
fn read_n(client: &UdpSocket, n: usize) -> Vec<Vec<u8>> {
    client.set_read_timeout(Some(HANG)).unwrap();
    let mut buf = [0u8; 2048];
    (0..n)
        .map(|_| {
            let (len, _) = client.recv_from(&mut buf).unwrap();
            buf[..len].to_vec()
        })
        .collect()
}

/// Five 100-byte datagrams and a 37-byte one, each byte its datagram's number.
fn six_datagrams(base: u8) -> (Vec<u8>, Vec<Vec<u8>>) {
    let datagrams: Vec<Vec<u8>> = (0..6u8)
        .map(|i| vec![base + i; if i == 5 { 37 } else { 100 }])
        .collect();
    (datagrams.concat(), datagrams)
}

/// One GSO send from a client reaches the shard as one coalesced buffer (GRO), which the shard
/// splits at the segment size, the short last datagram included; the six echoes, staged in one
/// turn for one destination, leave as one GSO send, arrive as six datagrams, and each tag is
/// reported with its own length.
#[test]
fn a_coalesced_buffer_is_split_and_its_echoes_leave_as_one_gso_send() {
    let Some((addr, control, thread)) = start_offloaded(|_| {}, TaggedEcho::default()) else {
        return;
    };
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (payload, datagrams) = six_datagrams(1);
    send_segmented(&client, addr, &payload, 100);
    assert_eq!(read_n(&client, 6), datagrams);
    control.request_stop().unwrap();
    let (exit, handler) = thread.join().unwrap();
    let s = &exit.stats;
    assert_eq!(
        (s.recv_coalesced, s.datagrams_in, s.bytes_in),
        (1, 6, 537),
        "{s}"
    );
    assert_eq!(
        (s.send_coalesced, s.datagrams_out, s.bytes_out),
        (1, 6, 537),
        "{s}"
    );
    let want: Vec<(u64, Result<usize, i32>)> = (1..=6)
        .map(|t| (t, Ok(if t == 6 { 37 } else { 100 })))
        .collect();
    assert_eq!(handler.completed, want);
    assert!(exit.drained, "{s}");
}

/// A socket that refuses GSO sends (here one with UDP checksums off, `SO_NO_CHECK`, which the
/// kernel answers with `EINVAL`): the refused send's datagrams are counted under the errno and
/// their tags told so, and the shard goes on sending every datagram alone.
#[test]
fn a_socket_that_refuses_gso_falls_back_to_plain_sends() {
    let Some((exit, mut handler)) = refused_gso_then_plain(TaggedEcho::default()) else {
        return;
    };
    let s = &exit.stats;
    assert_eq!((s.recv_coalesced, s.datagrams_in), (2, 12), "{s}");
    assert_eq!((s.send_coalesced, s.gso_fallbacks), (1, 1), "{s}");
    assert_eq!(s.send_errors, vec![(libc::EINVAL, 6)], "{s}");
    assert_eq!((s.datagrams_out, s.bytes_out), (6, 537), "{s}");
    let refused: Vec<(u64, Result<usize, i32>)> = (1..=6).map(|t| (t, Err(libc::EINVAL))).collect();
    let sent: Vec<(u64, Result<usize, i32>)> = (7..=12)
        .map(|t| (t, Ok(if t == 12 { 37 } else { 100 })))
        .collect();
    // Lone sends may complete in any order.
    handler.completed.sort_by_key(|(tag, _)| *tag);
    assert_eq!(handler.completed, [refused, sent].concat());
    assert!(exit.drained, "{s}");
}

/// An echo in place of a coalesced buffer: the bytes sent back are the bytes received, as one
/// GSO send out of the receive buffer, and the buffer is back with the kernel's once the send
/// completed (none lent at the end; the pools drained).
#[test]
fn a_coalesced_buffer_echoed_in_place_leaves_as_one_send_and_comes_back() {
    let Some((addr, control, thread)) = start_offloaded(|_| {}, InPlaceEcho) else {
        return;
    };
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    for round in 0..3u8 {
        let (payload, datagrams) = six_datagrams(10 * round);
        send_segmented(&client, addr, &payload, 100);
        assert_eq!(read_n(&client, 6), datagrams);
    }
    // A lone datagram goes back in place too.
    client.send_to(b"alone", addr).unwrap();
    assert_eq!(read_n(&client, 1), [b"alone".to_vec()]);
    control.request_stop().unwrap();
    let (exit, _) = thread.join().unwrap();
    let s = &exit.stats;
    assert_eq!((s.datagrams_in, s.bytes_in), (19, 3 * 537 + 5), "{s}");
    assert_eq!((s.datagrams_out, s.bytes_out), (19, 3 * 537 + 5), "{s}");
    assert_eq!((s.send_in_place, s.send_coalesced), (19, 3), "{s}");
    assert!(s.recv_lent >= 1, "{s}");
    assert_eq!(
        s.recv_lent, s.recv_lent_returned,
        "every buffer came back: {s}"
    );
    assert_eq!(s.send_in_place_over_cap, 0, "{s}");
    assert!(exit.drained, "{s}");
}

/// Sends in place on a socket that refuses GSO: the refused send's datagrams are counted under
/// the errno and its buffer comes back all the same; later echoes go alone, still in place.
#[test]
fn sends_in_place_fall_back_to_plain_sends_and_return_their_buffers() {
    let Some((exit, _)) = refused_gso_then_plain(InPlaceEcho) else {
        return;
    };
    let s = &exit.stats;
    assert_eq!((s.recv_coalesced, s.datagrams_in), (2, 12), "{s}");
    assert_eq!(s.send_errors, vec![(libc::EINVAL, 6)], "{s}");
    assert_eq!((s.datagrams_out, s.bytes_out), (6, 537), "{s}");
    assert_eq!(s.send_in_place, 12, "{s}");
    assert_eq!(
        s.recv_lent, s.recv_lent_returned,
        "every buffer came back: {s}"
    );
    assert!(exit.drained, "{s}");
}

/// Handles a coalesced buffer whole (`Handler::on_datagrams`) and echoes it with
/// `Ctx::send_datagrams`; counts its calls of each kind.
#[derive(Default)]
struct BatchEcho {
    batches: Vec<(usize, usize)>,
    alone: u64,
}

impl Handler for BatchEcho {
    type Message = ();
    fn on_datagram(&mut self, peer: SocketAddr, payload: &[u8], ctx: &mut Ctx<'_, ()>) {
        self.alone += 1;
        let _counted = ctx.send_received(peer, payload);
    }
    fn on_datagrams(&mut self, peer: SocketAddr, datagrams: Datagrams<'_>, ctx: &mut Ctx<'_, ()>) {
        self.batches
            .push((datagrams.len(), datagrams.segment_size()));
        let _counted = ctx.send_datagrams(peer, datagrams);
    }
}

/// Coalesced buffers handled whole, one whose size divides by the segment and two with a
/// short last datagram: one handler call and one GSO send (one slot) each, the bytes back as
/// sent; a lone datagram goes to `on_datagram`. Every counter exact, every buffer back.
#[test]
fn a_coalesced_buffer_handled_whole_is_one_call_and_one_send() {
    let Some((addr, control, thread)) = start_offloaded(|_| {}, BatchEcho::default()) else {
        return;
    };
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (short_last, datagrams) = six_datagrams(1);
    send_segmented(&client, addr, &short_last, 100);
    assert_eq!(read_n(&client, 6), datagrams);
    let divides: Vec<u8> = (0..400u32).map(|i| (i % 199) as u8).collect();
    send_segmented(&client, addr, &divides, 100);
    assert_eq!(read_n(&client, 4).concat(), divides);
    // 1,000 bytes of 16-byte datagrams: 62 and one of 8 (within the 64 segments a kernel
    // before 6.14 takes in one send; the cut at 64 is `pool.rs`'s test).
    let odd: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    send_segmented(&client, addr, &odd, 16);
    let echoed = read_n(&client, 63);
    assert_eq!(echoed.concat(), odd);
    assert_eq!(echoed.last().map(Vec::len), Some(8));
    client.send_to(b"alone", addr).unwrap();
    assert_eq!(read_n(&client, 1), [b"alone".to_vec()]);
    control.request_stop().unwrap();
    let (exit, handler) = thread.join().unwrap();
    let s = &exit.stats;
    assert_eq!(handler.batches, [(6, 100), (4, 100), (63, 16)]);
    assert_eq!(handler.alone, 1);
    let (n, bytes) = (6 + 4 + 63 + 1, 537 + 400 + 1000 + 5);
    assert_eq!(
        (s.recv_coalesced, s.datagrams_in, s.bytes_in),
        (3, n, bytes),
        "{s}"
    );
    assert_eq!((s.datagrams_out, s.bytes_out), (n, bytes), "{s}");
    assert_eq!((s.send_coalesced, s.send_in_place), (3, n), "{s}");
    assert_eq!(
        (
            s.send_queue_full,
            s.send_too_large,
            s.send_in_place_over_cap
        ),
        (0, 0, 0),
        "{s}"
    );
    assert!(s.recv_lent >= 1, "{s}");
    assert_eq!(s.recv_lent, s.recv_lent_returned, "{s}");
    assert!(exit.drained, "{s}");
}

/// A socket that refuses GSO (`SO_NO_CHECK`): the first batch's one send is refused and its
/// datagrams counted under the errno, its buffer comes back; the next batch goes one datagram
/// per send, still in place.
#[test]
fn a_batch_whose_gso_send_is_refused_falls_back_to_plain_sends() {
    let Some((exit, handler)) = refused_gso_then_plain(BatchEcho::default()) else {
        return;
    };
    let s = &exit.stats;
    assert_eq!(handler.batches, [(6, 100), (6, 100)]);
    assert_eq!((s.recv_coalesced, s.datagrams_in), (2, 12), "{s}");
    assert_eq!((s.send_coalesced, s.gso_fallbacks), (1, 1), "{s}");
    assert_eq!(s.send_errors, vec![(libc::EINVAL, 6)], "{s}");
    assert_eq!((s.datagrams_out, s.bytes_out), (6, 537), "{s}");
    assert_eq!(s.send_in_place, 12, "{s}");
    assert_eq!(s.recv_lent, s.recv_lent_returned, "{s}");
    assert!(exit.drained, "{s}");
}

/// A completion that claims to be a send but names no in-flight slot (here posted into the
/// shard's ring by another ring with `MSG_RING`) is counted and frees nothing.
#[test]
fn a_foreign_send_completion_is_counted_and_frees_nothing() {
    if !available_or_explain() {
        return;
    }
    let (addr, control, thread) = start();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(HANG)).unwrap();
    let mut buf = [0u8; 16];
    client.send_to(b"a", addr).unwrap();
    client.recv_from(&mut buf).unwrap();
    let target = control.ring_fd().unwrap();
    let mut ring = IoUring::new(8).unwrap();
    // Slot 0 of generation 0 (free again after the echo above, and its generation moved on)
    // and a slot that does not exist.
    for token in [0u64, 1 << 31] {
        let sqe = opcode::MsgRingData::new(types::Fd(target), 0, SEND | token, None)
            .build()
            .user_data(1);
        // SAFETY: a MSG_RING SQE points at no memory of ours.
        unsafe { ring.submission().push(&sqe).unwrap() };
    }
    ring.submit_and_wait(2).unwrap();
    let results: Vec<i32> = ring.completion().map(|c| c.result()).collect();
    if results.iter().any(|r| *r < 0) {
        control.request_stop().unwrap();
        thread.join().unwrap();
        skip_or_fail(format_args!(
            "MSG_RING into the shard's ring failed: {results:?}"
        ));
        return;
    }
    wait_for(&control, "both foreign completions", |s| {
        s.send_unknown_completions >= 2
    });
    // The shard still sends, slot accounting intact.
    client.send_to(b"b", addr).unwrap();
    let (n, _) = client.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"b");
    control.request_stop().unwrap();
    let exit = thread.join().unwrap();
    let s = &exit.stats;
    assert_eq!(s.send_unknown_completions, 2, "{s}");
    assert_eq!(s.datagrams_out, 2, "{s}");
    assert!(exit.drained, "{s}");
}

/// Copies each datagram it receives to every one of its destinations in the same callback, and
/// looks, right after staging a whole run of them, whether the first copy is already at its
/// destination.
struct FanOut {
    destinations: Vec<UdpSocket>,
    /// Whether the first destination could read its copy before the callback returned.
    first_arrived_early: Option<bool>,
}

impl Handler for FanOut {
    type Message = ();
    fn on_datagram(&mut self, _peer: SocketAddr, payload: &[u8], ctx: &mut Ctx<'_, ()>) {
        for (i, d) in self.destinations.iter().enumerate() {
            let _counted = ctx.send_to(d.local_addr().unwrap(), payload);
            if i + 1 == super::submit::EARLY_SUBMIT_SENDS {
                let mut buf = [0u8; 64];
                self.first_arrived_early = Some(self.destinations[0].recv(&mut buf).is_ok());
            }
        }
    }
}

/// A callback that stages more sends than one run ([`super::submit::EARLY_SUBMIT_SENDS`]) has
/// them submitted as it goes: the first copy is at its destination before the callback
/// returns, every destination gets its copy once, and the early submissions are counted.
#[test]
fn a_large_fan_out_starts_sending_before_the_callback_returns() {
    if !available_or_explain() {
        return;
    }
    let n = super::submit::EARLY_SUBMIT_SENDS + 5;
    let destinations: Vec<UdpSocket> = (0..n)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    let handler = FanOut {
        destinations,
        first_arrived_early: None,
    };
    let (addr, control, thread) = start_with(|_| {}, handler);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.send_to(b"publish", addr).unwrap();
    wait_for(&control, "every copy sent", |s| s.datagrams_out == n as u64);
    control.request_stop().unwrap();
    let (exit, handler) = thread.join().unwrap();
    assert_eq!(handler.first_arrived_early, Some(true), "{}", exit.stats);
    assert!(exit.stats.send_early_submits >= 1, "{}", exit.stats);
    assert_eq!(exit.stats.send_errors_total(), 0, "{}", exit.stats);
    // The first destination read its copy in the callback; every other one has it now.
    for d in &handler.destinations[1..] {
        d.set_nonblocking(false).unwrap();
        d.set_read_timeout(Some(HANG)).unwrap();
        let mut buf = [0u8; 64];
        let len = d.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"publish");
    }
}
