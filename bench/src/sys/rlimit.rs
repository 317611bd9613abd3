//! Raising resource limits in-process: open files for tens of thousands of
//! peer sockets, locked memory for glommio's io_uring.
#![allow(unsafe_code)]

use std::io;

/// A resource this crate raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// `RLIMIT_NOFILE`: open file descriptors.
    OpenFiles,
    /// `RLIMIT_MEMLOCK`: bytes of locked memory.
    LockedMemory,
}

impl Resource {
    fn raw(self) -> libc::__rlimit_resource_t {
        match self {
            Resource::OpenFiles => libc::RLIMIT_NOFILE,
            Resource::LockedMemory => libc::RLIMIT_MEMLOCK,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Resource::OpenFiles => "RLIMIT_NOFILE",
            Resource::LockedMemory => "RLIMIT_MEMLOCK",
        }
    }
}

/// What [`raise`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raised {
    /// The soft limit now in force.
    pub soft: u64,
    /// The hard limit now in force.
    pub hard: u64,
    /// Whether the hard limit itself had to be raised (needs CAP_SYS_RESOURCE).
    pub raised_hard: bool,
}

/// Why a limit could not reach what was needed.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    /// The hard limit is below the need and could not be raised.
    #[error(
        "{name} is {have} (hard limit) but {needed} is needed, and raising the hard limit failed ({cause}); raise it with `ulimit -H` or run with CAP_SYS_RESOURCE"
    )]
    TooLow {
        /// The limit's name.
        name: &'static str,
        /// The hard limit that stays in force.
        have: u64,
        /// What the caller needed.
        needed: u64,
        /// Why setrlimit refused.
        cause: io::Error,
    },
    /// getrlimit itself failed.
    #[error("getrlimit({name}) failed: {cause}")]
    Get {
        /// The limit's name.
        name: &'static str,
        /// The OS error.
        cause: io::Error,
    },
}

fn get(resource: Resource) -> io::Result<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    let rc = unsafe { libc::getrlimit(resource.raw(), &raw mut lim) };
    if rc == 0 {
        Ok(lim)
    } else {
        Err(io::Error::last_os_error())
    }
}

fn set(resource: Resource, lim: libc::rlimit) -> io::Result<()> {
    // SAFETY: `lim` is a valid rlimit read by the kernel during the call.
    let rc = unsafe { libc::setrlimit(resource.raw(), &raw const lim) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The current soft limit.
pub fn current(resource: Resource) -> io::Result<u64> {
    get(resource).map(|l| l.rlim_cur)
}

/// Raises the soft limit of `resource` to its hard limit, and past the hard
/// limit when that is below `needed` and the process may (CAP_SYS_RESOURCE).
///
/// Returns an error naming both numbers when `needed` cannot be reached; the
/// soft limit is then left at the hard limit.
pub fn raise(resource: Resource, needed: u64) -> Result<Raised, LimitError> {
    let name = resource.name();
    let lim = get(resource).map_err(|cause| LimitError::Get { name, cause })?;
    if lim.rlim_max >= needed || lim.rlim_max == libc::RLIM_INFINITY {
        let soft = lim.rlim_max;
        if lim.rlim_cur < soft {
            // Best effort: a soft limit already at `needed` is enough.
            let _ = set(
                resource,
                libc::rlimit {
                    rlim_cur: soft,
                    rlim_max: lim.rlim_max,
                },
            );
        }
        let now = get(resource).map_err(|cause| LimitError::Get { name, cause })?;
        return Ok(Raised {
            soft: now.rlim_cur,
            hard: now.rlim_max,
            raised_hard: false,
        });
    }
    match set(
        resource,
        libc::rlimit {
            rlim_cur: needed,
            rlim_max: needed,
        },
    ) {
        Ok(()) => Ok(Raised {
            soft: needed,
            hard: needed,
            raised_hard: true,
        }),
        Err(cause) => {
            let _ = set(
                resource,
                libc::rlimit {
                    rlim_cur: lim.rlim_max,
                    rlim_max: lim.rlim_max,
                },
            );
            Err(LimitError::TooLow {
                name,
                have: lim.rlim_max,
                needed,
                cause,
            })
        }
    }
}
