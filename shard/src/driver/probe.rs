//! Creating a shard's io_uring and proving at start-up that the kernel has what the loop needs.
//!
//! Every failure names the missing piece and the first kernel that has it, and tells io_uring
//! being *off* (sysctl `kernel.io_uring_disabled`, a seccomp filter, a container policy) apart
//! from io_uring being *old*.
#![forbid(unsafe_code)]

use std::fmt;
use std::io;

use io_uring::{IoUring, Probe, opcode};

/// Why a shard's io_uring could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// `kernel.io_uring_disabled` forbids io_uring for this process.
    #[error(
        "io_uring is disabled on this host: sysctl kernel.io_uring_disabled = {value} \
         (0 allows it; 1 limits it to the group in kernel.io_uring_group; 2 disables it); \
         to run ringwire, set it to 0 (`sysctl -w kernel.io_uring_disabled=0`, and in a file \
         under /etc/sysctl.d/ to keep it), or to 1 with the service's group id in \
         kernel.io_uring_group; kernel {kernel}"
    )]
    Disabled {
        /// The sysctl's value.
        value: String,
        /// The running kernel's release.
        kernel: String,
    },
    /// `io_uring_setup` was refused although the sysctl allows it: a seccomp filter or a
    /// container runtime's policy blocks the system call.
    #[error(
        "io_uring_setup was refused ({source}); kernel.io_uring_disabled allows it, so a seccomp \
         filter or container policy is blocking io_uring (e.g. Docker's default profile): allow \
         io_uring_setup, io_uring_enter and io_uring_register (a seccomp profile that permits \
         them; under systemd, no @io-uring in a SystemCallFilter deny list); kernel {kernel}"
    )]
    Blocked {
        /// What the kernel said.
        source: io::Error,
        /// The running kernel's release.
        kernel: String,
    },
    /// The kernel had no memory for the ring (`ENOMEM`): a memory limit, or memory pressure.
    #[error(
        "cannot create an io_uring: {source}; kernels before 5.12 charge rings to \
         RLIMIT_MEMLOCK (raise it: LimitMEMLOCK=infinity under systemd, `ulimit -l`), newer ones \
         to the memory cgroup (raise MemoryMax, or give the shards fewer buffers and send \
         slots); kernel {kernel}"
    )]
    NoMemory {
        /// What the kernel said.
        source: io::Error,
        /// The running kernel's release.
        kernel: String,
    },
    /// Creating the ring failed for another reason (bad sizes).
    #[error("cannot create an io_uring: {source}; kernel {kernel}")]
    Create {
        /// What the kernel said.
        source: io::Error,
        /// The running kernel's release.
        kernel: String,
    },
    /// An opcode the loop needs is missing.
    #[error(
        "io_uring opcode {name} is not supported by kernel {kernel}; it needs Linux {since} or newer"
    )]
    MissingOpcode {
        /// The opcode.
        name: &'static str,
        /// The first kernel release that has it.
        since: &'static str,
        /// The running kernel's release.
        kernel: String,
    },
    /// A ring feature the loop needs is missing.
    #[error(
        "io_uring feature {name} is not supported by kernel {kernel}; it needs Linux {since} or newer"
    )]
    MissingFeature {
        /// The feature.
        name: &'static str,
        /// The first kernel release that has it.
        since: &'static str,
        /// The running kernel's release.
        kernel: String,
    },
    /// Registering the provided-buffer ring failed.
    #[error(
        "cannot register a provided-buffer ring ({source}); they need Linux 5.19 or newer; kernel {kernel}"
    )]
    BufRing {
        /// What the kernel said.
        source: io::Error,
        /// The running kernel's release.
        kernel: String,
    },
    /// The kernel rejected multishot `recvmsg`.
    #[error(
        "multishot recvmsg was rejected ({source}); it needs Linux 6.0 or newer; kernel {kernel}"
    )]
    MultishotRecv {
        /// What the kernel said.
        source: io::Error,
        /// The running kernel's release.
        kernel: String,
    },
    /// The shard's eventfd could not be created.
    #[error("cannot create the shard's eventfd: {0}")]
    EventFd(#[source] io::Error),
    /// The socket refused a UDP offload that the config demands (`"on"`, not `"auto"`).
    #[error(
        "the socket refused {option} ({source}), which shard.{key} = \"on\" demands (GSO needs \
         Linux 4.18, GRO 5.0; \"auto\" goes on without it); kernel {kernel}"
    )]
    Offload {
        /// The socket option: `UDP_SEGMENT` or `UDP_GRO`.
        option: &'static str,
        /// The setting: `gso` or `gro`.
        key: &'static str,
        /// What the kernel said.
        source: io::Error,
        /// The running kernel's release.
        kernel: String,
    },
}

