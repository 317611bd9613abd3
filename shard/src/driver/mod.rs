//! The io_uring driver: the only module that talks to the kernel.
//!
//! A [`Shard`] owns one shard's ring, socket, buffer ring, send slots and timers, and runs the
//! loop until asked to stop. One turn, in order (`docs/ARCHITECTURE.md` has the long form):
//!
//! 1. **Stop check** and **mesh**: hand waiting messages from other shards to the handler,
//!    control lanes first.
//! 2. **Stage**: turn every send the handler queued into a `sendmsg` SQE (with GSO, a run of
//!    datagrams of one size to one destination is one send, `pool.rs`); wake the shards this
//!    shard messaged, if they are parked.
//! 3. **Park and enter**: one `io_uring_enter` submits the SQEs and waits for a completion or
//!    the next timer deadline. With nothing to do the thread sleeps here and uses no CPU.
//! 4. **Complete**: receives go to the handler (a buffer the kernel coalesced with GRO one
//!    datagram at a time, `offload.rs`) and their buffers back to the buffer ring; sends free
//!    their slots and count success or errno per datagram; wake-ups drain the eventfd. A receive
//!    that an empty datagram ended is re-armed and submitted at once, within this pass.
//! 5. **Refill**: publish recycled buffers in one store; re-arm the multishot receive if it
//!    ended (ENOBUFS or error), counting the re-arm.
//! 6. **Timers**, `on_turn`, a requested drain, a requested report, and **publish** the
//!    counters (and, at most once a second, a log line for drops since the last one).
//!
//! The memory the kernel reads and writes (receive buffers, the receive header, send slots)
//! lives in `pool.rs`, which frees it only once the kernel is done with it and leaks it
//! otherwise; see [`Shard`] for how a shard ends.
#![allow(unsafe_code)]

mod bufring;
mod cmsg;
mod control;
mod droplog;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod kernel_drops;
mod offload;
mod pool;
mod probe;
mod sockaddr;
mod socket;
mod sockopt;
mod steer;
mod steer_quic;
mod submit;
#[cfg(test)]
mod tests;
mod turns;

use std::io;
use std::mem;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use io_uring::types::{Fd, Fixed, SubmitArgs, Timespec};
use io_uring::{IoUring, cqueue, opcode, squeue};

pub use control::{ReportError, ReportReplies, ShardControl};
pub use probe::{
    ProbeReport, REQUIRE_IO_URING_ENV, RingMode, SetupError, available_or_explain, create_ring,
    io_uring_required, kernel_release, probe, skip_or_fail,
};
pub use socket::{SocketError, SocketOptions, bind_reuseport_group};
pub use steer::{attach_steering, detach_steering, steering_program};
pub use steer_quic::{SteeringProgram, attach_quic_steering, quic_steering_program};

use self::droplog::DropLog;
use self::kernel_drops::KernelDrops;
pub(crate) use self::pool::{Placed, Received, Refused, SendSlots};
use self::pool::{RecvPool, Sent};
pub(crate) use self::submit::SendSubmitter;
use self::turns::TurnClock;
use crate::config::{ShardConfig, ShardConfigError};
use crate::counters::{Counters, ShardStats};
use crate::handler::{Ctx, Datagrams, Handler};
use crate::mesh::{Lane, MeshEnd};
use crate::ratelimit::LogLimiter;
use crate::ring::futex;
use crate::timer::Timers;

/// A handler context over the shard's fields (a macro, not a method, so that it borrows only
/// those fields and not the receive buffer the handler is reading).
macro_rules! ctx {
    ($shard:ident, $now:expr, $mesh:expr) => {
        ctx!($shard, $now, $mesh, None)
    };
    ($shard:ident, $now:expr, $mesh:expr, $received:expr) => {
        Ctx {
            now: $now,
            shard: $shard.control.index,
            slots: &mut $shard.slots,
            timers: &mut $shard.timers,
            counters: &mut $shard.counters,
            mesh: $mesh,
            received: $received,
            submit: Some(SendSubmitter::new(
                &mut $shard.ring,
                $shard.fd,
                $shard.fixed_fd,
            )),
        }
    };
}

const KIND_SHIFT: u32 = 56;
const RECV: u64 = 1 << KIND_SHIFT;
const SEND: u64 = 2 << KIND_SHIFT;
const WAKE: u64 = 3 << KIND_SHIFT;
const CANCEL: u64 = 4 << KIND_SHIFT;
/// A wake another shard sent with `IORING_OP_MSG_RING` (arrives in the target's ring).
const MSG_WAKE: u64 = 5 << KIND_SHIFT;
/// The sender's side of a `MSG_RING` wake; posted only on failure (`SKIP_SUCCESS`). Low bits:
/// the target shard.
const MSG_SENT: u64 = 6 << KIND_SHIFT;
/// The `IORING_OP_FUTEX_WAIT` on the parked word (`shard.wake = "futex"`).
const FUTEX: u64 = 7 << KIND_SHIFT;
const KIND_MASK: u64 = 0xff << KIND_SHIFT;
const BGID: u16 = 0;
/// Most receives one completion pass re-arms and submits at once after an empty datagram
/// ended them (the kernel's own budget for one multishot issue, `MULTISHOT_MAX_RETRY`); past
/// it the re-arm waits for the end of the turn, so a flood of empty datagrams cannot keep the
/// loop from its timers, mesh and stop flag.
const MAX_INLINE_REARMS: u32 = 32;

