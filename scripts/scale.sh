#!/usr/bin/env bash
# How ringwire's session server scales with the number of sessions.
#
#   scripts/scale.sh [--quick] [--out DIR] [--no-build]
#
# For each session count N (default 1, 1000, 10000 and the most the file
# descriptor limit allows; --quick: 1, 100, 1000) a fresh
#   target/release/ringwire serve --config $OUT/loopback.toml --app session-echo --shards 1 --cores $SERVER_CORE
# is started and driven by
#   ringwire-bench load --mode session --peers N --cores $LOAD_CORE --rate $RATE
# (one session per peer socket; open loop at a fixed, moderate rate so the
# server's CPU per request is comparable across N). While the load runs, the
# script watches its stderr markers and samples the server:
#   load: sessions ready  -> VmRSS from /proc/PID/status (N sessions, idle)
#   load: measuring       -> utime+stime from /proc/PID/stat
#   load: done            -> utime+stime again
# and reports per N: server CPU us per request (CPU delta / requests received
# in the measured window), RSS with N idle sessions, bytes per session
# ((RSS_N - RSS_1) / (N - 1), and against the previous N), handshake phase,
# latency p50/p99, the client's lag behind its schedule and the load average
# before and after (`ringwire-bench scale-report`: a row whose client was
# over 1 ms late at p99 keeps its CPU and memory but not its latency).
# Before the first N it waits up to $QUIET_WAIT s (300; quick 0) for the
# 1-minute load average to fall below 0.3 (`ringwire-bench wait-quiet`);
# the page calls the run quiet only if it was.
# Writes docs/BENCHMARKS-scale.md (--quick: $OUT/BENCHMARKS-scale.md) and
# $OUT/scale.json, plus each run's load JSON and server log, and prints the
# table. --quick: small N and short runs; asserts only that every run
# exited 0, sent something and every JSON parses.
#
# Environment: SERVER_CORE (0), LOAD_CORE (1), RATE (20000; quick 5000),
# DURATION (5; quick 1), WARMUP (1; quick 0.3), SIZES (space separated),
# QUIET_WAIT, NOTE (first paragraph of the page).
set -euo pipefail

cd "$(dirname "$0")/.."

QUICK=0
BUILD=1
OUT=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --no-build) BUILD=0 ;;
        --out) OUT="$2"; shift ;;
        -h|--help) sed -n '2,33p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

