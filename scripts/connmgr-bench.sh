#!/usr/bin/env bash
# The connection manager's benchmarks (docs/BENCHMARKS.md, "Connection manager"):
#
#   scripts/connmgr-bench.sh [--no-build] [--addresses K] [--sessions M] [--budget-mib B]
#
# 1. trim turns: `ringwire-bench trim-turns` (sans-IO): the session layer's work per
#    loop turn while a shard holding 1k, 10k and 100k sessions trims a sixth of them.
# 2. a session flood against the memory budget: a fresh
#      ringwire serve --app session-echo --shards 1 (core 0), memory_limit = B MiB
#    (session limit 3/4 of it, shedding above 7/8), flooded by `ringwire-bench flood`
#    (core 1) from K loopback addresses 127.0.x.y (so the per-address limits stay at
#    their defaults: 1024 sessions and 20 new per second per address), M sessions each,
#    sampling the server's RSS; then SIGTERM and the server's final counters.
#
# Prints the commit, kernel and load average before and after each part.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=1 ADDRESSES=200 SESSIONS=100 BUDGET_MIB=16
while [[ $# -gt 0 ]]; do
    case "$1" in
        --no-build) BUILD=0 ;;
        --addresses) ADDRESSES=$2; shift ;;
        --sessions) SESSIONS=$2; shift ;;
        --budget-mib) BUDGET_MIB=$2; shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
if [[ $BUILD == 1 ]]; then
    cargo build --release -p ringwire -p ringwire-bench
fi
SERVER=target/release/ringwire
BENCH=target/release/ringwire-bench
OUT=$(mktemp -d)
SERVER_PID=""
cleanup() { [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null || true; rm -rf "$OUT"; }
trap cleanup EXIT

echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo ' (with uncommitted changes)')"
echo "kernel: $(uname -r), cpus: $(nproc)"

echo "## trim turns"
echo "loadavg before: $(cut -d' ' -f1-3 /proc/loadavg)"
taskset -c 0 "$BENCH" trim-turns
echo "loadavg after: $(cut -d' ' -f1-3 /proc/loadavg)"

echo "## flood: $ADDRESSES addresses x $SESSIONS sessions against a $BUDGET_MIB MiB budget"
limit=$((BUDGET_MIB << 20))
cat >"$OUT/flood.toml" <<TOML
bind = "127.0.0.1:0"
app = "session-echo"
shards = 1
cores = [0]
[sessions.admission]
memory_limit = $limit
memory_session_limit = $((limit / 4 * 3))
memory_shed_above = $((limit / 8 * 7))
TOML
"$SERVER" serve --config "$OUT/flood.toml" >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
addr="" key=""
for _ in $(seq 100); do
    addr=$(grep -o 'listening on [^ ]*' "$OUT/server.log" | awk '{print $3}' || true)
    key=$(grep -o 'session public key [^ ]*' "$OUT/server.log" | awk '{print $4}' || true)
    [[ -n $addr && -n $key ]] && break
    sleep 0.05
done
[[ -n $addr && -n $key ]] || { echo "server did not start:" >&2; cat "$OUT/server.log" >&2; exit 1; }
echo "loadavg before: $(cut -d' ' -f1-3 /proc/loadavg)"
taskset -c 1 "$BENCH" flood --target "$addr" --server-key "$key" --addresses "$ADDRESSES" \
    --sessions "$SESSIONS" --server-pid "$SERVER_PID" --max-s 180
echo "loadavg after: $(cut -d' ' -f1-3 /proc/loadavg)"
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" || true
SERVER_PID=""
echo "server counters (non-zero):"
grep -o 'app shard 0: .*' "$OUT/server.log" | cut -d' ' -f4- | tr ' ' '\n' | grep -v '=0$' | tr '\n' ' '
echo
