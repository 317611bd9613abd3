#!/usr/bin/env bash
# Runs the loom models of the cross-core rings and the park / wake protocol
# (shard/tests/ring_loom.rs). A separate target dir keeps the `--cfg loom` build from
# invalidating the normal one. Extra arguments go to the test binary, e.g. a test name.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="--cfg loom"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/loom}"
exec cargo test -p ringwire-shard --release --test ring_loom -- "$@"
