#!/usr/bin/env bash
# Compare UDP echo servers on loopback with ringwire-bench's load generator.
#
#   scripts/bench.sh [--quick] [--sockperf] [--rounds N] [--out DIR] [--no-build]
#
# Each server runs pinned to core $SERVER_CORE, the load generator pinned to
# core $LOAD_CORE. Per server, in order:
#   sat     closed loop, window 256 per thread   (saturation throughput)
#   lat     closed loop, window 8                (latency at light load)
#   open25/open50/open75  open loop at 25/50/75% of the mmsg floor's
#           saturation rate (latency from intended send times)
# The mmsg floor always runs first, since the open-loop rates derive from it.
# JSON reports land in $OUT as <server>.<phase>.json (+ <server>.server.json
# for the baselines' own served/CPU report); `ringwire-bench compare $OUT`
# prints the table, with ratios to the floor.
#
# --rounds N: repeat the whole sequence N times (servers interleaved in time,
# reports in $OUT/round-K) and print each round's table and the medians.
# --quick: a short smoke run (about a second per phase) that asserts only
# that every run exited 0 and every JSON report parses.
# --sockperf: also run `sockperf server` + `sockperf ping-pong` as an outside
# reference (sockperf's client only understands sockperf's own server, so it
# cannot drive our servers). Installs the Debian package if missing.
set -euo pipefail

cd "$(dirname "$0")/.."

ARGS="$*"
QUICK=0
SOCKPERF=0
BUILD=1
ROUNDS=1
OUT=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --sockperf) SOCKPERF=1 ;;
        --no-build) BUILD=0 ;;
        --rounds) ROUNDS="$2"; shift ;;
        --out) OUT="$2"; shift ;;
        -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "--rounds needs a positive integer" >&2; exit 2; }
SERVER_CORE=${SERVER_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
PEERS=${PEERS:-64}
PAYLOAD=${PAYLOAD:-32}
BASE_PORT=${BASE_PORT:-21000}
if [[ $QUICK == 1 ]]; then
    DURATION=${DURATION:-1}
    WARMUP=${WARMUP:-0.2}
else
    DURATION=${DURATION:-10}
    WARMUP=${WARMUP:-2}
fi
OUT=${OUT:-bench-out/$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"

if [[ $BUILD == 1 ]]; then
    cargo build --release -p ringwire-bench
fi
BENCH=target/release/ringwire-bench
[[ -x $BENCH ]] || { echo "missing $BENCH (run without --no-build)" >&2; exit 1; }

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "nproc: $(nproc)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "kernel: $(uname -r)"
    echo "command: $0 $ARGS"
    echo "duration: $DURATION s, warmup: $WARMUP s, peers: $PEERS, payload: $PAYLOAD B, server core $SERVER_CORE, load core $LOAD_CORE"
} >"$OUT/machine.txt"
loadavg() { echo "loadavg $(cut -d' ' -f1-3 /proc/loadavg) $1" | tee -a "$OUT/machine.txt"; }

# ---- server list -----------------------------------------------------------
# Baselines built into ringwire-bench. mmsg must stay first (the floor).
SERVERS=(mmsg tokio glommio)

# >>> RINGWIRE HOOK (main author): the engine joins the comparison when its
# binary exists and its `serve` accepts `--app`; otherwise it is skipped.
# Its command line is in server_cmd below ("ringwire" case).
RINGWIRE_BIN=${RINGWIRE_BIN:-target/release/ringwire}
if [[ -x $RINGWIRE_BIN ]] && "$RINGWIRE_BIN" serve --help 2>/dev/null | grep -q -- '--app'; then
    SERVERS+=(ringwire)
else
    echo "note: skipping ringwire ($RINGWIRE_BIN missing or its 'serve --app' not available)"
fi
# <<< RINGWIRE HOOK

# server_cmd NAME PORT JSON: the command line that serves echo on PORT.
server_cmd() {
    local name=$1 port=$2 json=$3
    case "$name" in
        mmsg|tokio|glommio)
            echo "$BENCH server --kind $name --bind 127.0.0.1:$port --threads 1 --cores $SERVER_CORE --json $json" ;;
        ringwire)
            echo "$RINGWIRE_BIN serve --bind 127.0.0.1:$port --app echo --shards 1 --cores $SERVER_CORE" ;;
        *) echo "unknown server $name" >&2; return 1 ;;
    esac
}

