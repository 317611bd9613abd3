//! Choosing cores: `auto` means the CPUs in this process's affinity mask, so the engine
//! behaves inside cpusets and containers; an explicit list must stay inside that mask.
#![forbid(unsafe_code)]

/// Which cores shards are pinned to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Cores {
    /// The CPUs in the process's affinity mask (so cpusets and containers are respected).
    #[default]
    Auto,
    /// These CPU ids, in shard order (shard `i` gets `list[i % len]`).
    List(Vec<usize>),
}

/// Why a core selection is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// A listed CPU is not in the process's affinity mask.
    #[error("CPU {core} is outside this process's affinity mask {mask:?}")]
    OutsideMask {
        /// The CPU asked for.
        core: usize,
        /// The CPUs the process may run on.
        mask: Vec<usize>,
    },
    /// The list is empty.
    #[error("the core list is empty")]
    Empty,
    /// The affinity mask could not be read.
    #[error("cannot read this process's CPU affinity mask")]
    NoAffinity,
}

/// The CPU ids this process may run on (`sched_getaffinity`), ascending.
pub fn affinity_mask() -> Result<Vec<usize>, CoreError> {
    let mut ids: Vec<usize> = core_affinity::get_core_ids()
        .ok_or(CoreError::NoAffinity)?
        .into_iter()
        .map(|c| c.id)
        .collect();
    ids.sort_unstable();
    if ids.is_empty() {
        return Err(CoreError::NoAffinity);
    }
    Ok(ids)
}

/// Resolves a selection to concrete CPU ids, checking each against the affinity mask.
pub fn select(cores: &Cores) -> Result<Vec<usize>, CoreError> {
    let mask = affinity_mask()?;
    match cores {
        Cores::Auto => Ok(mask),
        Cores::List(list) if list.is_empty() => Err(CoreError::Empty),
        Cores::List(list) => {
            if let Some(&core) = list.iter().find(|c| !mask.contains(c)) {
                return Err(CoreError::OutsideMask { core, mask });
            }
            Ok(list.clone())
        }
    }
}

/// Pins the calling thread to `core`; false if the kernel refused.
pub fn pin_current(core: usize) -> bool {
    core_affinity::set_for_current(core_affinity::CoreId { id: core })
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Cores {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{self, SeqAccess, Visitor};
        use std::fmt;
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Cores;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"auto\" or a list of CPU ids such as [0, 1]")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Cores, E> {
                if v == "auto" {
                    Ok(Cores::Auto)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Cores, A::Error> {
                let mut list = Vec::new();
                while let Some(id) = seq.next_element::<usize>()? {
                    list.push(id);
                }
                Ok(Cores::List(list))
            }
        }
        d.deserialize_any(V)
    }
}

impl std::str::FromStr for Cores {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "auto" {
            return Ok(Cores::Auto);
        }
        s.split(',')
            .map(|p| {
                p.trim().parse().map_err(|_| {
                    format!("{p:?} is not a CPU id; use \"auto\" or a list like 0,1,2")
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Cores::List)
    }
}