/// The handler and mesh end a completion pass hands datagrams and messages to; `None` while a
/// shard whose handler panicked drains its operations.
type App<'a, H> = Option<(&'a mut H, &'a mut MeshEnd<<H as Handler>::Message>)>;

/// Names the handler type of a handler-less [`App`]; never called.
struct Discard;

impl Handler for Discard {
    type Message = ();
    fn on_datagram(&mut self, _: SocketAddr, _: &[u8], _: &mut Ctx<'_, ()>) {}
}

/// Why a shard stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShardError {
    /// The shard's settings are out of range.
    #[error(transparent)]
    Config(#[from] ShardConfigError),
    /// The kernel lacks something the loop needs, or io_uring is off.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// `io_uring_enter` failed with an error the loop cannot continue after.
    #[error("io_uring_enter failed: {0}")]
    Enter(#[source] io::Error),
    /// The submission queue stayed full after flushing it to the kernel.
    #[error("submission queue full after a flush")]
    SubmissionQueueFull,
}

/// How a shard ended.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ShardExit {
    /// Final counters.
    pub stats: ShardStats,
    /// Whether every operation on the shard's buffers and send slots completed before the
    /// drain timeout, so that they were freed. When false they were leaked rather than freed
    /// under the kernel (counted as `pools_leaked`).
    pub drained: bool,
    /// The handler's own counters ([`Handler::counters`]).
    pub app: Vec<(&'static str, u64)>,
    /// Whether a graceful drain ([`ShardControl::request_drain`]) ended this shard, and how:
    /// `Some(true)` when its handler finished its goodbyes ([`Handler::drained`]) before the
    /// deadline, `Some(false)` when the deadline came first; `None` for a plain stop.
    pub graceful: Option<bool>,
}

impl Drop for Shard {
    /// A shard dropped before `run` finished (its handler panicked) may still have a receive
    /// and sends in the kernel. Dropping the ring would not end them: the kernel tears a ring
    /// down later, asynchronously. So cancel them and wait for their completions, without a
    /// handler (datagrams that arrive meanwhile are counted as `recv_discarded`) and bounded by
    /// the drain timeout; then free the pools if the kernel holds nothing, or leak them
    /// (`pools_drained` / `pools_leaked` say which).
    fn drop(&mut self) {
        if self.pools_released {
            return;
        }
        if self.recv.armed() || self.poll_armed || self.futex_armed || self.slots.in_flight() > 0 {
            let mut app: App<'_, Discard> = None;
            let limit = self.drain_timeout;
            if let Err(e) = self.drain(&mut app, limit) {
                tracing::warn!(
                    shard = self.control.index,
                    "drain after a panic failed: {e}"
                );
            }
        }
        self.release_pools();
    }
}

/// Publishes `ring` for peers' `MSG_RING` wakes: a duplicate of its fd, owned by `control`, so
/// that the number names this ring for as long as anyone who can load it holds `control`
/// ([`ShardControl`]'s `ring`). Without a duplicate (out of fds, or a shard already ran on this
/// control block) peers wake this shard through its eventfd.
fn publish_ring_fd(control: &ShardControl, ring: &IoUring) {
    // SAFETY: `ring` owns this fd and keeps it open for the whole borrow.
    let fd = unsafe { BorrowedFd::borrow_raw(ring.as_raw_fd()) };
    match fd.try_clone_to_owned() {
        Ok(dup) => {
            let fd = dup.as_raw_fd();
            if control.ring.set(dup).is_ok() {
                control.ring_fd.store(fd, Ordering::Release);
            }
        }
        Err(e) => tracing::warn!(
            shard = control.index,
            "cannot duplicate the ring fd ({e}); peers wake this shard through its eventfd"
        ),
    }
}

/// Linux thread id of the calling thread.
fn current_tid() -> u64 {
    // SAFETY: gettid has no arguments and cannot fail.
    let tid = unsafe { libc::gettid() };
    u64::try_from(tid).unwrap_or(0)
}

/// CPU time (user + system) a thread of this process has used, from
/// `/proc/self/task/TID/stat`, in clock ticks converted to a duration (10 ms resolution on
/// most kernels).
pub fn thread_cpu_time(tid: u64) -> io::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))?;
    // Fields after the command name, which is in parentheses and may itself contain spaces.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| io::Error::other("unexpected /proc stat format"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks = |i: usize| -> io::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| io::Error::other("unexpected /proc stat format"))
    };
    let total = ticks(11)? + ticks(12)?;
    // SAFETY: sysconf has no memory arguments.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|h| *h > 0).unwrap_or(100);
    Ok(Duration::from_nanos(total * 1_000_000_000 / hz))
}