/// Which task-running mode the ring was created with (best first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RingMode {
    /// `SINGLE_ISSUER | DEFER_TASKRUN | COOP_TASKRUN` (Linux 6.1+).
    DeferTaskrun,
    /// `SINGLE_ISSUER | COOP_TASKRUN` (Linux 6.0+).
    SingleIssuer,
    /// `COOP_TASKRUN` (Linux 5.19+).
    CoopTaskrun,
    /// No task-running flags.
    Plain,
}

impl fmt::Display for RingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RingMode::DeferTaskrun => "single_issuer+defer_taskrun+coop_taskrun",
            RingMode::SingleIssuer => "single_issuer+coop_taskrun",
            RingMode::CoopTaskrun => "coop_taskrun",
            RingMode::Plain => "plain",
        })
    }
}

/// What the start-up probe found.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProbeReport {
    /// The running kernel's release (`/proc/sys/kernel/osrelease`).
    pub kernel: String,
    /// The best ring mode this kernel accepted.
    pub mode: RingMode,
    /// Whether `IORING_OP_MSG_RING` is available (Linux 5.18+), for waking other shards.
    pub msg_ring: bool,
    /// Whether `IORING_OP_FUTEX_WAIT` is available (Linux 6.7+), for sleeping on the parked
    /// word (`shard.wake = "futex"`).
    pub futex_wait: bool,
}

/// The running kernel's release string.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

