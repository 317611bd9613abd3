#!/usr/bin/env bash
# The whole test suite (the README's second command; .ci/run calls exactly this).
# Tests that need io_uring probe first and skip with a printed reason when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-targets
# Benchmark smoke run: release build, every server through every phase for about a second;
# asserts only that everything ran and every JSON report parses, never a speed.
scripts/bench.sh --quick
cargo test --workspace --doc
# The loom models of the cross-core ring and the park/wake protocol (own target dir).
scripts/loom.sh
