//! Hooks for the binary's own tests, compiled only with the `test-hooks` feature (which the
//! package's dev-dependency on itself turns on for `cargo test`; a plain or release build has
//! none of this).
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use ringwire::mesh::Lane;
use ringwire::{Ctx, FactoryError, Handler, ReportPage, ReportRequest, ShardInfo};

/// Wraps every handler the factory builds in [`PanicOn`] with `trigger`.
pub fn wrap<F, H>(
    factory: F,
    trigger: Option<Vec<u8>>,
) -> impl Fn(ShardInfo) -> Result<PanicOn<H>, FactoryError> + Send + Sync + 'static
where
    F: Fn(ShardInfo) -> Result<H, FactoryError> + Send + Sync + 'static,
    H: Handler,
{
    let trigger: Option<Arc<[u8]>> = trigger.map(Into::into);
    move |info| {
        Ok(PanicOn {
            inner: factory(info)?,
            trigger: trigger.clone(),
        })
    }
}

/// A handler that behaves like `inner` but panics on a datagram equal to `trigger`.
pub struct PanicOn<H> {
    inner: H,
    trigger: Option<Arc<[u8]>>,
}

impl<H: Handler> Handler for PanicOn<H> {
    type Message = H::Message;

    fn on_datagram(&mut self, peer: SocketAddr, payload: &[u8], ctx: &mut Ctx<'_, H::Message>) {
        if self.trigger.as_deref() == Some(payload) {
            panic!(
                "test hook: datagram {:?} on shard {}",
                String::from_utf8_lossy(payload),
                ctx.shard_index()
            );
        }
        self.inner.on_datagram(peer, payload, ctx);
    }

    fn on_message(
        &mut self,
        from: usize,
        lane: Lane,
        msg: H::Message,
        ctx: &mut Ctx<'_, H::Message>,
    ) {
        self.inner.on_message(from, lane, msg, ctx);
    }

    fn on_timer(&mut self, token: u64, ctx: &mut Ctx<'_, H::Message>) {
        self.inner.on_timer(token, ctx);
    }

    fn on_send_complete(&mut self, tag: u64, result: std::io::Result<usize>) {
        self.inner.on_send_complete(tag, result);
    }

    fn counters(&self, out: &mut Vec<(&'static str, u64)>) {
        self.inner.counters(out);
    }

    fn report(&self, request: &ReportRequest, page: &mut ReportPage) -> Option<u64> {
        self.inner.report(request, page)
    }

    fn on_turn(&mut self, ctx: &mut Ctx<'_, H::Message>) {
        self.inner.on_turn(ctx);
    }

    fn on_start(&mut self, ctx: &mut Ctx<'_, H::Message>) {
        self.inner.on_start(ctx);
    }

    fn on_shutdown(&mut self, ctx: &mut Ctx<'_, H::Message>) {
        self.inner.on_shutdown(ctx);
    }

    fn drained(&self) -> bool {
        self.inner.drained()
    }
}