/// Creates a ring with `sq_entries` submission entries and `cq_entries` completion entries,
/// with the best task-running mode the kernel accepts, and checks every opcode and feature the
/// shard loop uses. Call it on the thread that will use the ring (`SINGLE_ISSUER`).
pub fn create_ring(sq_entries: u32, cq_entries: u32) -> Result<(IoUring, ProbeReport), SetupError> {
    let kernel = kernel_release();
    let modes = [
        RingMode::DeferTaskrun,
        RingMode::SingleIssuer,
        RingMode::CoopTaskrun,
        RingMode::Plain,
    ];
    let mut last_err = None;
    for mode in modes {
        let mut b = IoUring::builder();
        b.setup_cqsize(cq_entries).setup_clamp();
        match mode {
            RingMode::DeferTaskrun => {
                b.setup_single_issuer()
                    .setup_defer_taskrun()
                    .setup_coop_taskrun();
            }
            RingMode::SingleIssuer => {
                b.setup_single_issuer().setup_coop_taskrun();
            }
            RingMode::CoopTaskrun => {
                b.setup_coop_taskrun();
            }
            RingMode::Plain => {}
        }
        match b.build(sq_entries) {
            Ok(ring) => {
                let report = check(&ring, mode, kernel)?;
                return Ok((ring, report));
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last_err = Some(e),
            Err(e) => return Err(diagnose(e, kernel)),
        }
    }
    Err(SetupError::Create {
        source: last_err.unwrap_or_else(|| io::Error::other("no ring mode accepted")),
        kernel,
    })
}

/// Probes the kernel once, with a throwaway ring, so an engine can refuse to start with a clear
/// message before spawning its shards.
///
/// The ring is created and dropped on a short-lived thread of its own: tearing a ring down
/// queues kernel task work for the thread that created it, signalled like a signal, which
/// would interrupt that thread's next blocking call with a timeout (`EINTR`). The caller's
/// thread must not inherit that.
pub fn probe() -> Result<ProbeReport, SetupError> {
    let prober = std::thread::Builder::new()
        .name("ringwire-probe".to_string())
        .spawn(|| create_ring(8, 16).map(|(_, report)| report))
        .map_err(|source| SetupError::Create {
            source,
            kernel: kernel_release(),
        })?;
    prober.join().unwrap_or_else(|_| {
        Err(SetupError::Create {
            source: io::Error::other("the probe thread panicked"),
            kernel: kernel_release(),
        })
    })
}

/// The environment variable that turns every "cannot run here" skip into a failure. CI sets it
/// to `1`: there a test that needs io_uring (or another kernel feature) and cannot run must fail
/// with its reason, never pass having done nothing.
pub const REQUIRE_IO_URING_ENV: &str = "RINGWIRE_REQUIRE_IO_URING";

/// Whether [`REQUIRE_IO_URING_ENV`] is set to anything but empty or `0`.
pub fn io_uring_required() -> bool {
    std::env::var_os(REQUIRE_IO_URING_ENV).is_some_and(|v| !v.is_empty() && v != "0")
}

/// The one way a test says it cannot run on this host. Without [`REQUIRE_IO_URING_ENV`] it
/// writes `skipping: <reason>` to the process's standard error and returns, and the caller
/// returns early. It writes to the stream itself rather than through `eprintln!`, which the
/// test harness captures and shows only for failed tests: a skip is shown on every run. With
/// the variable set it panics with the reason instead.
///
/// # Panics
///
/// When [`io_uring_required`] is true.
pub fn skip_or_fail(reason: impl fmt::Display) {
    if io_uring_required() {
        panic!("{REQUIRE_IO_URING_ENV} is set, so this cannot be skipped: {reason}");
    }
    use std::io::Write;
    // Nothing to do if standard error is gone; the test still skips.
    let _ = writeln!(io::stderr().lock(), "skipping: {reason}");
}

/// For tests and tools that need io_uring: true if it is usable; otherwise explains through
/// [`skip_or_fail`] (prints `skipping: <why>`, or panics under [`REQUIRE_IO_URING_ENV`]) and
/// returns false, so the caller returns early.
pub fn available_or_explain() -> bool {
    match probe() {
        Ok(_) => true,
        Err(e) => {
            skip_or_fail(&e);
            false
        }
    }
}

impl SetupError {
    /// Whether the host must change before a shard can start here: io_uring off (the sysctl,
    /// a seccomp filter) or too old. Starting again unchanged fails the same way, so the
    /// binary exits with status 2 for these (a supervisor's `RestartPreventExitStatus=2`
    /// stops retrying) and 1 for the others (no memory, an eventfd), which may pass.
    pub fn needs_host_change(&self) -> bool {
        matches!(
            self,
            Self::Disabled { .. }
                | Self::Blocked { .. }
                | Self::MissingOpcode { .. }
                | Self::MissingFeature { .. }
                | Self::BufRing { .. }
                | Self::MultishotRecv { .. }
        )
    }
}

fn diagnose(err: io::Error, kernel: String) -> SetupError {
    let sysctl = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .map(|s| s.trim().to_string())
        .ok();
    diagnose_with(err, kernel, sysctl)
}

/// Names why `io_uring_setup` failed with `err`, given the `kernel.io_uring_disabled` value
/// (`None`: the file is absent, a kernel before 6.6).
pub fn diagnose_with(err: io::Error, kernel: String, sysctl: Option<String>) -> SetupError {
    match (err.raw_os_error(), sysctl) {
        (Some(libc::EPERM), Some(value)) if value != "0" => SetupError::Disabled { value, kernel },
        (Some(libc::EPERM | libc::ENOSYS | libc::EACCES), _) => SetupError::Blocked {
            source: err,
            kernel,
        },
        (Some(libc::ENOMEM), _) => SetupError::NoMemory {
            source: err,
            kernel,
        },
        _ => SetupError::Create {
            source: err,
            kernel,
        },
    }
}

fn check(ring: &IoUring, mode: RingMode, kernel: String) -> Result<ProbeReport, SetupError> {
    if !ring.params().is_feature_ext_arg() {
        return Err(SetupError::MissingFeature {
            name: "IORING_FEAT_EXT_ARG (wait with a timeout)",
            since: "5.11",
            kernel,
        });
    }
    if !ring.params().is_feature_nodrop() {
        return Err(SetupError::MissingFeature {
            name: "IORING_FEAT_NODROP (no lost completions)",
            since: "5.5",
            kernel,
        });
    }
    let mut probe = Probe::new();
    if ring.submitter().register_probe(&mut probe).is_err() {
        return Err(SetupError::MissingFeature {
            name: "IORING_REGISTER_PROBE",
            since: "5.6",
            kernel,
        });
    }
    let needed: [(u8, &'static str, &'static str); 4] = [
        (opcode::RecvMsg::CODE, "IORING_OP_RECVMSG", "5.3"),
        (opcode::SendMsg::CODE, "IORING_OP_SENDMSG", "5.3"),
        (
            opcode::PollAdd::CODE,
            "IORING_OP_POLL_ADD (multishot)",
            "5.13",
        ),
        (opcode::AsyncCancel::CODE, "IORING_OP_ASYNC_CANCEL", "5.5"),
    ];
    for (code, name, since) in needed {
        if !probe.is_supported(code) {
            return Err(SetupError::MissingOpcode {
                name,
                since,
                kernel,
            });
        }
    }
    Ok(ProbeReport {
        kernel,
        mode,
        msg_ring: probe.is_supported(opcode::MsgRingData::CODE),
        futex_wait: probe.is_supported(opcode::FutexWait::CODE),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_reports_or_explains() {
        match probe() {
            Ok(report) => {
                assert!(!report.kernel.is_empty());
                println!("io_uring mode {} on kernel {}", report.mode, report.kernel);
            }
            // A host without io_uring must still get a message naming the cause.
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains("kernel"));
                skip_or_fail(msg);
            }
        }
    }

    fn diagnosed(errno: i32, sysctl: Option<&str>) -> SetupError {
        diagnose_with(
            io::Error::from_raw_os_error(errno),
            "6.1.0".to_string(),
            sysctl.map(str::to_string),
        )
    }

    /// `kernel.io_uring_disabled = 2` (or 1 without the group): the message names the sysctl,
    /// its value and the command that allows io_uring again; the host must change.
    #[test]
    fn the_sysctl_refusal_names_the_sysctl_and_the_fix() {
        for value in ["1", "2"] {
            let e = diagnosed(libc::EPERM, Some(value));
            assert!(matches!(e, SetupError::Disabled { .. }), "{e:?}");
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("kernel.io_uring_disabled = {value}")),
                "{msg}"
            );
            assert!(
                msg.contains("sysctl -w kernel.io_uring_disabled=0"),
                "{msg}"
            );
            assert!(msg.contains("kernel.io_uring_group"), "{msg}");
            assert!(e.needs_host_change());
        }
    }

    /// EPERM with the sysctl allowing io_uring (or absent) is a filter: named, with the system
    /// calls to allow.
    #[test]
    fn a_filtered_setup_names_the_filter_and_the_calls_to_allow() {
        for sysctl in [Some("0"), None] {
            let e = diagnosed(libc::EPERM, sysctl);
            assert!(matches!(e, SetupError::Blocked { .. }), "{e:?}");
            let msg = e.to_string();
            assert!(msg.contains("seccomp"), "{msg}");
            assert!(msg.contains("allow io_uring_setup, io_uring_enter and io_uring_register"));
            assert!(e.needs_host_change());
        }
    }

    /// ENOMEM names both memory limits that charge rings; it may pass on a retry.
    #[test]
    fn no_memory_names_the_limits() {
        let e = diagnosed(libc::ENOMEM, Some("0"));
        assert!(matches!(e, SetupError::NoMemory { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains("RLIMIT_MEMLOCK") && msg.contains("memory cgroup"),
            "{msg}"
        );
        assert!(!e.needs_host_change());
        assert!(!diagnosed(libc::EINVAL, Some("0")).needs_host_change());
    }
}