SERVER_CORE=${SERVER_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
# Each session is a peer socket of the load generator; it needs
# peers + threads + 64 descriptors, and cannot go past the hard limit.
HARD_NOFILE=$(ulimit -Hn)
if [[ $HARD_NOFILE == unlimited ]]; then MAX_N=100000; else MAX_N=$(( (HARD_NOFILE - 100) / 500 * 500 )); fi
(( MAX_N > 100000 )) && MAX_N=100000
if [[ $QUICK == 1 ]]; then
    SIZES=${SIZES:-"1 100 1000"}
    RATE=${RATE:-5000}
    DURATION=${DURATION:-1}
    WARMUP=${WARMUP:-0.3}
    QUIET_WAIT=${QUIET_WAIT:-0}
else
    SIZES=${SIZES:-"1 1000 10000 $MAX_N"}
    RATE=${RATE:-20000}
    DURATION=${DURATION:-5}
    WARMUP=${WARMUP:-1}
    QUIET_WAIT=${QUIET_WAIT:-300}
fi
OUT=${OUT:-bench-out/scale-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"

if [[ $BUILD == 1 ]]; then
    cargo build --release -p ringwire -p ringwire-bench
fi
SERVER=target/release/ringwire
LOAD=target/release/ringwire-bench
[[ -x $SERVER && -x $LOAD ]] || { echo "build first: cargo build --release -p ringwire -p ringwire-bench" >&2; exit 1; }

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- . ':!docs/BENCHMARKS*.md' ':!docs/bench-latency.svg' 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "kernel: $(uname -r)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') x $(nproc)"
    echo "nofile hard limit: $HARD_NOFILE (largest N: $MAX_N)"
    echo "sizes: $SIZES  rate: $RATE/s  duration: ${DURATION}s  warmup: ${WARMUP}s"
} | tee "$OUT/machine.txt"
"$LOAD" wait-quiet --max-s "$QUIET_WAIT"
cp /proc/loadavg "$OUT/loadavg.start"
echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"

SERVER_PID=""
cleanup() { [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null || true; }
trap cleanup EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# Every load-generator session comes from 127.0.0.1: the per-address admission limits (1024
# sessions, 20 new per second) would refuse nearly all of them, so they are raised here; the
# shard, node and memory limits stay at their defaults (docs/CONFIG.md).
cat >"$OUT/loopback.toml" <<'TOML'
[sessions.admission]
max_sessions_per_prefix = 1000000
new_sessions_per_prefix_per_second = 1000000
new_sessions_per_prefix_burst = 1000000
TOML

for N in $SIZES; do
    log="$OUT/server.$N.log"
    "$SERVER" serve --config "$OUT/loopback.toml" --app session-echo --shards 1 --cores "$SERVER_CORE" --bind 127.0.0.1:0 >"$log" 2>&1 &
    SERVER_PID=$!
    addr=""
    for _ in $(seq 100); do
        addr=$(grep -o 'listening on [^ ]*' "$log" | awk '{print $3}' || true)
        [[ -n $addr ]] && break
        sleep 0.05
    done
    [[ -n $addr ]] || { echo "server did not start:" >&2; cat "$log" >&2; exit 1; }
    # Sessions are Noise-authenticated: the client needs the server's static public key,
    # which the binary prints at start.
    key=$(grep -o 'session public key [^ ]*' "$log" | awk '{print $4}' || true)
    [[ -n $key ]] || { echo "server printed no session public key:" >&2; cat "$log" >&2; exit 1; }
    rss_empty=$(rss_kib "$SERVER_PID")

    err="$OUT/load.$N.stderr"
    "$LOAD" load --mode session --target "$addr" --server-key "$key" --peers "$N" --cores "$LOAD_CORE" \
        --rate "$RATE" --duration "$DURATION" --warmup "$WARMUP" --poll block \
        --timeout-ms 1000 --json "$OUT/load.$N.json" >"$OUT/load.$N.txt" 2>"$err" &
    load_pid=$!
    rss_idle="" cpu0="" cpu1=""
    while kill -0 "$load_pid" 2>/dev/null; do
        if [[ -z $rss_idle ]] && grep -q '^load: sessions ready' "$err"; then rss_idle=$(rss_kib "$SERVER_PID"); fi
        if [[ -z $cpu0 ]] && grep -q '^load: measuring' "$err"; then cpu0=$(cpu_ticks "$SERVER_PID"); fi
        if [[ -z $cpu1 ]] && grep -q '^load: done' "$err"; then cpu1=$(cpu_ticks "$SERVER_PID"); fi
        sleep 0.02
    done
    if ! wait "$load_pid"; then
        echo "load with $N sessions failed:" >&2; cat "$err" "$OUT/load.$N.txt" >&2; exit 1
    fi
    [[ -n $cpu1 ]] || cpu1=$(cpu_ticks "$SERVER_PID")
    cat "$OUT/load.$N.txt"
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
    echo "{\"n\": $N, \"rss_empty_kib\": $rss_empty, \"rss_idle_kib\": ${rss_idle:-null}, \"cpu_ticks\": $(( ${cpu1:-0} - ${cpu0:-0} )), \"measured\": $([[ -n $cpu0 && -n $cpu1 ]] && echo true || echo false)}" >"$OUT/server.$N.json"
done

cp /proc/loadavg "$OUT/loadavg.end"
echo "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"

if [[ $QUICK == 1 ]]; then PAGE=$OUT/BENCHMARKS-scale.md; else PAGE=docs/BENCHMARKS-scale.md; fi
note=()
[[ -n ${NOTE:-} ]] && note=(--note "$NOTE")
"$LOAD" scale-report "$OUT" --markdown "$PAGE" --json "$OUT/scale.json" "${note[@]}"
sed -n '/^## Results/,/^## How to read/p' "$PAGE" | sed '$d'
if [[ $QUICK == 1 ]]; then
    for N in $SIZES; do
        grep -Eq '"sent": [1-9]' "$OUT/load.$N.json" || { echo "FAILED: the run with $N sessions sent nothing" >&2; exit 1; }
    done
    echo "quick: every run exited 0 and every JSON parses"
fi
echo "wrote $PAGE $OUT/scale.json"
