//! `session-echo`: sessions whose every message is sent back on the same session. The session
//! counterpart of `echo`, for the load generator's session mode.
#![forbid(unsafe_code)]

use crate::session::ConnId;
use crate::session::{SessionApp, SessionSend, Sessions};

/// Echoes each session message to its sender.
#[derive(Debug, Default)]
pub struct SessionEcho {
    echoed: u64,
    refused: u64,
}

impl SessionApp for SessionEcho {
    fn on_message(&mut self, conn: ConnId, bytes: &[u8], s: &mut Sessions<'_, '_>) {
        match s.send(conn, bytes) {
            SessionSend::SentNow | SessionSend::Queued => self.echoed += 1,
            _ => self.refused += 1,
        }
    }

    fn counters(&self, out: &mut Vec<(&'static str, u64)>) {
        out.extend([("echoed", self.echoed), ("echo_refused", self.refused)]);
    }
}