/// One shard: its ring, socket, receive pool, send slots, timers and counters. Build it with
/// [`Shard::new`] on the thread that will run it, then call [`Shard::run`].
///
/// **How it ends.** Dropping the ring does not mean the kernel is done with the shard's
/// memory: closing an io_uring fd starts its teardown, which cancels and completes in-flight
/// operations later, in a kernel worker (and not at all while another fd names the ring, such
/// as the duplicate peers wake it through). So the shard never relies on drop order. A
/// stopping shard cancels its receive and poll and waits for every completion (bounded by
/// `drain_timeout`); only when no receive is armed and no send is in flight are the receive
/// pool and send slots freed (`pools_drained`), otherwise they are leaked (`pools_leaked`).
/// A shard dropped by a panic does the same without its handler (see its `Drop`).
pub struct Shard {
    ring: IoUring,
    /// Receive buffers, their buffer ring and the receive header (kernel-shared).
    recv: RecvPool,
    /// Send slots: headers, vectors, names, payloads (kernel-shared while in flight).
    slots: SendSlots,
    /// Kept open for as long as operations may name its fd.
    _socket: UdpSocket,
    fd: RawFd,
    /// The socket is registered as fixed file 0 (saves a file lookup per operation).
    fixed_fd: bool,
    /// Wake parked peers with `MSG_RING` from this ring rather than their eventfd.
    msg_ring_wake: bool,
    /// Targets whose `MSG_RING` wake failed this turn (woken through the eventfd instead).
    failed_wakes: Vec<usize>,
    /// Sleep on the parked word with `IORING_OP_FUTEX_WAIT` (`shard.wake = "futex"` on a
    /// kernel that has it).
    futex_wait: bool,
    /// The futex wait is in the kernel (armed when parking, until its completion).
    futex_armed: bool,
    drain_timeout: Duration,
    control: Arc<ShardControl>,
    /// This shard's report requests, opened on `control` at set-up (owned by this thread).
    report_inbox: Option<control::ReportInbox>,
    timers: Timers,
    counters: Counters,
    /// The completion pass's batch, and the next entry to handle: a pass a handler panic
    /// interrupted is finished (without the handler) by the drain in `Drop`.
    cqes: Vec<cqueue::Entry>,
    next_cqe: usize,
    fired: Vec<(crate::timer::TimerId, u64)>,
    poll_armed: bool,
    /// The multishot receive ended with a datagram (an empty one) during this completion
    /// pass: re-arm it before the pass ends.
    rearm_now: bool,
    /// An error a completion left for the end of the completion pass (rare: kept out of the
    /// per-completion return values).
    fatal: Option<ShardError>,
    stopping: bool,
    report: ProbeReport,
    /// The pools were freed or leaked (`release_pools` ran).
    pools_released: bool,
    drained: bool,
    error_log: LogLimiter,
    /// The socket's drop count, from the receive path's `SO_RXQ_OVFL` control messages.
    kernel_drops: KernelDrops,
    /// The largest datagram handed to the handler (`ShardConfig::max_datagram`); a GRO receive
    /// buffer has room for more.
    max_datagram: usize,
    drop_log: DropLog,
    /// Turn durations, when `ShardConfig::turn_histogram` asks for them.
    turns: Option<TurnClock>,
    /// The deadline of a graceful drain this shard has begun (its handler was told).
    drain_deadline: Option<Instant>,
    /// How the graceful drain ended (see [`ShardExit::graceful`]).
    graceful: Option<bool>,
}

impl Shard {
    /// Sets up a shard on the calling thread: creates and probes its io_uring (with
    /// `SINGLE_ISSUER`, so this must be the thread that runs it), registers its buffer ring and
    /// allocates its send slots. `socket` is this shard's member of the `SO_REUSEPORT` group.
    pub fn new(
        control: Arc<ShardControl>,
        socket: UdpSocket,
        config: &ShardConfig,
    ) -> Result<Self, ShardError> {
        config.validate()?;
        control.tid.store(current_tid(), Ordering::Relaxed);
        let cq_entries = (config.recv_buffers.max(config.gro_buffers) as usize + config.send_slots)
            .max(2 * config.sq_entries as usize)
            .next_power_of_two()
            .min(1 << 16) as u32;
        let (ring, report) = create_ring(config.sq_entries, cq_entries)?;
        let namelen = match socket.local_addr() {
            Ok(a) if a.is_ipv6() => sockaddr::SOCKADDR_IN6_LEN,
            _ => sockaddr::SOCKADDR_IN_LEN,
        };
        // Datagrams carry the socket's drop count as a control message, after the name.
        if let Err(e) = kernel_drops::enable(&socket) {
            tracing::warn!(
                shard = control.index,
                "SO_RXQ_OVFL not available ({e}); kernel drops will read 0"
            );
        }
        let refused = |option, key| {
            let kernel = report.kernel.clone();
            move |source| SetupError::Offload {
                option,
                key,
                source,
                kernel,
            }
        };
        let gro = offload::decide(config.gro, || offload::enable_gro(&socket))
            .map_err(refused("UDP_GRO", "gro"))?;
        let gso = offload::decide(config.gso, || offload::probe_gso(&socket))
            .map_err(refused("UDP_SEGMENT", "gso"))?;
        for (key, setting, on) in [("gro", config.gro, gro), ("gso", config.gso, gso)] {
            if setting == crate::config::Offload::Auto && !on {
                tracing::info!(
                    shard = control.index,
                    "shard.{key} = \"auto\": the socket refused it; going on without"
                );
            }
        }
        let setup = |source| SetupError::BufRing {
            source,
            kernel: report.kernel.clone(),
        };
        // A coalesced buffer holds up to 64 KiB: with GRO every buffer must (the kernel picks
        // the next one whatever arrives), so there are fewer of them.
        let (buffers, room) = if gro {
            (config.gro_buffers, offload::GRO_ROOM)
        } else {
            (config.recv_buffers, config.max_datagram)
        };
        let mut recv =
            RecvPool::new(buffers, namelen, cmsg::RECV_CONTROL_LEN, room, BGID).map_err(setup)?;
        recv.register(&ring).map_err(setup)?;
        let mut counters = Counters::default();
        counters.gro_enabled = u64::from(gro);
        counters.gso_enabled = u64::from(gso);
        let fd = socket.as_raw_fd();
        // Registered files exist since 5.1; without them every SQE names the fd itself.
        let fixed_fd = ring.submitter().register_files(&[fd]).is_ok();
        publish_ring_fd(&control, &ring);
        let msg_ring_wake = config.wake == crate::config::WakeMechanism::MsgRing && report.msg_ring;
        let futex_wait = config.wake == crate::config::WakeMechanism::Futex && report.futex_wait;
        if config.wake == crate::config::WakeMechanism::Futex && !futex_wait {
            tracing::info!(
                shard = control.index,
                "shard.wake = \"futex\": no IORING_OP_FUTEX_WAIT on kernel {}; peers wake this shard through its eventfd",
                report.kernel
            );
        }
        let mut slots = SendSlots::with_gso(config.send_slots, config.max_datagram, gso);
        slots.lend_from(buffers);
        Ok(Self {
            ring,
            recv,
            slots,
            _socket: socket,
            fd,
            fixed_fd,
            msg_ring_wake,
            failed_wakes: Vec::new(),
            futex_wait,
            futex_armed: false,
            drain_timeout: config.drain_timeout,
            report_inbox: control.open_report_inbox(),
            control,
            timers: Timers::new(config.max_timers),
            counters,
            cqes: Vec::with_capacity(cq_entries as usize),
            next_cqe: 0,
            fired: Vec::new(),
            poll_armed: false,
            rearm_now: false,
            fatal: None,
            stopping: false,
            report,
            pools_released: false,
            drained: false,
            error_log: LogLimiter::default(),
            kernel_drops: KernelDrops::default(),
            max_datagram: config.max_datagram,
            drop_log: DropLog::default(),
            turns: if config.turn_histogram {
                TurnClock::new()
            } else {
                None
            },
            drain_deadline: None,
            graceful: None,
        })
    }

