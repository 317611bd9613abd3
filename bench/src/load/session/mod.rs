//! Session traffic for `load --mode session|relay`: each peer socket carries
//! one session of a client-side sans-IO `Endpoint` (one per worker), probes
//! travel as session messages ([`codec`]), and the same closed and open
//! loops as raw echo drive them through [`io::SessionIo`], after
//! [`handshake`] has opened every session.

pub mod codec;
pub mod handshake;
pub mod io;

pub use codec::Flavor;
pub use handshake::HandshakeStats;
pub use io::{ClientTuning, SessionIo};
