//! The Linux calls the load generator and the baseline servers share.
//!
//! Unsafe code lives only in [`mmsg`], [`fanout_send`], [`gso`], [`epoll`], [`rlimit`] and
//! [`cpu_time`]; everything else in the crate is safe.

pub mod affinity;
pub mod cpu_time;
pub mod epoll;
pub mod fanout_send;
pub mod gso;
pub mod loadavg;
pub mod mmsg;
pub mod proc_stat;
pub mod rlimit;
pub mod steal;
pub mod stop;
