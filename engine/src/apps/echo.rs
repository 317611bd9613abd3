//! `echo`: reflects each datagram to its sender.
#![forbid(unsafe_code)]

use std::net::SocketAddr;

use crate::{Ctx, Handler};

/// Sends every datagram back where it came from, out of its receive buffer without a copy
/// (`Ctx::send_received`; a GRO-coalesced buffer goes back as one GSO send). A refused send is
/// already counted by the shard (`send_queue_full`, `send_too_large`), so nothing else is done
/// with the outcome.
#[derive(Debug, Default)]
pub struct Echo;

impl Handler for Echo {
    type Message = ();

    fn on_datagram(&mut self, peer: SocketAddr, payload: &[u8], ctx: &mut Ctx<'_, ()>) {
        let _counted = ctx.send_received(peer, payload);
    }
}
