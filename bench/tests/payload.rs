//! The probe codec: what is encoded decodes back, at every size.

use ringwire_bench::load::payload::{FILLER, MIN_LEN, Probe, seq_slot, slot_seq};

#[test]
fn encode_decode_round_trips() {
    let mut buf = vec![0u8; 1500];
    let samples = [0u64, 1, 999, u64::from(u32::MAX) + 7, u64::MAX];
    for (i, &sent_ns) in samples.iter().enumerate() {
        for len in [MIN_LEN, 17, 32, 64, 1472] {
            let p = Probe {
                sent_ns,
                peer: (i as u32) * 1000 + 3,
                seq: slot_seq(i as u16 * 311, u16::MAX - i as u16),
            };
            assert_eq!(p.encode(&mut buf, len), Some(len));
            assert_eq!(Probe::decode(&buf[..len]), Some(p));
            assert!(buf[MIN_LEN..len].iter().all(|&b| b == FILLER));
            assert_eq!(seq_slot(p.seq), i as u16 * 311);
        }
    }
}

#[test]
fn short_input_is_rejected_without_panic() {
    let p = Probe {
        sent_ns: 5,
        peer: 6,
        seq: 7,
    };
    let mut small = [0u8; MIN_LEN - 1];
    assert_eq!(p.encode(&mut small, MIN_LEN - 1), None);
    let mut big = [0u8; 64];
    assert_eq!(
        p.encode(&mut big[..20], 32),
        None,
        "buffer shorter than len"
    );
    for n in 0..MIN_LEN {
        assert_eq!(Probe::decode(&big[..n]), None);
    }
}