    /// What the start-up probe found on this shard's ring.
    pub fn probe_report(&self) -> &ProbeReport {
        &self.report
    }

    /// Runs the loop until [`ShardControl::request_stop`], then drains in-flight operations.
    /// `mesh` is this shard's end of the mesh ([`MeshEnd::solo`] for a lone shard).
    pub fn run<H: Handler>(
        mut self,
        handler: &mut H,
        mut mesh: MeshEnd<H::Message>,
    ) -> Result<ShardExit, ShardError> {
        let result = self.turn_until_stopped(handler, &mut mesh);
        let mut app = Vec::new();
        handler.counters(&mut app);
        let mut exit = self.finish(&mesh);
        exit.app = app;
        result.map(|()| exit)
    }

    fn turn_until_stopped<H: Handler>(
        &mut self,
        handler: &mut H,
        mesh: &mut MeshEnd<H::Message>,
    ) -> Result<(), ShardError> {
        self.arm_recv()?;
        self.arm_poll()?;
        // Peers deliver claimed wakes as futex wakes from now on; the eventfd stays armed for
        // stop and report requests.
        mesh.sleep_on_futex(self.futex_wait);
        let mut ctx = ctx!(self, Instant::now(), mesh);
        handler.on_start(&mut ctx);
        let mut first = true;
        let mut inbox = Vec::new();
        while !self.control.stop_requested() {
            self.counters.loop_turns += 1;
            let more = self.deliver_mesh(handler, mesh, Instant::now(), &mut inbox);
            self.stage_sends()?;
            let via_ring = self.msg_ring_wake;
            mesh.flush_wakes_with(|to, fd| via_ring && self.push_msg_ring(to, fd));
            // A draining shard wakes at its drain deadline at the latest.
            let next = match (self.timers.next_deadline(), self.drain_deadline) {
                (Some(t), Some(d)) => Some(t.min(d)),
                (t, d) => t.or(d),
            };
            let mut timeout = next.map(|d| d.saturating_duration_since(Instant::now()));
            let mut parked = false;
            if more {
                timeout = Some(Duration::ZERO);
            } else if mesh.has_peers() {
                // Park protocol: publish "parked", then re-check the rings; a producer that
                // pushed before our flag was visible is seen here, one after it wakes us.
                mesh.prepare_park();
                if mesh.has_work() {
                    mesh.cancel_park();
                    timeout = Some(Duration::ZERO);
                } else {
                    parked = true;
                    if self.futex_wait && !self.futex_armed {
                        self.arm_futex(mesh.futex_addr())?;
                    }
                }
            }
            self.enter(1, timeout)?;
            if parked {
                mesh.unparked();
            }
            let now = Instant::now();
            self.complete(&mut Some((&mut *handler, &mut *mesh)), now, first)?;
            first = false;
            self.refill()?;
            self.fire_timers(handler, mesh, now);
            let mut ctx = ctx!(self, now, mesh);
            handler.on_turn(&mut ctx);
            let drained = self.graceful_step(handler, mesh, now);
            if let Some(inbox) = &self.report_inbox {
                self.control.answer_report(
                    inbox,
                    handler,
                    self.turns.as_ref().map(TurnClock::histogram),
                );
            }
            self.drop_log.check(self.control.index, &self.counters, now);
            self.control.stats.publish(&mut self.counters);
            self.control.stats.publish_lanes(mesh.lanes());
            if let Some(turns) = &mut self.turns {
                turns.record(now);
            }
            if drained {
                break;
            }
        }
        let limit = self.drain_timeout;
        self.drain(&mut Some((handler, mesh)), limit)
    }

