//! A burst of drops produces a bounded number of log lines, and the lines add up to the
//! counters (one binary per test: it installs the process's global log subscriber).
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Mutex;
use std::time::Instant;

use common::{HANG, os};
use ringwire::kernel::available_or_explain;
use ringwire::{Ctx, Engine, Handler};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// Every drop line seen: `(rejected, kernel_drops)` as logged.
static LINES: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());

struct DropLines;

#[derive(Default)]
struct Fields {
    message: String,
    rejected: u64,
    kernel: u64,
}

impl Visit for Fields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "rejected" => self.rejected = value,
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
            LINES.lock().unwrap().push((f.rejected, f.kernel));
        }
    }
}

/// Refuses every datagram as malformed (a counted drop, `rejected`) and acknowledges it, so
/// that the sender can keep a bounded window in flight.
struct RejectAndAck;

impl Handler for RejectAndAck {
    type Message = ();
    fn on_datagram(&mut self, peer: SocketAddr, _: &[u8], ctx: &mut Ctx<'_, ()>) {
        ctx.reject();
        let _ = ctx.send_to(peer, b"r");
    }
}

#[test]
fn a_burst_of_drops_logs_a_bounded_number_of_lines_that_add_up() {
    if !available_or_explain() {
        return;
    }
    tracing_subscriber::registry().with(DropLines).init();
    const BURST: u64 = 20_000;
    // At most this many in flight: no socket buffer can overflow on them, so every datagram
    // is read and every acknowledgement arrives.
    const WINDOW: u64 = 100;
    let engine = Engine::start(&common::config(1), |_| RejectAndAck).unwrap();
    let started = Instant::now();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(HANG)).unwrap();
    let mut buf = [0u8; 8];
    for _ in 0..BURST / WINDOW {
        for _ in 0..WINDOW {
            client.send_to(b"junk", engine.local_addr()).unwrap();
        }
        for _ in 0..WINDOW {
            client.recv_from(&mut buf).unwrap();
        }
    }
    os::wait_until("the shard to publish its last acknowledgement", || {
        engine.stats()[0].datagrams_out == BURST
    });
    let report = common::shutdown(engine);
    let elapsed = started.elapsed();
    let s = &report.shards[0].stats;
    assert_eq!((s.rejected, s.kernel_drops), (BURST, 0), "{s}");

    let lines = LINES.lock().unwrap().clone();
    let logged: (u64, u64) = lines
        .iter()
        .fold((0, 0), |(r, k), (dr, dk)| (r + dr, k + dk));
    assert_eq!(logged, (BURST, 0), "{lines:?}");
    // At most one line a second while running, and one when the shard stops.
    let bound = elapsed.as_secs() + 2;
    assert!(
        !lines.is_empty() && lines.len() as u64 <= bound,
        "{} lines in {elapsed:?} for {BURST} drops",
        lines.len()
    );
}
