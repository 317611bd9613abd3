//! Tuning for one shard: buffer counts and sizes, queue depths, socket buffers.
//!
//! With the `serde` feature this is also the `[shard]` table of ringwire's TOML config (and of
//! any config file a gateway embeds it in): the field names are the keys, unknown keys are
//! rejected, and `drain_timeout` is spelled `drain_timeout_ms`.
#![forbid(unsafe_code)]

use std::fmt;
use std::time::Duration;

/// How a shard wakes a parked peer it sent mesh messages to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum WakeMechanism {
    /// A write to the peer's eventfd, which the peer's ring polls.
    Eventfd,
    /// `IORING_OP_MSG_RING` from the sender's own ring, riding on its next `io_uring_enter`
    /// (Linux 5.18+; falls back to the eventfd where the kernel lacks it or a wake fails).
    /// The default: the lowest wake latency in `ringwire-bench rings` (DECISIONS D41).
    #[default]
    MsgRing,
    /// A parked shard sleeps on an `IORING_OP_FUTEX_WAIT` armed on its parked word (Linux
    /// 6.7+), and a peer that claims the wake sends one `FUTEX_WAKE`. Where the kernel lacks
    /// the opcode the shard sleeps as with `eventfd`, and peers wake it through its eventfd.
    Futex,
}

impl fmt::Display for WakeMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WakeMechanism::Eventfd => "eventfd",
            WakeMechanism::MsgRing => "msg_ring",
            WakeMechanism::Futex => "futex",
        })
    }
}

/// Whether a shard uses a UDP offload of its socket: segmentation on send (`UDP_SEGMENT`, GSO)
/// or receive coalescing (`UDP_GRO`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "lowercase")
)]
#[non_exhaustive]
pub enum Offload {
    /// Use it if the socket accepts it at start-up; go on without it otherwise (logged), and
    /// stop using it if the kernel later refuses it on this socket (GSO only; counted).
    #[default]
    Auto,
    /// As `auto`, but a shard whose socket refuses it at start-up does not start.
    On,
    /// Never use it.
    Off,
}

impl fmt::Display for Offload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Offload::Auto => "auto",
            Offload::On => "on",
            Offload::Off => "off",
        })
    }
}

impl std::str::FromStr for Offload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Offload::Auto),
            "on" => Ok(Offload::On),
            "off" => Ok(Offload::Off),
            other => Err(format!(
                "unknown offload setting {other:?}: allowed \"auto\", \"on\" or \"off\""
            )),
        }
    }
}

/// How one shard sizes its rings, buffers and socket. Validated by [`ShardConfig::validate`].
///
/// Start from [`ShardConfig::default`] and set the fields you need (the struct is
/// `#[non_exhaustive]`, so later versions can add settings without breaking you):
///
/// ```
/// let mut shard = ringwire_shard::ShardConfig::default();
/// shard.send_slots = 1024;
/// assert!(shard.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(deny_unknown_fields, default)
)]
#[non_exhaustive]
pub struct ShardConfig {
    /// Buffers in the provided-buffer ring that receives datagrams (a power of two, 1..=32768).
    pub recv_buffers: u32,
    /// Largest datagram payload, in bytes, received or sent (64..=65507). A larger datagram is
    /// counted as truncated and dropped.
    pub max_datagram: usize,
    /// Sends that may be in flight at once (1..=65536); a send beyond that returns
    /// [`SendOutcome::QueueFull`](crate::SendOutcome::QueueFull).
    pub send_slots: usize,
    /// Submission queue entries of the shard's io_uring (a power of two, 8..=32768).
    pub sq_entries: u32,
    /// Requested `SO_RCVBUF` in bytes, up to [`ShardConfig::MAX_SOCKET_BUFFER`] (the kernel
    /// caps it at `net.core.rmem_max`, then doubles it; 0 keeps the system default). The
    /// engine reads back what the kernel granted and warns when it is less.
    pub socket_recv_buffer: usize,
    /// Requested `SO_SNDBUF` in bytes, as `socket_recv_buffer` (`net.core.wmem_max`).
    pub socket_send_buffer: usize,
    /// Most timers the handler may have scheduled at once.
    pub max_timers: usize,
    /// How long a stopping shard waits for its in-flight operations to complete (TOML:
    /// `drain_timeout_ms`).
    #[cfg_attr(feature = "serde", serde(rename = "drain_timeout_ms", with = "millis"))]
    pub drain_timeout: Duration,
    /// How this shard wakes parked peers it sent mesh messages to.
    pub wake: WakeMechanism,
    /// Record every loop turn's duration in a histogram (about 30 KiB per shard, one clock
    /// read per turn), shipped with every report reply and exported by the metrics endpoint.
    pub turn_histogram: bool,
    /// Send consecutive datagrams of one size to one destination, staged in one loop turn, as
    /// one `UDP_SEGMENT` send (GSO): up to 64 datagrams and 65,507 bytes per send.
    pub gso: Offload,
    /// Receive with `UDP_GRO`: the kernel may hand over several datagrams of one sender in one
    /// buffer, which the shard splits by their segment size. Receive buffers then hold a whole
    /// coalesced buffer (64 KiB each, [`ShardConfig::gro_buffers`] of them, in place of
    /// `recv_buffers`).
    pub gro: Offload,
    /// Receive buffers of 64 KiB when GRO is on (a power of two, 1..=32768); each holds up to
    /// 64 coalesced datagrams, or one datagram that was not coalesced.
    pub gro_buffers: u32,
}