    /// Once per turn: starts a requested graceful drain (the handler's `on_shutdown`), and
    /// returns true once it is over: the handler has handed every goodbye to a send slot, or
    /// the drain's deadline has passed. The loop then stops as on a stop request.
    fn graceful_step<H: Handler>(
        &mut self,
        handler: &mut H,
        mesh: &mut MeshEnd<H::Message>,
        now: Instant,
    ) -> bool {
        let deadline = match self.drain_deadline {
            Some(d) => d,
            None => {
                let Some(d) = self.control.drain_deadline() else {
                    return false;
                };
                self.drain_deadline = Some(d);
                let mut ctx = ctx!(self, now, mesh);
                handler.on_shutdown(&mut ctx);
                d
            }
        };
        if handler.drained() {
            self.graceful = Some(true);
            true
        } else if now >= deadline {
            tracing::warn!(
                shard = self.control.index,
                "drain deadline passed before the handler finished its goodbyes; stopping"
            );
            self.graceful = Some(false);
            true
        } else {
            false
        }
    }

    /// Hands every waiting mesh message to the handler: all control messages, then a batch of
    /// data per peer. Returns whether data was left for the next turn.
    fn deliver_mesh<H: Handler>(
        &mut self,
        handler: &mut H,
        mesh: &mut MeshEnd<H::Message>,
        now: Instant,
        inbox: &mut Vec<(usize, Lane, H::Message)>,
    ) -> bool {
        if !mesh.has_peers() {
            return false;
        }
        let more = mesh.take_inbound(inbox);
        for (from, lane, msg) in inbox.drain(..) {
            self.counters.mesh_received += 1;
            let mut ctx = ctx!(self, now, mesh);
            handler.on_message(from, lane, msg, &mut ctx);
        }
        more
    }

    /// Cancels the multishot receive and the eventfd poll, then keeps turning until every
    /// operation the kernel holds has completed or `limit` passes. With a handler, datagrams
    /// and completions still go to it and its sends are submitted; without one (after a panic)
    /// they are only counted.
    fn drain<H: Handler>(
        &mut self,
        app: &mut App<'_, H>,
        limit: Duration,
    ) -> Result<(), ShardError> {
        self.stopping = true;
        // Peers wake a stopping shard through its eventfd from now on (`ShardControl::ring`).
        self.control.ring_fd.store(-1, Ordering::Release);
        if app.is_some() {
            self.stage_sends()?;
        }
        self.push(opcode::AsyncCancel::new(RECV).build().user_data(CANCEL))?;
        self.push(opcode::AsyncCancel::new(WAKE).build().user_data(CANCEL))?;
        if let Some((_, mesh)) = app {
            // Peers wake a stopping shard through its eventfd.
            mesh.sleep_on_futex(false);
        }
        if self.futex_armed {
            self.push(opcode::AsyncCancel::new(FUTEX).build().user_data(CANCEL))?;
        }
        let deadline = Instant::now() + limit;
        while self.recv.armed() || self.poll_armed || self.futex_armed || self.slots.in_flight() > 0
        {
            let now = Instant::now();
            if now >= deadline {
                tracing::warn!(
                    shard = self.control.index,
                    recv_armed = self.recv.armed(),
                    sends_in_flight = self.slots.in_flight(),
                    "drain timed out; leaking shard buffers rather than freeing them under the kernel"
                );
                return Ok(());
            }
            self.enter(1, Some(deadline - now))?;
            self.complete(app, Instant::now(), false)?;
            if app.is_some() {
                self.stage_sends()?;
            }
        }
        Ok(())
    }

    fn finish<M: Send>(mut self, mesh: &MeshEnd<M>) -> ShardExit {
        self.drop_log.flush(self.control.index, &self.counters);
        let drained = self.release_pools();
        self.control.stats.publish_lanes(mesh.lanes());
        let mut stats = self.counters.snapshot(self.control.index);
        stats.lanes = mesh.lane_stats();
        ShardExit {
            stats,
            drained,
            app: Vec::new(),
            graceful: self.graceful,
        }
    }

    /// Frees the receive pool and send slots if the kernel holds no operation on them (no
    /// receive armed, no send in flight), or leaks them; counts which and publishes the
    /// counters. Runs once; returns whether they were freed.
    fn release_pools(&mut self) -> bool {
        if self.pools_released {
            return self.drained;
        }
        self.pools_released = true;
        self.control.ring_fd.store(-1, Ordering::Release);
        let idle = self.slots.in_flight() == 0 && self.recv.release(&self.ring);
        if idle {
            // The registered socket would stay open until the ring is torn down, which the
            // duplicate of its fd in `ShardControl` delays: let it go now.
            if self.fixed_fd {
                let _ = self.ring.submitter().unregister_files();
            }
            self.counters.pools_drained += 1;
        } else {
            self.recv.leak();
            self.slots.leak();
            self.counters.pools_leaked += 1;
            tracing::warn!(
                shard = self.control.index,
                recv_armed = self.recv.armed(),
                sends_in_flight = self.slots.in_flight(),
                "operations still in the kernel: leaking the shard's buffers and send slots"
            );
            // Ask the kernel to end what it still holds; the memory stays leaked either way.
            if self
                .push(opcode::AsyncCancel::new(RECV).build().user_data(CANCEL))
                .is_ok()
            {
                let _ = self.ring.submit();
            }
        }
        self.drained = idle;
        self.control.stats.publish(&mut self.counters);
        idle
    }

