//! A burst of drops produces a bounded number of log lines, and the lines add up to the
//! counters (one binary per test: it installs the process's global log subscriber).
#![allow(clippy::unwrap_used)]

mod common;

use std::net::UdpSocket;
use std::sync::Mutex;
use std::time::Instant;

use common::{HANG, os};
use ringwire::Engine;
use ringwire::apps::Echo;
use ringwire_shard::driver::available_or_explain;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// Every drop line seen: `(recv_truncated, kernel_drops)` as logged.
static LINES: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());

struct DropLines;

#[derive(Default)]
struct Fields {
    message: String,
    truncated: u64,
    kernel: u64,
}

impl Visit for Fields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "recv_truncated" => self.truncated = value,
            "kernel_drops" => self.kernel = value,
            _ => {}
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for DropLines {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut f = Fields::default();
        event.record(&mut f);
        if f.message
            .contains("datagrams dropped since the last drop line")
        {
            LINES.lock().unwrap().push((f.truncated, f.kernel));
        }
    }
}

#[test]
fn a_burst_of_drops_logs_a_bounded_number_of_lines_that_add_up() {
    if !available_or_explain() {
        return;
    }
    tracing_subscriber::registry().with(DropLines).init();
    const BURST: u64 = 20_000;
    let mut config = common::config(1);
    config.shard.max_datagram = 64;
    let engine = Engine::start(&config, |_| Echo).unwrap();
    let started = Instant::now();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(HANG)).unwrap();
    // Every one is larger than the shard's buffers: each is a counted drop, in the shard
    // (recv_truncated) or at its socket (kernel_drops).
    for _ in 0..BURST {
        client.send_to(&[7u8; 100], engine.local_addr()).unwrap();
    }
    // A barrier: its echo proves every datagram before it was read or dropped at the socket,
    // and it carries the socket's drop count.
    client.send_to(b"barrier", engine.local_addr()).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = client.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"barrier");
    os::wait_until("the shard to publish the barrier's echo", || {
        engine.stats()[0].datagrams_out == 1
    });
    let report = common::shutdown(engine);
    let elapsed = started.elapsed();
    let s = &report.shards[0].stats;
    assert_eq!(s.recv_truncated + s.kernel_drops, BURST, "{s}");

    let lines = LINES.lock().unwrap().clone();
    let logged: (u64, u64) = lines
        .iter()
        .fold((0, 0), |(t, k), (dt, dk)| (t + dt, k + dk));
    assert_eq!(logged, (s.recv_truncated, s.kernel_drops), "{lines:?}");
    // At most one line a second while running, and one when the shard stops.
    let bound = elapsed.as_secs() + 2;
    assert!(
        !lines.is_empty() && lines.len() as u64 <= bound,
        "{} lines in {elapsed:?} for {BURST} drops",
        lines.len()
    );
}
