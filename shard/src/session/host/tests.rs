//! The host's own rules, driven without a ring: construction checks here; the loop-level
//! behaviour (timers, carry-over, mesh lanes) below with a hand-built [`Ctx`].
#![allow(clippy::unwrap_used)]

use super::*;

struct Quiet;

impl SessionApp for Quiet {
    fn on_message(&mut self, _conn: ConnId, _bytes: &[u8], _s: &mut Sessions<'_, '_>) {}
}

fn config() -> EndpointConfig {
    EndpointConfig::new([3; 32])
}

#[test]
fn refuses_a_shard_datagram_smaller_than_the_session_layers() {
    let clock = SessionClock::start();
    let needed = config().max_datagram();
    let small = Placement::new(clock, 0, 1, 64);
    let err = SessionHost::new(config(), small, [1; 32], Quiet)
        .err()
        .unwrap();
    assert_eq!(err, HostError::MaxDatagram { shard: 64, needed });
    assert!(err.to_string().contains("shard.max_datagram"), "{err}");
    let exact = Placement::new(clock, 0, 1, needed);
    assert!(SessionHost::new(config(), exact, [1; 32], Quiet).is_ok());
    let bad_index = Placement::new(clock, 2, 2, needed);
    assert!(matches!(
        SessionHost::new(config(), bad_index, [1; 32], Quiet),
        Err(HostError::Endpoint(EndpointError::ShardIndex { .. }))
    ));
}