    /// Pushes one SQE, flushing the queue to the kernel once if it is full.
    fn push(&mut self, sqe: squeue::Entry) -> Result<(), ShardError> {
        // SAFETY: every SQE built in this module points only at memory of the receive pool (its
        // header, through the buffer ring its buffers) or of a send slot, and those are freed
        // only once no operation naming them is left in the kernel (`pool.rs`,
        // `release_pools`); otherwise they are leaked. MSG_RING, poll and cancel SQEs point at
        // no memory of ours.
        if unsafe { self.ring.submission().push(&sqe) }.is_ok() {
            return Ok(());
        }
        self.counters.sq_full_flushes += 1;
        self.counters.enter_calls += 1;
        self.ring.submit().map_err(ShardError::Enter)?;
        // SAFETY: as above.
        unsafe { self.ring.submission().push(&sqe) }.map_err(|_| ShardError::SubmissionQueueFull)
    }

    fn arm_recv(&mut self) -> Result<(), ShardError> {
        let hdr = self.recv.recv_hdr();
        let bgid = self.recv.bgid();
        let sqe = if self.fixed_fd {
            opcode::RecvMsgMulti::new(Fixed(0), hdr, bgid).build()
        } else {
            opcode::RecvMsgMulti::new(Fd(self.fd), hdr, bgid).build()
        }
        .user_data(RECV);
        self.push(sqe)?;
        self.recv.set_armed(true);
        Ok(())
    }

    /// Re-arms the receive an empty datagram ended and submits it now, not with the next
    /// turn's enter, so that the socket is read again without waiting for a loop turn.
    fn rearm_inline(&mut self) -> Result<(), ShardError> {
        // The buffers this pass gave back are the kernel's to use at once.
        self.recv.publish();
        self.counters.recv_rearms += 1;
        self.arm_recv()?;
        self.counters.enter_calls += 1;
        match self.ring.submit() {
            Ok(_) => Ok(()),
            // The SQE stays queued and goes with the next enter.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINTR | libc::EBUSY | libc::EAGAIN)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(ShardError::Enter(e)),
        }
    }

    /// Queues an `IORING_OP_MSG_RING` wake for shard `to` (submitted with this turn's enter).
    fn push_msg_ring(&mut self, to: usize, fd: RawFd) -> bool {
        let sqe = opcode::MsgRingData::new(Fd(fd), 0, MSG_WAKE, None)
            .build()
            .flags(squeue::Flags::SKIP_SUCCESS)
            .user_data(MSG_SENT | to as u64);
        self.push(sqe).is_ok()
    }

    /// Arms `IORING_OP_FUTEX_WAIT` on the parked word, expecting "parked": it completes when
    /// a peer claims the wake and sends `FUTEX_WAKE`, or at once if a peer claimed it before
    /// the kernel read the word. Armed once and left armed across sleeps that end otherwise
    /// (a datagram, a timer), so a park costs no SQE unless a futex wake ended the last one.
    fn arm_futex(&mut self, word: *const u32) -> Result<(), ShardError> {
        let sqe = opcode::FutexWait::new(
            word,
            u64::from(crate::ring::Parker::FUTEX_PARKED),
            futex::FUTEX_BITSET_MATCH_ANY,
            futex::FUTEX2_SIZE_U32 | futex::FUTEX2_PRIVATE,
        )
        .build()
        .user_data(FUTEX);
        // The kernel reads the word (an `AtomicU32`, never written by the kernel) when it arms
        // the wait and then only uses its address as the wait's key; the word lives in the
        // mesh end's parker, and the drain cancels the wait before the loop returns.
        self.push(sqe)?;
        self.futex_armed = true;
        Ok(())
    }

    fn arm_poll(&mut self) -> Result<(), ShardError> {
        let sqe = opcode::PollAdd::new(Fd(self.control.waker.as_raw_fd()), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(WAKE);
        self.push(sqe)?;
        self.poll_armed = true;
        Ok(())
    }

    /// Turns staged sends into `sendmsg` SQEs; each slot is in flight from its push on.
    fn stage_sends(&mut self) -> Result<(), ShardError> {
        let mut n = 0;
        while let Some((hdr, token)) = self.slots.staged(n) {
            let sqe = submit::send_sqe(self.fixed_fd, self.fd, hdr, token);
            if let Err(e) = self.push(sqe) {
                self.slots.mark_submitted(n);
                return Err(e);
            }
            n += 1;
        }
        self.slots.mark_submitted(n);
        self.counters.send_gathered = self.slots.gathered();
        Ok(())
    }

    fn enter(&mut self, want: usize, timeout: Option<Duration>) -> Result<(), ShardError> {
        self.counters.enter_calls += 1;
        let result = match timeout {
            Some(t) => {
                let ts = Timespec::from(t);
                let args = SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(want, &args)
            }
            None => self.ring.submitter().submit_and_wait(want),
        };
        match result {
            Ok(_) => Ok(()),
            Err(e) => match e.raw_os_error() {
                // Timer expiry, a signal, or completions waiting to be reaped: all routine.
                Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN) => Ok(()),
                _ => Err(ShardError::Enter(e)),
            },
        }
    }

