//! What the kernel says about this process's threads and UDP sockets, read from `/proc`: the
//! observables tests use instead of timing. "Parked" means the kernel shows the thread asleep in a
//! system call, not that it was quiet for a while; "lost on loopback" means a socket's drop
//! counter moved, not that an answer failed to come in time.
//!
//! One file shared by the shard, engine and bench tests (`#[path]`), so it uses only `std`.
#![allow(dead_code)]

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

/// `io_uring_enter`'s number: 426 on every Linux architecture (the io_uring calls were added
/// to the common table).
pub const SYS_IO_URING_ENTER: i64 = 426;

/// Liveness guard for the waits below, never a speed bound: only a hang reaches it.
pub const HANG: Duration = Duration::from_secs(60);

/// Waits, polling every millisecond, until `cond` holds; panics after [`HANG`]. For waiting on
/// an event (a thread parks, a counter reaches a value), never for time to pass.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < HANG,
            "timed out after {HANG:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

/// The calling thread's kernel thread id (`/proc/thread-self` links to `PID/task/TID`).
pub fn current_tid() -> u64 {
    let link = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
    link.file_name()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unexpected /proc/thread-self link {}", link.display()))
}

fn task_file(tid: u64, name: &str) -> String {
    let path = format!("/proc/self/task/{tid}/{name}");
    std::fs::read_to_string(Path::new(&path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// Voluntary plus involuntary context switches of thread `tid` so far. A thread that sleeps
/// and is woken, even for nothing, switches at least once; one that spins is switched out by
/// the scheduler. So a count that does not move means the thread did not run.
pub fn context_switches(tid: u64) -> u64 {
    task_file(tid, "status")
        .lines()
        .filter(|l| {
            l.starts_with("voluntary_ctxt_switches") || l.starts_with("nonvoluntary_ctxt_switches")
        })
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

/// The system call thread `tid` is asleep in, or `None` if it is running (or runnable) or
/// asleep outside a system call. Asleep means scheduler state `S` (interruptible sleep) and a
/// system call number in `/proc/self/task/TID/syscall`, with no context switch while looking,
/// so both describe one continuous sleep.
pub fn asleep_in_syscall(tid: u64) -> Option<i64> {
    let before = context_switches(tid);
    let stat = task_file(tid, "stat");
    // The state follows the command name, which is in parentheses and may itself hold any
    // character: take the first field after the last ')'.
    let state = stat.rsplit_once(')')?.1.split_whitespace().next()?;
    let syscall = task_file(tid, "syscall");
    let nr = syscall.split_whitespace().next()?.parse::<i64>().ok()?;
    (state == "S" && context_switches(tid) == before).then_some(nr)
}

/// Datagrams the kernel dropped on arrival at the UDP sockets bound to local `port` (their
/// receive buffer was full, or memory ran short), summed over every socket on that port
/// (a reuseport group) in `/proc/net/udp` and `/proc/net/udp6`. Counted only while the sockets
/// are open.
pub fn udp_drops(port: u16) -> u64 {
    let mut drops = 0;
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields
                .get(1)
                .and_then(|a| a.rsplit_once(':'))
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) {
                drops += fields
                    .last()
                    .and_then(|d| d.parse::<u64>().ok())
                    .unwrap_or_else(|| panic!("no drops column in {table}: {line}"));
            }
        }
    }
    drops
}