impl Default for ShardConfig {
    fn default() -> Self {
        Self {
            recv_buffers: 4096,
            max_datagram: 2048,
            send_slots: 4096,
            sq_entries: 1024,
            socket_recv_buffer: 4 << 20,
            socket_send_buffer: 4 << 20,
            max_timers: 1 << 20,
            drain_timeout: Duration::from_millis(500),
            wake: WakeMechanism::MsgRing,
            turn_histogram: false,
            gso: Offload::Auto,
            gro: Offload::Auto,
            gro_buffers: 512,
        }
    }
}

/// A shard setting outside its allowed range; names the setting and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid shard setting `{key}` = {value}: allowed {allowed}")]
#[non_exhaustive]
pub struct ShardConfigError {
    /// The setting's name, as spelled in the TOML config.
    pub key: &'static str,
    /// The rejected value.
    pub value: String,
    /// What would have been accepted.
    pub allowed: &'static str,
}

impl ShardConfig {
    /// The largest socket buffer request: `setsockopt` takes a C `int`, so larger values would
    /// wrap (4294967296 becomes 0, the kernel's minimum buffer).
    pub const MAX_SOCKET_BUFFER: usize = i32::MAX as usize;

    /// Checks every setting against its allowed range; the first error.
    pub fn validate(&self) -> Result<(), ShardConfigError> {
        match self.check().into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Checks every setting against its allowed range: every error, in key order.
    pub fn check(&self) -> Vec<ShardConfigError> {
        let mut errors = Vec::new();
        let mut err = |key, value: &dyn ToString, allowed| {
            errors.push(ShardConfigError {
                key,
                value: value.to_string(),
                allowed,
            });
        };
        if !(1..=32768).contains(&self.recv_buffers) || !self.recv_buffers.is_power_of_two() {
            err(
                "recv_buffers",
                &self.recv_buffers,
                "a power of two from 1 to 32768",
            );
        }
        if !(64..=65507).contains(&self.max_datagram) {
            err("max_datagram", &self.max_datagram, "64 to 65507");
        }
        if !(1..=65536).contains(&self.send_slots) {
            err("send_slots", &self.send_slots, "1 to 65536");
        }
        if !(8..=32768).contains(&self.sq_entries) || !self.sq_entries.is_power_of_two() {
            err(
                "sq_entries",
                &self.sq_entries,
                "a power of two from 8 to 32768",
            );
        }
        const BUFFER: &str = "0 (the system default) to 2147483647 bytes (a C int; the kernel \
                              caps it at net.core.rmem_max / wmem_max)";
        if self.socket_recv_buffer > Self::MAX_SOCKET_BUFFER {
            err("socket_recv_buffer", &self.socket_recv_buffer, BUFFER);
        }
        if self.socket_send_buffer > Self::MAX_SOCKET_BUFFER {
            err("socket_send_buffer", &self.socket_send_buffer, BUFFER);
        }
        if self.max_timers == 0 {
            err("max_timers", &self.max_timers, "at least 1");
        }
        if !(1..=32768).contains(&self.gro_buffers) || !self.gro_buffers.is_power_of_two() {
            err(
                "gro_buffers",
                &self.gro_buffers,
                "a power of two from 1 to 32768",
            );
        }
        errors
    }
}

/// A [`Duration`] as whole milliseconds (`drain_timeout_ms = 500`).
#[cfg(feature = "serde")]
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_each_bad_value_is_named() {
        assert_eq!(ShardConfig::default().validate(), Ok(()));
        let with = |f: fn(&mut ShardConfig)| {
            let mut c = ShardConfig::default();
            f(&mut c);
            c
        };
        let bad = with(|c| c.recv_buffers = 3);
        assert_eq!(bad.validate().unwrap_err().key, "recv_buffers");
        let bad = with(|c| c.max_datagram = 70000);
        assert_eq!(bad.validate().unwrap_err().key, "max_datagram");
        let bad = with(|c| c.send_slots = 0);
        assert_eq!(bad.validate().unwrap_err().key, "send_slots");
        let bad = with(|c| c.socket_recv_buffer = 1 << 32);
        assert_eq!(bad.validate().unwrap_err().key, "socket_recv_buffer");
        let bad = with(|c| c.socket_send_buffer = 1 << 31);
        assert_eq!(bad.validate().unwrap_err().key, "socket_send_buffer");
        let ok = with(|c| c.socket_recv_buffer = (1 << 31) - 1);
        assert_eq!(ok.validate(), Ok(()));
        let all = with(|c| {
            c.recv_buffers = 3;
            c.send_slots = 0;
            c.max_timers = 0;
        });
        let keys: Vec<&str> = all.check().iter().map(|e| e.key).collect();
        assert_eq!(keys, ["recv_buffers", "send_slots", "max_timers"]);
        let bad = with(|c| c.gro_buffers = 100);
        assert_eq!(bad.validate().unwrap_err().key, "gro_buffers");
        assert_eq!("off".parse::<Offload>(), Ok(Offload::Off));
        assert!("yes".parse::<Offload>().unwrap_err().contains("\"auto\""));
        let bad = with(|c| c.sq_entries = 100);
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("sq_entries")
        );
    }
}
