//! Replays every committed corpus file of the `config` fuzz target
//! (`shard/fuzz/corpus/config/`) through its body (`shard/fuzz/src/config.rs`), so the target
//! builds on stable in CI and every input that once found a bug stays fixed. The shard's
//! `tests/fuzz_corpus.rs` replays the other targets.
#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

#[path = "../../shard/fuzz/src/config.rs"]
mod config;

#[test]
fn config_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shard/fuzz/corpus/config");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: an empty corpus", dir.display());
    for f in &files {
        let data = std::fs::read(f).unwrap();
        if let Err(panic) = std::panic::catch_unwind(|| config::run(&data)) {
            eprintln!("corpus file config/{} failed", f.display());
            std::panic::resume_unwind(panic);
        }
    }
}
