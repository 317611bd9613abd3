//! Pinning threads to cores, and parsing `--cores 0,1,2`.

use std::io;

/// Pins the calling thread to `core`, or returns why it could not.
pub fn pin_current(core: usize) -> io::Result<()> {
    let ids = core_affinity::get_core_ids().unwrap_or_default();
    let Some(id) = ids.into_iter().find(|c| c.id == core) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("core {core} is not available to this process"),
        ));
    };
    if core_affinity::set_for_current(id) {
        Ok(())
    } else {
        Err(io::Error::other(format!("could not pin to core {core}")))
    }
}

/// Pins the calling thread to `core`, or says why not on stderr and carries on unpinned.
/// Returns the core it is pinned to.
pub fn pin_or_warn(core: usize) -> Option<usize> {
    match pin_current(core) {
        Ok(()) => Some(core),
        Err(e) => {
            eprintln!(
                "{}: {e}; running unpinned",
                std::thread::current().name().unwrap_or("server")
            );
            None
        }
    }
}

/// The core for worker `index`: the `index`-th entry of `cores` (wrapping), or
/// `index` itself when no list was given.
#[must_use]
pub fn core_for(cores: Option<&[usize]>, index: usize) -> usize {
    match cores {
        Some(list) if !list.is_empty() => list[index % list.len()],
        _ => index,
    }
}
