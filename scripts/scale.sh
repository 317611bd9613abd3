#!/usr/bin/env bash
# How ringwire's session server scales with the number of sessions.
#
#   scripts/scale.sh [--quick] [--out DIR] [--no-build]
#
# For each session count N (default 1, 1000, 10000 and the most the file
# descriptor limit allows; --quick: 1, 100, 1000) a fresh
#   target/release/ringwire serve --app session-echo --shards 1 --cores $SERVER_CORE
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
# ((RSS_N - RSS_1) / (N - 1)), handshake phase and latency p50/p99.
# Writes $OUT/scale.json and $OUT/scale.md (plus each run's load JSON and
# server log) and prints the table. --quick: small N and short runs; asserts
# only that every run exited 0 and every JSON parses.
#
# Environment: SERVER_CORE (0), LOAD_CORE (1), RATE (20000; quick 5000),
# DURATION (5; quick 1), WARMUP (1; quick 0.3), SIZES (space separated).
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
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
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
else
    SIZES=${SIZES:-"1 1000 10000 $MAX_N"}
    RATE=${RATE:-20000}
    DURATION=${DURATION:-5}
    WARMUP=${WARMUP:-1}
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
    echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "kernel: $(uname -r)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') x $(nproc)"
    echo "nofile hard limit: $HARD_NOFILE (largest N: $MAX_N)"
    echo "sizes: $SIZES  rate: $RATE/s  duration: ${DURATION}s  warmup: ${WARMUP}s"
    echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/machine.txt"

SERVER_PID=""
cleanup() { [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null || true; }
trap cleanup EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

for N in $SIZES; do
    log="$OUT/server.$N.log"
    "$SERVER" serve --app session-echo --shards 1 --cores "$SERVER_CORE" --bind 127.0.0.1:0 >"$log" 2>&1 &
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

echo "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"

python3 - "$OUT" "$SIZES" "$(getconf CLK_TCK)" "$QUICK" <<'PY'
import json, sys
out, sizes, tck, quick = sys.argv[1], [int(s) for s in sys.argv[2].split()], int(sys.argv[3]), sys.argv[4] == "1"
rows = []
for n in sizes:
    load = json.load(open(f"{out}/load.{n}.json"))
    srv = json.load(open(f"{out}/server.{n}.json"))
    rows.append({"n": n, "load": load, "server": srv})
base = next((r for r in rows if r["n"] == 1), None)
table = []
for r in rows:
    load, srv, n = r["load"], r["server"], r["n"]
    cpu_s = srv["cpu_ticks"] / tck
    recv = load["received"]
    rss1 = base["server"]["rss_idle_kib"] if base else None
    rssn = srv["rss_idle_kib"]
    per_session = (rssn - rss1) * 1024 / (n - 1) if (rss1 is not None and rssn is not None and n > 1) else None
    table.append({
        "sessions": n,
        "sessions_established": load.get("sessions_established"),
        "handshake_failures": load.get("handshake_failures"),
        "handshake_ms": load.get("handshake_ms"),
        "rate": load["rate"], "sent": load["sent"], "received": recv, "lost": load["lost"],
        "server_cpu_s": cpu_s,
        "server_cpu_us_per_request": cpu_s * 1e6 / recv if recv else None,
        "server_rss_empty_kib": srv["rss_empty_kib"],
        "server_rss_idle_kib": rssn,
        "bytes_per_session": per_session,
        "p50_us": load["latency_us"]["p50"], "p99_us": load["latency_us"]["p99"],
        "client_sent_late": load["client_sent_late"],
    })
json.dump({"rows": table, "clk_tck": tck}, open(f"{out}/scale.json", "w"), indent=2)
f = lambda v, fmt: "-" if v is None else format(v, fmt)
lines = [
    "| sessions | established | handshake ms | sent | lost | server CPU us/req | RSS idle MiB | bytes/session | p50 us | p99 us |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
]
for t in table:
    lines.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
        t["sessions"], t["sessions_established"], f(t["handshake_ms"], ".0f"), t["sent"], t["lost"],
        f(t["server_cpu_us_per_request"], ".2f"), f(t["server_rss_idle_kib"] and t["server_rss_idle_kib"] / 1024, ".1f"),
        f(t["bytes_per_session"], ".0f"), f(t["p50_us"], ".1f"), f(t["p99_us"], ".1f")))
md = "\n".join(lines) + "\n"
open(f"{out}/scale.md", "w").write(md)
print(md)
if quick:
    assert all(t["sent"] > 0 for t in table), "a run sent nothing"
    print("quick: every run exited 0 and every JSON parses")
PY
echo "wrote $OUT/scale.json $OUT/scale.md"
