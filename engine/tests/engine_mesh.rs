//! Two shards exchanging application messages over the mesh; a full data lane does not delay
//! control messages.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{SocketAddr, UdpSocket};

use common::HANG;
use ringwire::WakeMechanism;
use ringwire::kernel::available_or_explain;
use ringwire::mesh::{Lane, MeshSendError};
use ringwire::{Ctx, Engine, Handler};

enum Msg {
    /// Bulk payload, numbered.
    Data(u64),
    /// "I sent you `total` data messages"; travels on the control lane.
    Urgent { total: u64 },
    /// The receiver's answer: how many data messages it had seen when `Urgent` arrived, and
    /// in all.
    Done { before_urgent: u64, received: u64 },
}

#[derive(Default)]
struct Flood {
    client: Option<SocketAddr>,
    sent: u64,
    received: u64,
    before_urgent: Option<u64>,
    expected: Option<u64>,
    next_expected: u64,
    in_order: bool,
}

impl Handler for Flood {
    type Message = Msg;

    fn on_datagram(&mut self, peer: SocketAddr, _payload: &[u8], ctx: &mut Ctx<'_, Msg>) {
        // Whichever shard the client's datagram reaches floods the other one.
        self.client = Some(peer);
        let other = (ctx.shard_index() + 1) % ctx.shards();
        loop {
            match ctx.send_to_shard(other, Msg::Data(self.sent)) {
                Ok(()) => self.sent += 1,
                Err(MeshSendError::Full(_)) => break,
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        // The data lane is full; the control message must still go through, and first.
        assert!(
            ctx.send_control_to_shard(other, Msg::Urgent { total: self.sent })
                .is_ok()
        );
    }

    fn on_message(&mut self, from: usize, lane: Lane, msg: Msg, ctx: &mut Ctx<'_, Msg>) {
        match msg {
            Msg::Data(n) => {
                assert_eq!(lane, Lane::Data);
                if n == self.next_expected {
                    self.next_expected += 1;
                } else {
                    self.in_order = false;
                }
                self.received += 1;
            }
            Msg::Urgent { total } => {
                assert_eq!(lane, Lane::Control);
                self.before_urgent = Some(self.received);
                self.expected = Some(total);
            }
            Msg::Done {
                before_urgent,
                received,
            } => {
                let report = format!("{} {received} {before_urgent}", self.sent);
                let client = self.client.unwrap();
                assert_eq!(
                    ctx.send_to(client, report.as_bytes()),
                    ringwire::SendOutcome::Queued
                );
                return;
            }
        }
        if let (Some(total), Some(before)) = (self.expected, self.before_urgent)
            && self.received == total
        {
            let done = Msg::Done {
                before_urgent: before,
                received: if self.in_order {
                    self.received
                } else {
                    u64::MAX
                },
            };
            assert!(ctx.send_control_to_shard(from, done).is_ok());
        }
    }
}

#[test]
fn full_data_lane_does_not_delay_control_and_messages_arrive_in_order() {
    flood(WakeMechanism::Eventfd);
}

#[test]
fn the_same_with_msg_ring_wakes() {
    flood(WakeMechanism::MsgRing);
}

#[test]
fn the_same_with_futex_wakes() {
    flood(WakeMechanism::Futex);
}

fn flood(wake: WakeMechanism) {
    if !available_or_explain() {
        return;
    }
    let mut config = common::config(2);
    config.shard.wake = wake;
    config.mesh.control_capacity = 8;
    config.mesh.data_capacity = 512;
    config.mesh.data_batch = 32;
    let engine = Engine::start(&config, |_| Flood {
        in_order: true,
        ..Flood::default()
    })
    .unwrap();
    let futex_kernel = engine.probe_report().futex_wait;
    // Both shards parked first, so the flood's first message must wake the receiver.
    common::wait_all_parked(&engine);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(HANG)).unwrap();
    client.send_to(b"go", engine.local_addr()).unwrap();
    let mut buf = [0u8; 128];
    let (n, _) = client.recv_from(&mut buf).unwrap();
    let report = String::from_utf8_lossy(&buf[..n]).into_owned();
    let fields: Vec<u64> = report.split(' ').map(|f| f.parse().unwrap()).collect();
    let (sent, received, before_urgent) = (fields[0], fields[1], fields[2]);
    assert!(sent >= 512, "the flood filled the data lane: {report}");
    assert_eq!(
        received, sent,
        "every data message arrived, in order: {report}"
    );
    assert!(
        before_urgent < sent,
        "the control message overtook the queued data: {report}"
    );
    let report = common::shutdown(engine);
    let lanes: Vec<_> = report
        .shards
        .iter()
        .flat_map(|s| s.stats.lanes.clone())
        .collect();
    let data_full: u64 = lanes.iter().filter(|l| l.lane == 1).map(|l| l.full).sum();
    let wakes: u64 = lanes.iter().map(|l| l.wakes).sum();
    let max_depth = lanes.iter().map(|l| l.max_depth).max().unwrap();
    assert!(data_full >= 1, "{lanes:?}");
    assert!(wakes >= 1, "the parked receiver was woken: {lanes:?}");
    assert_eq!(max_depth, 512);
    let total = report.total();
    assert_eq!(total.mesh_received, sent + 2);
    assert_eq!(total.msg_ring_fallbacks, 0);
    if wake == WakeMechanism::MsgRing {
        assert!(total.ring_wakes >= 1, "woken through MSG_RING: {total}");
    } else {
        assert_eq!(total.ring_wakes, 0);
    }
    // Where the kernel has IORING_OP_FUTEX_WAIT (6.7+), the parked receiver slept on its
    // futex and was woken there; elsewhere it fell back to the eventfd.
    let futex = wake == WakeMechanism::Futex && futex_kernel;
    if futex {
        assert!(total.futex_wakes >= 1, "woken through the futex: {total}");
    } else {
        assert_eq!(total.futex_wakes, 0);
    }
}
