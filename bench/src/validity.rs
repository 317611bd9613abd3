//! Which benchmark cells may be reported, and when a run may be called
//! quiet. `compare`, `report` and `plot` all decide through here.
//!
//! - **Cell validity.** An open-loop cell measures latency from each
//!   datagram's *intended* send time, so a client that fell behind its
//!   schedule puts its own lag into the figures. Such a cell is
//!   [`Verdict::Late`] when the client's p99 lag exceeds
//!   [`MAX_CLIENT_LAG_P99_US`]: its latency is then the client's, and it is
//!   marked invalid instead of reported. An open-loop report written before
//!   the lag percentiles existed has [`Verdict::UnknownLateness`]. Closed
//!   loop has no schedule: its cells are [`Verdict::Valid`] (their client
//!   lag and preemptions are still shown).
//! - **Hypervisor steal.** On a virtual machine the host can take CPU
//!   time from the guest's cores for other guests: the load average does
//!   not see it, the figures do. Any cell, open or closed loop, during
//!   which the hypervisor took more than [`MAX_STEAL_PCT`] of the machine's
//!   CPU time ([`crate::sys::steal`]) is [`Verdict::Stolen`]: its figures
//!   describe the host's other guests as much as the server. Reports
//!   written before steal was recorded are judged without it.
//! - **Quiet machine.** A run is [`Machine::Quiet`] only when the 1-minute
//!   load average before it was below [`QUIET_LOADAVG`]. The load average
//!   during a run includes the benchmark itself (a busy-polling client and
//!   a saturated server keep it near 2), so it is recorded per cell but
//!   judged only before the run.

use crate::load::report::LoadReport;
use crate::sys::loadavg::LoadAvg;
use std::fmt;

/// Largest p99 client lag (us) an open-loop cell may have and be reported.
pub const MAX_CLIENT_LAG_P99_US: f64 = 1000.0;

/// Largest share of the machine's CPU time (%, all CPUs) the hypervisor may take during a cell
/// for the cell to be reported. Undisturbed stretches of the 2-core VM this project is
/// measured on steal 0.1 to 2%; its disturbed ones 3 to 30%.
pub const MAX_STEAL_PCT: f64 = 2.0;

/// A run is quiet only if the 1-minute load average before it was below this.
pub const QUIET_LOADAVG: f64 = 0.3;

/// Whether one cell's figures describe the server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Closed loop, or open loop with the client on time.
    Valid,
    /// Open loop whose client was this many us late at p99 (over the limit).
    Late {
        /// The client's p99 lag, us.
        p99_us: f64,
    },
    /// Open loop, from a report that does not carry the client's lag
    /// percentiles.
    UnknownLateness,
    /// Any loop: the hypervisor took this share (%) of the machine's CPU
    /// time during the cell (over [`MAX_STEAL_PCT`]).
    Stolen {
        /// Steal, % of all CPU time.
        pct: f64,
    },
}

impl Verdict {
    /// True for [`Verdict::Valid`].
    #[must_use]
    pub fn is_valid(self) -> bool {
        self == Verdict::Valid
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Valid => write!(f, "valid"),
            Verdict::Late { p99_us } => write!(
                f,
                "invalid: client {} late at p99 (limit {})",
                duration_us(*p99_us),
                duration_us(MAX_CLIENT_LAG_P99_US)
            ),
            Verdict::UnknownLateness => write!(f, "client lateness unknown"),
            Verdict::Stolen { pct } => write!(
                f,
                "invalid: the hypervisor took {pct:.1}% of the CPU time (limit {MAX_STEAL_PCT}%)"
            ),
        }
    }
}

/// The verdict on one load report.
#[must_use]
pub fn verdict(r: &LoadReport) -> Verdict {
    if let Some(pct) = r.steal_pct.filter(|&p| p > MAX_STEAL_PCT) {
        return Verdict::Stolen { pct };
    }
    if r.rate.is_none() {
        return Verdict::Valid;
    }
    match r.client_lag_us {
        None => Verdict::UnknownLateness,
        Some(lag) if lag.p99 > MAX_CLIENT_LAG_P99_US => Verdict::Late { p99_us: lag.p99 },
        Some(_) => Verdict::Valid,
    }
}

/// How busy the machine was before a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Machine {
    /// 1-minute load average below [`QUIET_LOADAVG`].
    Quiet(LoadAvg),
    /// At or above it.
    Contended(LoadAvg),
    /// Not recorded.
    Unknown,
}

/// Judges the load average taken before a run.
#[must_use]
pub fn machine(before: Option<LoadAvg>) -> Machine {
    match before {
        Some(l) if l.one < QUIET_LOADAVG => Machine::Quiet(l),
        Some(l) => Machine::Contended(l),
        None => Machine::Unknown,
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Machine::Quiet(l) => write!(
                f,
                "quiet (1-minute load average {:.2} before the run, below {QUIET_LOADAVG})",
                l.one
            ),
            Machine::Contended(l) => write!(
                f,
                "contended (1-minute load average {:.2} before the run; quiet needs below {QUIET_LOADAVG})",
                l.one
            ),
            Machine::Unknown => write!(f, "unknown (no load average recorded before the run)"),
        }
    }
}

/// "hypervisor steal 0.4% of the CPU time from start to end" (`None`: not recorded), with
/// a warning when it is over [`MAX_STEAL_PCT`].
#[must_use]
pub fn steal_sentence(pct: Option<f64>) -> Option<String> {
    let pct = pct?;
    Some(if pct > MAX_STEAL_PCT {
        format!(
            "hypervisor steal {pct:.1}% of the CPU time from start to end (over {MAX_STEAL_PCT}%: disturbed)"
        )
    } else {
        format!("hypervisor steal {pct:.1}% of the CPU time from start to end")
    })
}

/// `850 us`, `1.02 ms`, `18.6 ms`: enough digits near the limit that a
/// lag just over it does not read as the limit itself.
#[must_use]
pub fn duration_us(us: f64) -> String {
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} us")
    }
}
