//! Determinism of the simulator (the size of an idle session: `session_memory.rs`).
//! Deterministic: every time is virtual (seeded simulator, no wall clock).
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use common::*;

#[test]
fn same_seed_same_trace() {
    fn run(seed: u64) -> Vec<ringwire_shard::session::sim::TraceEntry> {
        let faults = FaultConfig {
            loss: 0.1,
            duplicate: 0.05,
            reorder: 0.1,
            corrupt: 0.02,
            jitter: Duration::from_millis(5),
            ..FaultConfig::default()
        };
        let mut sim = Sim::new(seed, faults);
        let s = sim.add_node(addr(2, 2000), 2, cfg());
        let clients: Vec<usize> = (0..4)
            .map(|i| sim.add_node(addr(10 + i, 1000), 2, cfg()))
            .collect();
        let conns: Vec<_> = clients
            .iter()
            .map(|&c| (c, sim.connect(c, sim.addr(s)).unwrap()))
            .collect();
        for round in 0..50u32 {
            sim.run_for(Duration::from_millis(200));
            for &(c, conn) in &conns {
                let _ = sim.send(c, conn, &round.to_be_bytes());
            }
        }
        sim.run_for(Duration::from_secs(60));
        sim.trace().to_vec()
    }
    let a = run(7);
    assert!(a.len() > 100, "a busy trace: {}", a.len());
    assert_eq!(a, run(7));
    assert_ne!(a, run(8));
}