# wait_udp PORT: until something listens on UDP PORT (10 s at most).
wait_udp() {
    local port=$1 i
    for i in $(seq 1 100); do
        if command -v ss >/dev/null; then
            ss -Hlun "sport = :$port" | grep -q . && return 0
        elif [[ $i -ge 10 ]]; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

FAILED=0
load() { # load DIR NAME PHASE PORT ARGS...
    local dir=$1 name=$2 phase=$3 port=$4; shift 4
    echo "== $name $phase"
    if ! "$BENCH" load --target "127.0.0.1:$port" --peers "$PEERS" --threads 1 \
        --cores "$LOAD_CORE" --payload "$PAYLOAD" --duration "$DURATION" \
        --warmup "$WARMUP" --json "$dir/$name.$phase.json" "$@"; then
        echo "FAILED: $name $phase" >&2
        FAILED=1
    fi
}

# One round: every server in turn, all phases, reports into DIR. The open-loop
# rates come from the first round's floor, so every round offers the same load.
FLOOR_RATE=""
run_round() {
    local dir=$1 i=0 name port cmd pid pct
    mkdir -p "$dir"
    for name in "${SERVERS[@]}"; do
        port=$((BASE_PORT + i)); i=$((i + 1))
        cmd=$(server_cmd "$name" "$port" "$dir/$name.server.json")
        echo "## $name: $cmd"
        loadavg "before $name ($dir)"
        $cmd >"$dir/$name.server.log" 2>&1 &
        pid=$!
        if ! wait_udp "$port" || ! kill -0 "$pid" 2>/dev/null; then
            echo "FAILED: $name did not start:" >&2
            cat "$dir/$name.server.log" >&2
            kill -INT "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
            FAILED=1
            continue
        fi
        load "$dir" "$name" sat "$port" --window 256
        load "$dir" "$name" lat "$port" --window 8
        if [[ -z $FLOOR_RATE ]]; then
            FLOOR_RATE=$("$BENCH" compare "$dir" --floor mmsg --floor-rate) || FLOOR_RATE=""
            echo "floor saturation rate: ${FLOOR_RATE:-unknown} responses/s"
        fi
        if [[ -n $FLOOR_RATE && $FLOOR_RATE -gt 0 ]]; then
            for pct in 25 50 75; do
                load "$dir" "$name" "open$pct" "$port" --rate $((FLOOR_RATE * pct / 100))
            done
        fi
        kill -INT "$pid" 2>/dev/null || true
        if ! wait "$pid"; then
            echo "FAILED: $name exited with an error:" >&2
            cat "$dir/$name.server.log" >&2
            FAILED=1
        fi
        cat "$dir/$name.server.log"
    done
}

DIRS=()
if [[ $ROUNDS == 1 ]]; then
    DIRS=("$OUT")
else
    for r in $(seq 1 "$ROUNDS"); do DIRS+=("$OUT/round-$r"); done
fi
for dir in "${DIRS[@]}"; do
    run_round "$dir"
done

if [[ $SOCKPERF == 1 ]]; then
    if ! command -v sockperf >/dev/null; then
        (apt-get update -qq && apt-get install -y -qq sockperf) >/dev/null || true
    fi
    if command -v sockperf >/dev/null; then
        port=$((BASE_PORT + 99))
        taskset -c "$SERVER_CORE" sockperf server -i 127.0.0.1 -p "$port" >"$OUT/sockperf.server.log" 2>&1 &
        spid=$!
        sleep 0.5
        taskset -c "$LOAD_CORE" sockperf ping-pong -i 127.0.0.1 -p "$port" -m "$PAYLOAD" \
            -t "${DURATION%.*}" >"$OUT/sockperf.pingpong.txt" 2>&1 || FAILED=1
        kill -INT "$spid" 2>/dev/null || true
        wait "$spid" 2>/dev/null || true
        echo "## sockperf ping-pong against sockperf server (window 1, usec):"
        grep -E "Summary: Latency is|percentile (50|99)\.000 " "$OUT/sockperf.pingpong.txt" || true
    else
        echo "note: sockperf not available; skipped"
    fi
fi

loadavg "at end"
echo
if [[ $ROUNDS != 1 ]]; then
    for dir in "${DIRS[@]}"; do
        echo "## $dir"
        "$BENCH" compare "$dir" --floor mmsg | tee "$dir/table.md" || FAILED=1
    done
    echo
    echo "## median of $ROUNDS rounds:"
fi
echo "## results ($OUT), $DURATION s per phase after $WARMUP s warm-up, $PEERS peers, $PAYLOAD B"
if ! "$BENCH" compare "${DIRS[@]}" --floor mmsg | tee "$OUT/table.md"; then
    echo "FAILED: a JSON report does not parse" >&2
    FAILED=1
fi

if [[ $QUICK == 1 ]]; then
    for dir in "${DIRS[@]}"; do
        for name in "${SERVERS[@]}"; do
            for phase in sat lat open25 open50 open75; do
                [[ -s $dir/$name.$phase.json ]] || { echo "FAILED: missing $dir/$name.$phase.json" >&2; FAILED=1; }
            done
        done
    done
fi
if [[ $FAILED != 0 ]]; then
    echo "bench.sh: some runs failed" >&2
    exit 1
fi
echo "bench.sh: all runs completed"
