#!/usr/bin/env bash
# The whole test suite (the README's second command; .ci/run calls exactly this).
# Tests that need io_uring (or another kernel feature) probe first and, where it is missing,
# skip with `skipping: <reason>` on stderr; with RINGWIRE_REQUIRE_IO_URING=1 (.ci/run sets it)
# they fail with that reason instead. docs/TESTING.md describes every part.
set -euo pipefail
cd "$(dirname "$0")/.."
required() { [[ -n "${RINGWIRE_REQUIRE_IO_URING:-}" && "$RINGWIRE_REQUIRE_IO_URING" != 0 ]]; }
# The session interop test's second Noise implementation (Python `noiseprotocol`), in a venv
# under target/. Without it the test skips, unless RINGWIRE_REQUIRE_INTEROP=1 (.ci/run sets it).
if interop_python=$(scripts/interop-venv.sh); then
    export RINGWIRE_INTEROP_PYTHON="$interop_python"
elif [[ -n "${RINGWIRE_REQUIRE_INTEROP:-}" && "$RINGWIRE_REQUIRE_INTEROP" != 0 ]]; then
    echo "RINGWIRE_REQUIRE_INTEROP is set and the interop venv could not be made" >&2
    exit 1
else
    echo "skipping: the Noise interop test (scripts/interop-venv.sh failed)" >&2
fi
# Every example builds, including ones added later.
cargo build --workspace --examples
# Unit, integration and binary tests of every package (examples and benches are built too).
cargo test --workspace --all-targets
# Benchmark smoke run: release build, every server through every phase for about a second;
# asserts only that everything ran and every JSON report parses, never a speed. It needs
# io_uring (ringwire and glommio), so it follows the same probe-or-skip rule as the tests.
# The engine's examples are self-tests too (each starts an engine, drives it, checks the
# answers and stops it); they need io_uring like the smoke run.
if cargo run -q -p ringwire-shard --example probe; then
    for example in echo relay_gateway custom_protocol quic_echo; do
        cargo run -q -p ringwire --example "$example" >/dev/null
    done
    scripts/bench.sh --quick
    # The secure-sessions benchmark's smoke run (the release build above): every phase
    # (encrypted and plaintext echo, handshakes, a flood, idle sessions) for about a second.
    scripts/bench-secure.sh --quick --no-build
elif required; then
    echo "RINGWIRE_REQUIRE_IO_URING is set: the examples and the benchmark smoke run cannot be skipped" >&2
    exit 1
else
    echo "skipping: the examples and the benchmark smoke runs (scripts/bench.sh --quick, scripts/bench-secure.sh --quick) need io_uring" >&2
fi
# The multi-node gateway test: a relay gateway and 3 client nodes in network namespaces, loss
# from nftables, the gateway restarted under traffic, every datagram delivered or counted on
# some node (about 30 s). It skips, saying why, where it is not root or namespaces are not
# allowed (fails instead with RINGWIRE_REQUIRE_NETNS=1).
scripts/netns-test.sh
# The fuzz targets, 10 s each on their committed corpora (the long runs: docs/TESTING.md). The
# corpora are also replayed by `cargo test` above (tests/fuzz_corpus.rs), on stable.
scripts/fuzz.sh --seconds 10
# Doc tests (`--all-targets` does not run them).
cargo test --workspace --doc
# The loom models of the cross-core ring and the park/wake protocol (own target dir).
scripts/loom.sh
