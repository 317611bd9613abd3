//! How a probe travels inside a session: as the whole message (session
//! echo), or wrapped in a relay `Forward` to the partner and unwrapped from
//! the `Delivered` the partner receives.

use ringwire::apps::relay::RelayMsg;

/// Which server application the sessions talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `--app session-echo`: each message comes back on its own session.
    Echo,
    /// `--app relay`: peers `2k` and `2k + 1` send each other `Forward`s.
    Relay,
    /// `--app relay`, fan-out: session 0 publishes, every other session subscribed to it
    /// and receives each Publish as a `Delivered`.
    Fanout,
}

/// The peer whose probes `peer` receives (and sends its own to).
#[must_use]
pub fn partner(flavor: Flavor, peer: usize) -> usize {
    match flavor {
        Flavor::Echo => peer,
        Flavor::Relay => peer ^ 1,
        Flavor::Fanout => 0,
    }
}

/// A session message as the load generator reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// A probe; `src` is the relay ID it came from (relay only).
    Probe {
        /// Sender's relay ID (`None` for session echo).
        src: Option<u64>,
        /// The probe datagram.
        bytes: &'a [u8],
    },
    /// The relay told this peer its relay ID.
    Welcome(u64),
    /// The relay knew no session by the ID a Forward named (after the partner's session
    /// ended): the probe is lost, and counted.
    Unreachable,
    /// Anything else (malformed messages).
    Other,
}

/// The message that carries `probe` to the server: the probe itself, a
/// `Forward` to relay ID `dst`, or (fan-out) a `Publish` on the sender's own relay ID
/// `dst`, written into `scratch`.
pub fn wrap<'a>(flavor: Flavor, dst: u64, probe: &'a [u8], scratch: &'a mut Vec<u8>) -> &'a [u8] {
    match flavor {
        Flavor::Echo => probe,
        Flavor::Relay => {
            let msg = RelayMsg::Forward {
                dst_conn_id: dst,
                bytes: probe,
            };
            scratch.resize(msg.encoded_len(), 0);
            let n = msg.encode(scratch).unwrap_or(0);
            &scratch[..n]
        }
        Flavor::Fanout => {
            let msg = RelayMsg::Publish {
                publisher_conn_id: dst,
                bytes: probe,
            };
            scratch.resize(msg.encoded_len(), 0);
            let n = msg.encode(scratch).unwrap_or(0);
            &scratch[..n]
        }
    }
}

/// Reads a message a session received.
#[must_use]
pub fn unwrap(flavor: Flavor, msg: &[u8]) -> Incoming<'_> {
    match flavor {
        Flavor::Echo => Incoming::Probe {
            src: None,
            bytes: msg,
        },
        Flavor::Relay | Flavor::Fanout => match RelayMsg::decode(msg) {
            Ok(RelayMsg::Welcome { conn_id }) => Incoming::Welcome(conn_id),
            Ok(RelayMsg::Delivered { src_conn_id, bytes }) => Incoming::Probe {
                src: Some(src_conn_id),
                bytes,
            },
            Ok(RelayMsg::Unreachable { .. }) => Incoming::Unreachable,
            _ => Incoming::Other,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_wrap_is_a_forward_and_delivered_unwraps() {
        let mut scratch = Vec::new();
        let fwd = wrap(Flavor::Relay, 42, b"probe", &mut scratch).to_vec();
        assert_eq!(
            RelayMsg::decode(&fwd),
            Ok(RelayMsg::Forward {
                dst_conn_id: 42,
                bytes: b"probe"
            })
        );
        let delivered = RelayMsg::Delivered {
            src_conn_id: 7,
            bytes: b"probe",
        }
        .to_vec();
        assert_eq!(
            unwrap(Flavor::Relay, &delivered),
            Incoming::Probe {
                src: Some(7),
                bytes: b"probe"
            }
        );
        assert_eq!(
            unwrap(Flavor::Relay, &RelayMsg::Welcome { conn_id: 9 }.to_vec()),
            Incoming::Welcome(9)
        );
        assert_eq!(partner(Flavor::Relay, 4), 5);
        assert_eq!(partner(Flavor::Relay, 5), 4);
        assert_eq!(partner(Flavor::Echo, 5), 5);
        assert_eq!(partner(Flavor::Fanout, 5), 0);
        let publish = wrap(Flavor::Fanout, 42, b"news", &mut scratch).to_vec();
        assert_eq!(
            RelayMsg::decode(&publish),
            Ok(RelayMsg::Publish {
                publisher_conn_id: 42,
                bytes: b"news"
            })
        );
    }

    #[test]
    fn echo_is_transparent() {
        let mut scratch = Vec::new();
        assert_eq!(wrap(Flavor::Echo, 0, b"x", &mut scratch), b"x");
        assert_eq!(
            unwrap(Flavor::Echo, b"x"),
            Incoming::Probe {
                src: None,
                bytes: b"x"
            }
        );
    }
}
