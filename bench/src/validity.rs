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
        }
    }
}

/// The verdict on one load report.
#[must_use]
pub fn verdict(r: &LoadReport) -> Verdict {
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
