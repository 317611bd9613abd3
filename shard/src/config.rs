//! Tuning for one shard: buffer counts and sizes, queue depths, socket buffers.
#![forbid(unsafe_code)]

use std::time::Duration;

/// How one shard sizes its rings, buffers and socket. Validated by [`ShardConfig::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Requested `SO_RCVBUF` in bytes (the kernel may clamp it; 0 keeps the system default).
    pub socket_recv_buffer: usize,
    /// Requested `SO_SNDBUF` in bytes (the kernel may clamp it; 0 keeps the system default).
    pub socket_send_buffer: usize,
    /// Most timers the handler may have scheduled at once.
    pub max_timers: usize,
    /// How long a stopping shard waits for its in-flight operations to complete.
    pub drain_timeout: Duration,
    /// Wake parked shards with `IORING_OP_MSG_RING` from this shard's own ring (where the
    /// kernel has it) instead of writing their eventfd.
    pub msg_ring_wake: bool,
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
            msg_ring_wake: false,
        }
    }
}

/// A shard setting outside its allowed range; names the setting and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid shard setting `{key}` = {value}: allowed {allowed}")]
pub struct ShardConfigError {
    /// The setting's name, as spelled in the TOML config.
    pub key: &'static str,
    /// The rejected value.
    pub value: String,
    /// What would have been accepted.
    pub allowed: &'static str,
}

impl ShardConfig {
    /// Checks every setting against its allowed range.
    pub fn validate(&self) -> Result<(), ShardConfigError> {
        let err = |key, value: &dyn ToString, allowed| ShardConfigError {
            key,
            value: value.to_string(),
            allowed,
        };
        if !(1..=32768).contains(&self.recv_buffers) || !self.recv_buffers.is_power_of_two() {
            return Err(err(
                "recv_buffers",
                &self.recv_buffers,
                "a power of two from 1 to 32768",
            ));
        }
        if !(64..=65507).contains(&self.max_datagram) {
            return Err(err("max_datagram", &self.max_datagram, "64 to 65507"));
        }
        if !(1..=65536).contains(&self.send_slots) {
            return Err(err("send_slots", &self.send_slots, "1 to 65536"));
        }
        if !(8..=32768).contains(&self.sq_entries) || !self.sq_entries.is_power_of_two() {
            return Err(err(
                "sq_entries",
                &self.sq_entries,
                "a power of two from 8 to 32768",
            ));
        }
        if self.max_timers == 0 {
            return Err(err("max_timers", &self.max_timers, "at least 1"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_each_bad_value_is_named() {
        assert_eq!(ShardConfig::default().validate(), Ok(()));
        let bad = ShardConfig {
            recv_buffers: 3,
            ..ShardConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().key, "recv_buffers");
        let bad = ShardConfig {
            max_datagram: 70000,
            ..ShardConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().key, "max_datagram");
        let bad = ShardConfig {
            send_slots: 0,
            ..ShardConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().key, "send_slots");
        let bad = ShardConfig {
            sq_entries: 100,
            ..ShardConfig::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("sq_entries")
        );
    }
}
