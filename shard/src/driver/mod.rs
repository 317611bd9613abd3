//! The io_uring driver: the only module that talks to the kernel.
//!
//! A [`Shard`] owns one shard's ring, socket, buffer ring, send slots and timers, and runs the
//! loop until asked to stop. One turn, in order (`docs/ARCHITECTURE.md` has the long form):
//!
//! 1. **Stop check** and **mesh**: hand waiting messages from other shards to the handler,
//!    control lanes first.
//! 2. **Stage**: turn every send the handler queued into a `sendmsg` SQE; wake the shards this
//!    shard messaged, if they are parked.
//! 3. **Park and enter**: one `io_uring_enter` submits the SQEs and waits for a completion or
//!    the next timer deadline. With nothing to do the thread sleeps here and uses no CPU.
//! 4. **Complete**: receives go to the handler and their buffers back to the buffer ring;
//!    sends free their slot and count success or errno; wake-ups drain the eventfd.
//! 5. **Refill**: publish recycled buffers in one store; re-arm the multishot receive if it
//!    ended (ENOBUFS or error), counting the re-arm.
//! 6. **Timers**, `on_turn`, a requested drain, a requested report, and **publish** the
//!    counters (and, at most once a second, a log line for drops since the last one).
#![allow(unsafe_code)]

mod bufring;
mod control;
mod droplog;
mod kernel_drops;
mod probe;
mod sockaddr;
mod socket;
mod steer;
mod turns;

use std::io;
use std::mem;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use io_uring::types::{Fd, Fixed, RecvMsgOut, SubmitArgs, Timespec};
use io_uring::{IoUring, cqueue, opcode, squeue};

pub use control::{ReportError, ReportReplies, ShardControl};
pub use probe::{
    ProbeReport, REQUIRE_IO_URING_ENV, RingMode, SetupError, available_or_explain, create_ring,
    io_uring_required, kernel_release, probe, skip_or_fail,
};
pub use socket::{SocketError, SocketOptions, bind_reuseport_group};
pub use steer::{attach_steering, detach_steering, steering_program};

use self::bufring::BufRing;
use self::droplog::DropLog;
use self::kernel_drops::KernelDrops;
use self::turns::TurnClock;
use crate::config::{ShardConfig, ShardConfigError};
use crate::counters::{Counters, ShardStats};
use crate::handler::{Ctx, Handler};
use crate::mesh::{Lane, MeshEnd};
use crate::ratelimit::LogLimiter;
use crate::sendq::SendSlots;
use crate::timer::Timers;

