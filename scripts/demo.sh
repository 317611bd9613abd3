#!/usr/bin/env bash
# The main job on a fresh machine: build in release, start ringwire (echo app) on loopback,
# drive it with the bundled load generator, print throughput and latency, stop the engine
# and print its counters.
#
#   scripts/demo.sh [SECONDS]        (default 5)
#
# Env: SHARDS (default 1), PEERS (default 256), WINDOW (default 64), PORT (default 4500).
# With 2 or more cores the engine is pinned to core 0 and the load generator to core 1.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}
SHARDS=${SHARDS:-1}
PEERS=${PEERS:-256}
WINDOW=${WINDOW:-64}
PORT=${PORT:-4500}
cargo build --release -p ringwire -p ringwire-bench
ncpu=$(nproc)
# Pinned shards get a core each (more are refused): one shard on core 0 beside the load on core
# 1, else the shards float.
if [[ $ncpu -ge 2 && $SHARDS -eq 1 ]]; then
    engine_cores=(--cores 0); load_cores=(--cores 1)
else
    engine_cores=(--no-pin); load_cores=()
fi
log=$(mktemp)
target/release/ringwire serve --bind "127.0.0.1:$PORT" --shards "$SHARDS" "${engine_cores[@]}" --app echo >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 50); do grep -q "listening on" "$log" && break; sleep 0.1; done
if ! grep -q "listening on" "$log"; then
    cat "$log"; echo "demo: ringwire did not start" >&2; exit 1
fi
head -1 "$log"
target/release/ringwire-bench load --target "127.0.0.1:$PORT" --peers "$PEERS" --window "$WINDOW" \
    --duration "$SECS" --warmup 1 "${load_cores[@]}"
kill -INT $pid
wait $pid || true
grep -E "^(final|total)" "$log"