    /// Handles every waiting completion. A receive an empty datagram ended is re-armed and
    /// submitted at once and what that brings is handled in the same pass (at most
    /// [`MAX_INLINE_REARMS`] times). Entries left by a pass a handler panic interrupted are
    /// handled first.
    fn complete<H: Handler>(
        &mut self,
        app: &mut App<'_, H>,
        now: Instant,
        first: bool,
    ) -> Result<(), ShardError> {
        self.rearm_now = false;
        let mut rearms = 0;
        let mut reaped = false;
        loop {
            // First pass: entries an interrupted pass left (normally none).
            self.handle_batch(app, now, first);
            if reaped {
                if !self.rearm_now || self.recv.armed() || rearms == MAX_INLINE_REARMS {
                    break;
                }
                self.rearm_now = false;
                rearms += 1;
                self.rearm_inline()?;
            }
            self.cqes.clear();
            self.next_cqe = 0;
            self.cqes.extend(self.ring.completion());
            self.counters.completions += self.cqes.len() as u64;
            reaped = true;
        }
        match app {
            Some((_, mesh)) => {
                for to in self.failed_wakes.drain(..) {
                    mesh.wake_directly(to);
                }
            }
            None => self.failed_wakes.clear(),
        }
        match self.fatal.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Handles the entries of `self.cqes` from `self.next_cqe` on.
    #[inline]
    fn handle_batch<H: Handler>(&mut self, app: &mut App<'_, H>, now: Instant, first: bool) {
        while let Some(cqe) = self.cqes.get(self.next_cqe).cloned() {
            self.next_cqe += 1;
            let data = cqe.user_data();
            match data & KIND_MASK {
                RECV => self.on_recv(&cqe, app, now, first),
                SEND => self.on_send(&cqe, app),
                WAKE => self.on_wake(&cqe),
                MSG_WAKE => self.counters.ring_wakes += 1,
                FUTEX => {
                    self.futex_armed = false;
                    // 0: a peer's FUTEX_WAKE; EAGAIN: the word was no longer "parked" when
                    // the kernel armed the wait (a peer's claim came first). Either is a wake;
                    // a cancel (draining) is not.
                    if cqe.result() == 0 || cqe.result() == -libc::EAGAIN {
                        self.counters.futex_wakes += 1;
                    }
                }
                MSG_SENT if cqe.result() < 0 => {
                    self.counters.msg_ring_fallbacks += 1;
                    self.failed_wakes.push((data & 0xffff_ffff) as usize);
                }
                _ => {}
            }
        }
    }

    /// A receive completion. A failure the loop cannot continue after (no multishot receive
    /// on this kernel) is left in `self.fatal`.
    fn on_recv<H: Handler>(
        &mut self,
        cqe: &cqueue::Entry,
        app: &mut App<'_, H>,
        now: Instant,
        first: bool,
    ) {
        let flags = cqe.flags();
        let res = cqe.result();
        if !cqueue::more(flags) {
            self.recv.set_armed(false);
            // Ended with a datagram rather than an error: the kernel ends a multishot recvmsg
            // whenever the socket returns 0 bytes, i.e. on every empty datagram
            // (docs/DECISIONS.md D13). Re-arm before this pass ends.
            self.rearm_now = res >= 0 && !self.stopping;
        }
        if res < 0 {
            match -res {
                libc::ENOBUFS => {
                    self.counters.enobufs += 1;
                    self.recv.ran_dry();
                }
                libc::ECANCELED if self.stopping => {}
                libc::EINVAL if first && self.counters.datagrams_in == 0 => {
                    self.fatal = Some(
                        SetupError::MultishotRecv {
                            source: io::Error::from_raw_os_error(-res),
                            kernel: self.report.kernel.clone(),
                        }
                        .into(),
                    );
                }
                errno => {
                    self.counters.recv_errors += 1;
                    if let Some(suppressed) = self.error_log.allow(Instant::now()) {
                        let e = io::Error::from_raw_os_error(errno);
                        tracing::warn!(
                            shard = self.control.index,
                            suppressed,
                            "receive failed: {e}"
                        );
                    }
                }
            }
            return;
        }
        let Some(held) = cqueue::buffer_select(flags).and_then(|bid| self.recv.take(bid)) else {
            self.counters.recv_errors += 1;
            return;
        };
        match self.recv.datagram(&held, res as usize) {
            Err(()) => self.counters.recv_errors += 1,
            Ok(msg) => {
                let control = cmsg::parse(msg.control_data());
                self.counters.kernel_drops = self.kernel_drops.update(control.drops);
                let payload = msg.payload_data();
                if msg.is_payload_truncated() {
                    // Every datagram the buffer would have held.
                    let n = offload::count(msg.incoming_payload_len() as usize, control.segment);
                    self.counters.recv_truncated += n as u64;
                } else if let Some(segment) =
                    control.segment.filter(|s| usize::from(*s) < payload.len())
                {
                    // The kernel coalesced several datagrams of one sender (GRO): each
                    // `segment` bytes (the last may be shorter) is one, counted one by one and
                    // handed to the handler in one call (`Handler::on_datagrams`, whose
                    // default hands each to `on_datagram`); sends may read the whole buffer in
                    // place.
                    let n = offload::count(payload.len(), Some(segment)) as u64;
                    self.counters.recv_coalesced += 1;
                    match (sockaddr::parse(msg.name_data()), app) {
                        (None, _) => self.counters.recv_bad_address += n,
                        (Some(_), _) if usize::from(segment) > self.max_datagram => {
                            self.counters.recv_truncated += n;
                        }
                        (Some(peer), Some((handler, mesh))) => {
                            self.counters.datagrams_in += n;
                            self.counters.bytes_in += payload.len() as u64;
                            let received = Some(self.recv.received(&held, payload));
                            let mut ctx = ctx!(self, now, mesh, received);
                            let datagrams = Datagrams::new(payload, usize::from(segment));
                            handler.on_datagrams(peer, datagrams, &mut ctx);
                        }
                        (Some(_), None) => self.counters.recv_discarded += n,
                    }
                } else {
                    match (sockaddr::parse(msg.name_data()), app) {
                        (None, _) => self.counters.recv_bad_address += 1,
                        // With GRO's larger buffers, the configured limit is checked here.
                        (Some(_), _) if payload.len() > self.max_datagram => {
                            self.counters.recv_truncated += 1;
                        }
                        (Some(peer), Some((handler, mesh))) => {
                            self.counters.datagrams_in += 1;
                            self.counters.bytes_in += payload.len() as u64;
                            self.counters.recv_empty += u64::from(payload.is_empty());
                            let received = Some(self.recv.received(&held, payload));
                            let mut ctx = ctx!(self, now, mesh, received);
                            handler.on_datagram(peer, payload, &mut ctx);
                        }
                        (Some(_), None) => self.counters.recv_discarded += 1,
                    }
                }
            }
        }
        // Sends read (part of) this buffer in place: it stays out of the kernel's reach
        // until the last of them completes (`on_send`).
        if self.slots.is_lent(&held) {
            self.recv.lend_out(held);
            self.counters.recv_lent += 1;
        } else {
            self.recv.give_back(held);
        }
    }

    fn on_send<H: Handler>(&mut self, cqe: &cqueue::Entry, app: &mut App<'_, H>) {
        let res = cqe.result();
        let sent = self.slots.complete_send(cqe.user_data() & !KIND_MASK);
        // Receive buffers whose last send in place this was go back to the spares.
        while let Some(bid) = self.slots.pop_returned() {
            let returned = self.recv.return_lent(bid);
            self.counters.recv_lent_returned += u64::from(returned);
        }
        let tag = match sent {
            Ok(Sent::One { tag }) => tag,
            Ok(Sent::Group { datagrams, tagged }) => {
                return self.on_group_sent(res, u64::from(datagrams), tagged, app);
            }
            Err(_) => {
                self.counters.send_unknown_completions += 1;
                return;
            }
        };
        let result = if res < 0 {
            self.counters.send_error(-res);
            Err(io::Error::from_raw_os_error(-res))
        } else {
            self.counters.datagrams_out += 1;
            self.counters.bytes_out += res as u64;
            Ok(res as usize)
        };
        if tag != 0
            && let Some((handler, _)) = app
        {
            handler.on_send_complete(tag, result);
        }
    }

    /// The completion of a GSO send (`res`: the bytes of every datagram it carried, or the
    /// errno): counted per datagram, and each tagged datagram reported to the handler with its
    /// own length or the errno. A socket that refuses GSO sends every datagram alone from now
    /// on.
    fn on_group_sent<H: Handler>(&mut self, res: i32, n: u64, tagged: bool, app: &mut App<'_, H>) {
        self.counters.send_coalesced += 1;
        if res < 0 {
            self.counters.send_errors_n(-res, n);
            if offload::refuses_gso(-res) && self.slots.gso() {
                self.counters.gso_fallbacks += 1;
                tracing::warn!(
                    shard = self.control.index,
                    "the socket refused a GSO send ({}); sending every datagram alone from now on",
                    io::Error::from_raw_os_error(-res)
                );
            }
        } else {
            self.counters.datagrams_out += n;
            self.counters.bytes_out += res as u64;
        }
        if tagged && let Some((handler, _)) = app {
            for &(tag, len) in self.slots.group_done().iter().filter(|(tag, _)| *tag != 0) {
                let result = if res < 0 {
                    Err(io::Error::from_raw_os_error(-res))
                } else {
                    Ok(len)
                };
                handler.on_send_complete(tag, result);
            }
        }
        if res < 0 && offload::refuses_gso(-res) {
            self.slots.stop_gso();
        }
    }

    fn on_wake(&mut self, cqe: &cqueue::Entry) {
        if !cqueue::more(cqe.flags()) {
            self.poll_armed = false;
        }
        if cqe.result() >= 0 {
            self.counters.wakes += 1;
            // A failed read leaves the count set; the next poll completion retries it.
            let _ = self.control.waker.try_drain();
        }
    }

    /// Hands recycled buffers to the kernel and re-arms whatever ended.
    fn refill(&mut self) -> Result<(), ShardError> {
        self.recv.publish();
        if !self.recv.armed() && !self.stopping {
            self.counters.recv_rearms += 1;
            self.arm_recv()?;
        }
        if !self.poll_armed && !self.stopping {
            self.arm_poll()?;
        }
        Ok(())
    }

    fn fire_timers<H: Handler>(
        &mut self,
        handler: &mut H,
        mesh: &mut MeshEnd<H::Message>,
        now: Instant,
    ) {
        if self.timers.expire(now, &mut self.fired) == 0 {
            return;
        }
        let mut fired = mem::take(&mut self.fired);
        for (_, token) in fired.drain(..) {
            self.counters.timers_fired += 1;
            let mut ctx = ctx!(self, now, mesh);
            handler.on_timer(token, &mut ctx);
        }
        self.fired = fired;
    }
}
