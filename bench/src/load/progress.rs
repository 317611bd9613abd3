//! The live one-line progress display on stderr (only when it is a terminal).

use super::worker::LiveCounters;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Waits for `workers` to finish, redrawing a progress line every second
/// when stderr is a terminal. Returns the workers' join results in order.
pub fn wait_with_progress<T>(
    workers: Vec<JoinHandle<T>>,
    live: &[Arc<LiveCounters>],
    measure_start: Instant,
) -> Vec<std::thread::Result<T>> {
    let tty = std::io::stderr().is_terminal();
    let mut last = (Instant::now(), 0u64);
    while !workers.iter().all(JoinHandle::is_finished) {
        std::thread::sleep(Duration::from_millis(if tty { 1000 } else { 20 }));
        if !tty {
            continue;
        }
        let sent: u64 = live.iter().map(|c| c.sent.load(Ordering::Relaxed)).sum();
        let recv: u64 = live
            .iter()
            .map(|c| c.received.load(Ordering::Relaxed))
            .sum();
        let now = Instant::now();
        let rate = (recv - last.1.min(recv)) as f64 / now.duration_since(last.0).as_secs_f64();
        last = (now, recv);
        let phase = if now < measure_start {
            "warm-up"
        } else {
            "measuring"
        };
        eprint!("\r[{phase}] sent {sent}  received {recv}  {rate:.0} resp/s      ");
        let _ = std::io::stderr().flush();
    }
    if tty {
        eprintln!();
    }
    workers.into_iter().map(JoinHandle::join).collect()
}