/// A handler context over the shard's fields (a macro, not a method, so that it borrows only
/// those fields and not the receive buffer the handler is reading).
macro_rules! ctx {
    ($shard:ident, $now:expr, $mesh:expr) => {
        Ctx {
            now: $now,
            shard: $shard.control.index,
            slots: &mut $shard.slots,
            timers: &mut $shard.timers,
            counters: &mut $shard.counters,
            mesh: $mesh,
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
const KIND_MASK: u64 = 0xff << KIND_SHIFT;
const BGID: u16 = 0;
/// Room in each receive buffer for `io_uring_recvmsg_out` ahead of the name and payload.
const RECVMSG_OUT_LEN: usize = 16;

/// Why a shard stopped with an error.
#[derive(Debug, thiserror::Error)]
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
pub struct ShardExit {
    /// Final counters.
    pub stats: ShardStats,
    /// Whether every in-flight operation completed before the drain timeout. When false, the
    /// shard's buffers were leaked rather than freed under the kernel.
    pub drained: bool,
    /// The handler's own counters ([`Handler::counters`]).
    pub app: Vec<(&'static str, u64)>,
    /// Whether a graceful drain ([`ShardControl::request_drain`]) ended this shard, and how:
    /// `Some(true)` when its handler finished its goodbyes ([`Handler::drained`]) before the
    /// deadline, `Some(false)` when the deadline came first; `None` for a plain stop.
    pub graceful: Option<bool>,
}

impl Drop for Shard {
    /// A shard dropped without finishing (its handler panicked, or `run` was never called
    /// after operations were armed) may still have receives and sends in the kernel: leak
    /// their memory rather than free it under them. `finish` empties these fields first.
    fn drop(&mut self) {
        if self.recv_armed || self.slots.in_flight() > 0 {
            mem::forget(self.bufs.take());
            mem::forget(mem::replace(&mut self.slots, SendSlots::new(0, 0)));
        }
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

/// One shard: its ring, socket, buffer ring, send slots, timers and counters. Build it with
/// [`Shard::new`] on the thread that will run it, then call [`Shard::run`].
///
/// Field order is drop order: the ring goes first, so the kernel has released every buffer
/// before the memory behind it is freed.
pub struct Shard {
    ring: IoUring,
    bufs: Option<BufRing>,
    slots: SendSlots,
    send_hdrs: Vec<libc::msghdr>,
    send_iovs: Vec<libc::iovec>,
    recv_hdr: Box<libc::msghdr>,
    /// Kept open for as long as operations may name its fd.
    _socket: UdpSocket,
    fd: RawFd,
    /// The socket is registered as fixed file 0 (saves a file lookup per operation).
    fixed_fd: bool,
    /// Wake parked peers with `MSG_RING` from this ring rather than their eventfd.
    msg_ring_wake: bool,
    /// Targets whose `MSG_RING` wake failed this turn (woken through the eventfd instead).
    failed_wakes: Vec<usize>,
    drain_timeout: Duration,
    control: Arc<ShardControl>,
    timers: Timers,
    counters: Counters,
    cqes: Vec<cqueue::Entry>,
    fired: Vec<(crate::timer::TimerId, u64)>,
    recv_armed: bool,
    poll_armed: bool,
    stopping: bool,
    report: ProbeReport,
    drained: bool,
    error_log: LogLimiter,
    /// The socket's drop count, from the receive path's `SO_RXQ_OVFL` control messages.
    kernel_drops: KernelDrops,
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
        let cq_entries = (config.recv_buffers as usize + config.send_slots)
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
        let buf_len =
            RECVMSG_OUT_LEN + namelen as usize + kernel_drops::CONTROL_LEN + config.max_datagram;
        let mut bufs = BufRing::new(config.recv_buffers, buf_len, BGID).map_err(|source| {
            SetupError::BufRing {
                source,
                kernel: report.kernel.clone(),
            }
        })?;
        bufs.register(&ring).map_err(|source| SetupError::BufRing {
            source,
            kernel: report.kernel.clone(),
        })?;
        // SAFETY: msghdr is plain data; all-zero is a valid empty header.
        let mut recv_hdr: Box<libc::msghdr> = Box::new(unsafe { mem::zeroed() });
        recv_hdr.msg_namelen = namelen;
        recv_hdr.msg_controllen = kernel_drops::CONTROL_LEN;
        // SAFETY: as above.
        let send_hdrs = vec![unsafe { mem::zeroed::<libc::msghdr>() }; config.send_slots];
        let send_iovs = vec![
            libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0
            };
            config.send_slots
        ];
        let fd = socket.as_raw_fd();
        // Registered files exist since 5.1; without them every SQE names the fd itself.
        let fixed_fd = ring.submitter().register_files(&[fd]).is_ok();
        control.ring_fd.store(ring.as_raw_fd(), Ordering::Release);
        let msg_ring_wake = config.wake == crate::config::WakeMechanism::MsgRing && report.msg_ring;
        Ok(Self {
            ring,
            bufs: Some(bufs),
            slots: SendSlots::new(config.send_slots, config.max_datagram),
            send_hdrs,
            send_iovs,
            recv_hdr,
            _socket: socket,
            fd,
            fixed_fd,
            msg_ring_wake,
            failed_wakes: Vec::new(),
            drain_timeout: config.drain_timeout,
            control,
            timers: Timers::new(config.max_timers),
            counters: Counters::default(),
            cqes: Vec::with_capacity(cq_entries as usize),
            fired: Vec::new(),
            recv_armed: false,
            poll_armed: false,
            stopping: false,
            report,
            drained: false,
            error_log: LogLimiter::default(),
            kernel_drops: KernelDrops::default(),
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
                }
            }
            self.enter(1, timeout)?;
            if parked {
                mesh.unparked();
            }
            let now = Instant::now();
            self.complete(handler, mesh, now, first)?;
            first = false;
            self.refill()?;
            self.fire_timers(handler, mesh, now);
            let mut ctx = ctx!(self, now, mesh);
            handler.on_turn(&mut ctx);
            let drained = self.graceful_step(handler, mesh, now);
            self.control
                .answer_report(handler, self.turns.as_ref().map(TurnClock::histogram));
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
        self.drain(handler, mesh, self.drain_timeout)
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
    /// operation the kernel holds has completed or `limit` passes.
    fn drain<H: Handler>(
        &mut self,
        handler: &mut H,
        mesh: &mut MeshEnd<H::Message>,
        limit: Duration,
    ) -> Result<(), ShardError> {
        self.stopping = true;
        self.stage_sends()?;
        self.push(opcode::AsyncCancel::new(RECV).build().user_data(CANCEL))?;
        self.push(opcode::AsyncCancel::new(WAKE).build().user_data(CANCEL))?;
        let deadline = Instant::now() + limit;
        while self.recv_armed || self.poll_armed || self.slots.in_flight() > 0 {
            let now = Instant::now();
            if now >= deadline {
                tracing::warn!(
                    shard = self.control.index,
                    recv_armed = self.recv_armed,
                    sends_in_flight = self.slots.in_flight(),
                    "drain timed out; leaking shard buffers rather than freeing them under the kernel"
                );
                return Ok(());
            }
            self.enter(1, Some(deadline - now))?;
            self.complete(handler, mesh, Instant::now(), false)?;
            self.stage_sends()?;
        }
        self.drained = true;
        Ok(())
    }

    fn finish<M: Send>(mut self, mesh: &MeshEnd<M>) -> ShardExit {
        self.drop_log.flush(self.control.index, &self.counters);
        self.control.stats.publish(&mut self.counters);
        self.control.stats.publish_lanes(mesh.lanes());
        let mut stats = self.counters.snapshot(self.control.index);
        stats.lanes = mesh.lane_stats();
        if self.drained {
            // The ring's own teardown is deferred to a kernel worker and would keep the
            // registered socket (and its port) alive after we return; release it now.
            if self.fixed_fd {
                let _ = self.ring.submitter().unregister_files();
            }
            if let Some(mut bufs) = self.bufs.take()
                && bufs.unregister(&self.ring).is_err()
            {
                mem::forget(bufs);
            }
        } else {
            // The kernel may still own receive buffers or send slots: never free them.
            mem::forget(self.bufs.take());
            mem::forget(mem::replace(&mut self.slots, SendSlots::new(0, 0)));
        }
        ShardExit {
            stats,
            drained: self.drained,
            app: Vec::new(),
            graceful: self.graceful,
        }
    }

    /// Pushes one SQE, flushing the queue to the kernel once if it is full.
    fn push(&mut self, sqe: squeue::Entry) -> Result<(), ShardError> {
        // SAFETY: every SQE built in this module points only at memory owned by `self` (the
        // receive header, send headers/iovecs/slots, the buffer ring) that outlives the
        // operation: the driver drains every operation before freeing, or leaks.
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
        let Some(bufs) = self.bufs.as_ref() else {
            return Ok(());
        };
        let hdr = &raw const *self.recv_hdr;
        let sqe = if self.fixed_fd {
            opcode::RecvMsgMulti::new(Fixed(0), hdr, bufs.bgid()).build()
        } else {
            opcode::RecvMsgMulti::new(Fd(self.fd), hdr, bufs.bgid()).build()
        }
        .user_data(RECV);
        self.push(sqe)?;
        self.recv_armed = true;
        Ok(())
    }

    /// Queues an `IORING_OP_MSG_RING` wake for shard `to` (submitted with this turn's enter).
    fn push_msg_ring(&mut self, to: usize, fd: RawFd) -> bool {
        let sqe = opcode::MsgRingData::new(Fd(fd), 0, MSG_WAKE, None)
            .build()
            .flags(squeue::Flags::SKIP_SUCCESS)
            .user_data(MSG_SENT | to as u64);
        self.push(sqe).is_ok()
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

    /// Turns staged sends into `sendmsg` SQEs.
    fn stage_sends(&mut self) -> Result<(), ShardError> {
        let mut n = 0;
        while let Some(slot) = self.slots.next_staged(n) {
            let i = slot as usize;
            let payload = self.slots.payload(slot);
            let addr = self.slots.addr(slot);
            self.send_iovs[i] = libc::iovec {
                iov_base: payload.as_ptr().cast_mut().cast(),
                iov_len: payload.len(),
            };
            let hdr = &mut self.send_hdrs[i];
            hdr.msg_name = addr.as_ptr().cast_mut().cast();
            hdr.msg_namelen = addr.len();
            hdr.msg_iov = &raw mut self.send_iovs[i];
            hdr.msg_iovlen = 1;
            let hdr = &raw const self.send_hdrs[i];
            let sqe = if self.fixed_fd {
                opcode::SendMsg::new(Fixed(0), hdr).build()
            } else {
                opcode::SendMsg::new(Fd(self.fd), hdr).build()
            }
            .user_data(SEND | u64::from(slot));
            self.push(sqe)?;
            n += 1;
        }
        self.slots.mark_submitted(n);
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

    fn complete<H: Handler>(
        &mut self,
        handler: &mut H,
        mesh: &mut MeshEnd<H::Message>,
        now: Instant,
        first: bool,
    ) -> Result<(), ShardError> {
        let mut cqes = mem::take(&mut self.cqes);
        cqes.extend(self.ring.completion());
        self.counters.completions += cqes.len() as u64;
        let mut result = Ok(());
        for cqe in &cqes {
            let data = cqe.user_data();
            match data & KIND_MASK {
                RECV => {
                    if let Err(e) = self.on_recv(cqe, handler, mesh, now, first) {
                        result = Err(e);
                    }
                }
                SEND => self.on_send(cqe, (data & 0xffff_ffff) as u32, handler),
                WAKE => self.on_wake(cqe),
                MSG_WAKE => self.counters.ring_wakes += 1,
                MSG_SENT if cqe.result() < 0 => {
                    self.counters.msg_ring_fallbacks += 1;
                    self.failed_wakes.push((data & 0xffff_ffff) as usize);
                }
                _ => {}
            }
        }
        for to in self.failed_wakes.drain(..) {
            mesh.wake_directly(to);
        }
        cqes.clear();
        self.cqes = cqes;
        result
    }

    fn on_recv<H: Handler>(
        &mut self,
        cqe: &cqueue::Entry,
        handler: &mut H,
        mesh: &mut MeshEnd<H::Message>,
        now: Instant,
        first: bool,
    ) -> Result<(), ShardError> {
        let flags = cqe.flags();
        if !cqueue::more(flags) {
            self.recv_armed = false;
        }
        let res = cqe.result();
        if res < 0 {
            match -res {
                libc::ENOBUFS => self.counters.enobufs += 1,
                libc::ECANCELED if self.stopping => {}
                libc::EINVAL if first && self.counters.datagrams_in == 0 => {
                    return Err(SetupError::MultishotRecv {
                        source: io::Error::from_raw_os_error(-res),
                        kernel: self.report.kernel.clone(),
                    }
                    .into());
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
            return Ok(());
        }
        let Some(bufs) = self.bufs.as_mut() else {
            return Ok(());
        };
        let Some(bid) = cqueue::buffer_select(flags).filter(|b| bufs.contains(*b)) else {
            self.counters.recv_errors += 1;
            return Ok(());
        };
        let data = bufs.buffer(bid, res as usize);
        match RecvMsgOut::parse(data, &self.recv_hdr) {
            Err(()) => self.counters.recv_errors += 1,
            Ok(msg) if msg.is_payload_truncated() => {
                self.counters.kernel_drops = self.kernel_drops.update(msg.control_data());
                self.counters.recv_truncated += 1;
            }
            Ok(msg) => match sockaddr::parse(msg.name_data()) {
                None => self.counters.recv_bad_address += 1,
                Some(peer) => {
                    self.counters.kernel_drops = self.kernel_drops.update(msg.control_data());
                    let payload = msg.payload_data();
                    self.counters.datagrams_in += 1;
                    self.counters.bytes_in += payload.len() as u64;
                    let mut ctx = ctx!(self, now, mesh);
                    handler.on_datagram(peer, payload, &mut ctx);
                }
            },
        }
        bufs.push(bid);
        Ok(())
    }

    fn on_send<H: Handler>(&mut self, cqe: &cqueue::Entry, slot: u32, handler: &mut H) {
        if !self.slots.contains(slot) {
            return;
        }
        let res = cqe.result();
        let result = if res < 0 {
            self.counters.send_error(-res);
            Err(-res)
        } else {
            self.counters.datagrams_out += 1;
            self.counters.bytes_out += res as u64;
            Ok(res as usize)
        };
        let tag = self.slots.tag(slot);
        self.slots.release(slot);
        if tag != 0 {
            handler.on_send_complete(tag, result);
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
        if let Some(bufs) = self.bufs.as_ref() {
            bufs.publish();
        }
        if !self.recv_armed && !self.stopping {
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
