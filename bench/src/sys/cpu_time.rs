//! CPU time and involuntary context switches of the calling thread, from
//! `getrusage(RUSAGE_THREAD)`.
#![allow(unsafe_code)]

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// User and system CPU time consumed by one thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuTime {
    /// Seconds in user mode.
    pub user_s: f64,
    /// Seconds in the kernel on the thread's behalf.
    pub sys_s: f64,
}

impl CpuTime {
    /// User plus system seconds.
    #[must_use]
    pub fn total_s(&self) -> f64 {
        self.user_s + self.sys_s
    }

    /// Sum of two threads' times.
    #[must_use]
    pub fn plus(self, other: CpuTime) -> CpuTime {
        CpuTime {
            user_s: self.user_s + other.user_s,
            sys_s: self.sys_s + other.sys_s,
        }
    }
}

fn timeval_to_s(tv: libc::timeval) -> f64 {
    let micros = u64::try_from(tv.tv_usec).unwrap_or(0);
    let secs = u64::try_from(tv.tv_sec).unwrap_or(0);
    (Duration::from_secs(secs) + Duration::from_micros(micros)).as_secs_f64()
}

/// `getrusage(RUSAGE_THREAD)` of the calling thread (`None` if it fails).
fn thread_usage() -> Option<libc::rusage> {
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable `rusage` for the duration of the
    // call; RUSAGE_THREAD is supported on Linux since 2.6.26.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &raw mut usage) };
    (rc == 0).then_some(usage)
}

/// CPU time the calling thread has used so far.
#[must_use]
pub fn current_thread() -> CpuTime {
    thread_usage().map_or(CpuTime::default(), |usage| CpuTime {
        user_s: timeval_to_s(usage.ru_utime),
        sys_s: timeval_to_s(usage.ru_stime),
    })
}

/// How many times so far the kernel took the CPU away from the calling
/// thread while it could still run (involuntary context switches). A
/// pinned, busy-polling thread on an otherwise idle core stays near zero.
#[must_use]
pub fn involuntary_switches() -> Option<u64> {
    thread_usage().and_then(|usage| u64::try_from(usage.ru_nivcsw).ok())
}

/// Clock ticks per second, the unit of `utime`/`stime` in `/proc/*/stat`.
#[must_use]
pub fn clock_ticks_per_s() -> f64 {
    // SAFETY: sysconf only reads a configuration value; _SC_CLK_TCK is always valid.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// CPU time the calling thread has used so far, in nanoseconds
/// (`clock_gettime(CLOCK_THREAD_CPUTIME_ID)`: nanosecond resolution, for costs
/// of a few microseconds that `getrusage`'s microseconds would round away).
#[must_use]
pub fn current_thread_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable `timespec` for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
    if rc != 0 {
        return 0;
    }
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}
