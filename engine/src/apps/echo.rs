//! `echo`: reflects each datagram to its sender.
#![forbid(unsafe_code)]

use std::net::SocketAddr;

use crate::{Ctx, Datagrams, Handler};

/// Sends every datagram back where it came from, out of its receive buffer without a copy
/// (`Ctx::send_received`). A GRO-coalesced buffer is handled whole (`Handler::on_datagrams`)
/// and goes back as one staged GSO send (`Ctx::send_datagrams`). A refused send is already
/// counted by the shard (`send_queue_full`, `send_too_large`), so nothing else is done with the
/// outcome.
#[derive(Debug, Default)]
pub struct Echo;

impl Handler for Echo {
    type Message = ();

    fn on_datagram(&mut self, peer: SocketAddr, payload: &[u8], ctx: &mut Ctx<'_, ()>) {
        let _counted = ctx.send_received(peer, payload);
    }

    fn on_datagrams(&mut self, peer: SocketAddr, datagrams: Datagrams<'_>, ctx: &mut Ctx<'_, ()>) {
        let _counted = ctx.send_datagrams(peer, datagrams);
    }
}
