#!/usr/bin/env bash
# Secure sessions: what Noise costs, side by side with plaintext, in one run.
#
#   scripts/bench-secure.sh [--quick] [--rounds N] [--out DIR] [--no-build]
#
# Writes the "Secure sessions" section of docs/BENCHMARKS.md (between its
# <!-- secure-sessions:begin/end --> markers; `ringwire-bench report` keeps
# that section when it regenerates the page). With --quick: short phases, the
# section only in $OUT/secure.md. Phases, the server (`ringwire serve --app
# session-echo --shards 1`) pinned to $SERVER_CORE, the load generator to
# $LOAD_CORE, a fresh server for each run:
#   echo    session echo, $PEERS sessions, closed loop window $WINDOW, 64 B and
#           1200 B, security = noise (a key file) against security = none,
#           interleaved in every round: throughput, p99, server CPU per
#           request (the server's CPU time between the load generator's
#           "measuring" and "done" lines, over the requests answered)
#   hs      $HS_PEERS sessions opened at once (256 handshakes in flight):
#           handshakes per second, and server CPU per handshake, with the
#           default handshakes_per_second (1000: cookies above it) and with
#           the threshold out of reach (the shard's raw capacity)
#   flood   `ringwire-bench spoof-flood` (168-byte Initiations without a valid
#           mac1, on $LOAD_CORE) at each of $FLOOD_LEVELS (datagrams per
#           second, or "max": as fast as one core sends them), each against
#           one server: 64 B echo of established sessions without the flood,
#           then with it (it starts once the sessions are ready), then
#           handshakes per second under it (--poll block throughout: the
#           flood shares the load generator's core)
#   idle    RSS of a server holding $IDLE_SIZES idle sessions: bytes per
#           added session, encrypted (with the handshake threshold out of
#           reach, to open them faster) and plaintext
# Every figure carries the commit, kernel and load average before and after;
# a run is labelled "busy machine" when the 1-minute load average was 0.3 or
# more at its start (this script does not wait for a quiet machine: QUIET_WAIT
# seconds, default 0, to let it).
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/server.sh
source scripts/lib/server.sh

ARGS="$*"
QUICK=0
BUILD=1
ROUNDS=1
OUT=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --no-build) BUILD=0 ;;
        --rounds) ROUNDS="$2"; shift ;;
        --out) OUT="$2"; shift ;;
        -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "--rounds needs a positive integer" >&2; exit 2; }

SERVER_CORE=${SERVER_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
PEERS=${PEERS:-64}
WINDOW=${WINDOW:-64}
QUIET_WAIT=${QUIET_WAIT:-0}
if [[ $QUICK == 1 ]]; then
    DURATION=${DURATION:-1}; WARMUP=${WARMUP:-0.2}
    HS_PEERS=${HS_PEERS:-200}; IDLE_SIZES=${IDLE_SIZES:-"100 1100"}
    FLOOD_LEVELS=${FLOOD_LEVELS:-"20000"}
else
    DURATION=${DURATION:-5}; WARMUP=${WARMUP:-1}
    HS_PEERS=${HS_PEERS:-2000}; IDLE_SIZES=${IDLE_SIZES:-"2000 6000"}
    FLOOD_LEVELS=${FLOOD_LEVELS:-"50000 max"}
fi
OUT=${OUT:-bench-out/secure-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"

if [[ $BUILD == 1 ]]; then
    cargo build --release -p ringwire -p ringwire-bench
fi
BIN=${RINGWIRE_BIN:-target/release/ringwire}
LOAD=target/release/ringwire-bench
[[ -x $BIN && -x $LOAD ]] || { echo "build first: cargo build --release -p ringwire -p ringwire-bench" >&2; exit 1; }

"$LOAD" wait-quiet --max-s "$QUIET_WAIT" || true
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- . ':!docs/BENCHMARKS*.md' 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "kernel: $(uname -r)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') x $(nproc)"
    echo "command: $0 $ARGS"
    echo "echo: $PEERS sessions, window $WINDOW, ${DURATION} s measured after ${WARMUP} s; server core $SERVER_CORE, load core $LOAD_CORE"
    echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/machine.txt"
cp /proc/loadavg "$OUT/loadavg.start"

# Keys and configs: a key file (what production uses), plaintext, and the
# key file with the under-load threshold out of reach.
# The load generator's peers share one loopback address per 16,384: the per-source admission
# limits (WireGuard's 20 handshakes/s per address) are lifted, as scripts/scale.sh does.
rm -f "$OUT/server.key"
"$BIN" keygen --out "$OUT/server.key" >"$OUT/server.pub"
LOOPBACK='[sessions.admission]
max_sessions_per_prefix = 1000000
new_sessions_per_prefix_per_second = 1000000
new_sessions_per_prefix_burst = 1000000'
printf '%s\n[security]\nkey_file = "%s"\n' "$LOOPBACK" "$OUT/server.key" >"$OUT/noise.toml"
printf '%s\n[security]\nmode = "none"\n' "$LOOPBACK" >"$OUT/none.toml"
printf '%s\n[security]\nkey_file = "%s"\nhandshakes_per_second = 1000000\n' "$LOOPBACK" "$OUT/server.key" >"$OUT/noise-nolimit.toml"

FLOOD_PID="" ADDR=""
cleanup() {
    [[ -n $FLOOD_PID ]] && kill "$FLOOD_PID" 2>/dev/null || true
    [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null || true
}
trap cleanup EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# start_server CONFIG NAME: a fresh session-echo server (scripts/lib/server.sh); sets
# SERVER_PID, ADDR.
start_server() {
    local log="$OUT/$2.server.log"
    server_start "$2" "$log" 60 grep -q 'listening on' "$log" -- \
        "$BIN" serve --config "$1" --app session-echo --shards 1 --cores "$SERVER_CORE" \
        --bind 127.0.0.1:0 || exit 1
    ADDR=$(grep -o 'listening on [^ ]*' "$log" | awk '{print $3}')
}

# stop_server: SIGTERM (drain; the final counters land in the server's log).
stop_server() { server_stop TERM; }

# start_flood NAME [--rate R]: the flood against $ADDR, in the background.
start_flood() {
    local name=$1; shift
    "$LOAD" spoof-flood --target "$ADDR" --core "$LOAD_CORE" --duration 3600 \
        --json "$OUT/$name.flood.json" "$@" >"$OUT/$name.flood.txt" 2>&1 &
    FLOOD_PID=$!
}

# stop_flood: SIGINT (it writes its report and exits).
stop_flood() {
    kill -INT "$FLOOD_PID" 2>/dev/null || true
    wait "$FLOOD_PID" 2>/dev/null || true
    FLOOD_PID=""
}

# run_load NAME SECURITY ARGS...: the load generator against $ADDR, sampling
# the server's CPU ticks at its start, "sessions ready", "measuring" and
# "done", and its RSS at "sessions ready", into $OUT/NAME.server.json. With
# FLOOD_AT_READY set, a flood (FLOOD_AT_READY's words are its arguments;
# "-" for none) starts at "sessions ready" and stops with the load.
run_load() {
    local name=$1 sec=$2; shift 2
    local key=(--server-key-file "$OUT/server.pub")
    [[ $sec == none ]] && key=(--plaintext)
    local err="$OUT/$name.stderr"
    : >"$err"
    echo "loadavg $(cut -d' ' -f1-3 /proc/loadavg) before $name" >>"$OUT/machine.txt"
    local c0 c1="" c2="" c3="" rss=""
    c0=$(cpu_ticks "$SERVER_PID")
    "$LOAD" load --mode session-echo --target "$ADDR" "${key[@]}" --cores "$LOAD_CORE" \
        --json "$OUT/$name.json" "$@" >"$OUT/$name.txt" 2>"$err" &
    local pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        if [[ -z $c1 ]] && grep -q '^load: sessions ready' "$err"; then
            c1=$(cpu_ticks "$SERVER_PID"); rss=$(rss_kib "$SERVER_PID")
            if [[ -n ${FLOOD_AT_READY:-} ]]; then
                local fargs=()
                [[ $FLOOD_AT_READY != - ]] && read -ra fargs <<<"$FLOOD_AT_READY"
                start_flood "$name" "${fargs[@]}"
            fi
        fi
        if [[ -z $c2 ]] && grep -q '^load: measuring' "$err"; then c2=$(cpu_ticks "$SERVER_PID"); fi
        if [[ -z $c3 ]] && grep -q '^load: done' "$err"; then c3=$(cpu_ticks "$SERVER_PID"); fi
        sleep 0.01
    done
    local status=0
    wait "$pid" || status=$?
    [[ -n ${FLOOD_AT_READY:-} && -n $FLOOD_PID ]] && stop_flood
    if [[ $status != 0 ]]; then
        echo "load $name failed:" >&2; cat "$err" "$OUT/$name.txt" >&2; exit 1
    fi
    [[ -n $c3 ]] || c3=$(cpu_ticks "$SERVER_PID")
    echo "{\"hs_ticks\": $(( ${c1:-$c0} - c0 )), \"measured_ticks\": $(( c3 - ${c2:-$c3} )), \"rss_ready_kib\": ${rss:-null}}" >"$OUT/$name.server.json"
    grep -E '^(achieved|latency|sessions|handshake)' "$OUT/$name.txt" | sed "s/^/$name: /" || true
}

# ---- echo: encrypted against plaintext, interleaved -------------------------
for r in $(seq "$ROUNDS"); do
    for size in 64 1200; do
        for sec in noise none; do
            start_server "$OUT/$sec.toml" "echo-$sec-$size-r$r"
            run_load "echo-$sec-$size-r$r" "$sec" --peers "$PEERS" --window "$WINDOW" \
                --payload "$size" --duration "$DURATION" --warmup "$WARMUP"
            stop_server
        done
    done
done

# ---- hs: handshakes per second per shard ------------------------------------
for cfg in noise noise-nolimit; do
    start_server "$OUT/$cfg.toml" "hs-$cfg"
    run_load "hs-$cfg" noise --peers "$HS_PEERS" --window 1 --duration 0.2 --warmup 0 \
        --poll block --timeout-ms 1000
    stop_server
done

# ---- flood: the same under a flood of Initiations without mac1 --------------
for level in $FLOOD_LEVELS; do
    rate="-"
    [[ $level != max ]] && rate="--rate $level"
    start_server "$OUT/noise.toml" "flood-$level"
    run_load "flood-$level-quiet" noise --peers "$PEERS" --window "$WINDOW" --payload 64 \
        --duration "$DURATION" --warmup "$WARMUP" --poll block
    FLOOD_AT_READY=$rate run_load "flood-$level-echo" noise --peers "$PEERS" --window "$WINDOW" \
        --payload 64 --duration "$DURATION" --warmup "$WARMUP" --poll block
    fargs=()
    [[ $rate != - ]] && read -ra fargs <<<"$rate"
    start_flood "flood-$level-hs" "${fargs[@]}"
    sleep 0.3
    run_load "flood-$level-hs" noise --peers "$HS_PEERS" --window 1 --duration 0.2 --warmup 0 \
        --poll block --timeout-ms 1000
    stop_flood
    stop_server
done

# ---- idle: bytes per idle session -------------------------------------------
for sec in noise none; do
    cfg=$sec
    [[ $sec == noise ]] && cfg=noise-nolimit
    for n in $IDLE_SIZES; do
        start_server "$OUT/$cfg.toml" "idle-$sec-$n"
        run_load "idle-$sec-$n" "$sec" --peers "$n" --rate 100 --duration 0.5 --warmup 0 \
            --poll block --timeout-ms 1000
        stop_server
    done
done

cp /proc/loadavg "$OUT/loadavg.end"
echo "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"

python3 scripts/bench-secure-report.py "$OUT" "$(getconf CLK_TCK)" "$ROUNDS" "$IDLE_SIZES" "$FLOOD_LEVELS" >"$OUT/secure.md"
cat "$OUT/secure.md"
if [[ $QUICK == 1 ]]; then
    for f in "$OUT"/echo-*-r*.json; do
        [[ $f == *.server.json ]] && continue
        grep -Eq '"received": [1-9]' "$f" || { echo "FAILED: $f received nothing" >&2; exit 1; }
    done
    echo "quick: every run exited 0 and every JSON parses; section in $OUT/secure.md"
    exit 0
fi
python3 - "$OUT/secure.md" docs/BENCHMARKS.md <<'EOF'
import re, sys
section = open(sys.argv[1]).read().rstrip("\n")
page_path = sys.argv[2]
page = open(page_path).read()
begin, end = "<!-- secure-sessions:begin -->", "<!-- secure-sessions:end -->"
block = f"{begin}\n{section}\n{end}"
if begin in page and end in page:
    page = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, page, flags=re.S)
else:
    page = page.rstrip("\n") + "\n\n" + block + "\n"
open(page_path, "w").write(page)
EOF
echo "wrote the Secure sessions section of docs/BENCHMARKS.md ($OUT)"
