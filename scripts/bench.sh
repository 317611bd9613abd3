#!/usr/bin/env bash
# Compare UDP echo servers on loopback with ringwire-bench's load generator.
#
#   scripts/bench.sh [--quick] [--sockperf] [--callgrind] [--rings] [--scale] [--all]
#                    [--rounds N] [--out DIR] [--no-build] [--no-plot]
#
# Each server runs pinned to core $SERVER_CORE, the load generator pinned to
# core $LOAD_CORE. Servers: mmsg (the floor), mmsg-gso (the floor with GRO and
# GSO), tokio, glommio (baselines in ringwire-bench) and ringwire (`ringwire
# serve --app echo --shards 1`); with
# RINGWIRE_BASELINE_BIN=/path/to/older/ringwire also `ringwire-base`, that
# binary run exactly like ringwire (same phases, same CPU sampling), so the
# report shows new / base from one run.
# Per server, in order:
#   sat     closed loop, window 256 per thread   (saturation throughput)
#   lat     closed loop, window 8                (latency at light load)
#   open25/open50/open75/open90  open loop at 25/50/75/90% of the mmsg
#           floor's saturation rate (latency from intended send times)
# then, each against a fresh server (its CPU in <server>.cpu-<phase>.json):
#   bulk    the load generator's bulk mode (--bulk: $BULK_PEERS peers,
#           $BULK_PAYLOAD B, window $BULK_WINDOW; GSO sends and GRO receives
#           at the peers): mmsg, mmsg-gso and the engines
#   relay-bulk  the same in relay mode against `serve --app relay`
#           ($BULK_PAYLOAD - 9 B of probe: the relay header fills the rest):
#           the engines only
# `ringwire-no-offload` (the engine with shard.gso and shard.gro off) runs
# the two bulk phases only, beside ringwire, to show what the offloads do.
# The mmsg floor always runs first, since the open-loop rates derive from it.
# JSON reports land in $OUT as <server>.<phase>.json + <server>.server.json
# (served datagrams and CPU: the baselines measure their own thread; for the
# engine its shard thread, rw-shard-N or ringwire-shard-N in older binaries,
# is read from /proc/PID/task/*/stat before and after the phases). Every
# load report carries the client's lag behind its schedule and the load
# average before and after it; `ringwire-bench compare $OUT` prints the
# table, marking open-loop cells whose client was over 1 ms late at p99.
#
# Before the first server the script waits (up to $QUIET_WAIT s, default 300;
# 0 with --quick; `ringwire-bench wait-quiet`) for the 1-minute load average
# to fall below 0.3 (the build just before raises it), and records
# /proc/loadavg in
# $OUT/loadavg.start; the report calls the run quiet only if it was below
# 0.3 then. $OUT/loadavg.end is taken at the very end. $OUT/cpustat.start
# and .end (the first line of /proc/stat) give the hypervisor's steal over
# the run; every load report records the steal during its own cell, and a
# cell over 2% is invalid (`ringwire-bench wait-quiet` also waits for a
# stretch with little steal).
#
# --rounds N: repeat the whole sequence N times (servers interleaved in time,
# reports in $OUT/round-K) and print each round's table and the medians.
# --sockperf: the sockperf client (ping-pong, under-load, throughput) against
# `sockperf server` and against `ringwire serve --app sockperf`, same cores;
# raw output in $OUT/sockperf/<server>.<test>.txt.
# --callgrind: user-space instructions per request of each server under
# `valgrind --tool=callgrind` (an idle run subtracted from a run at
# $CG_RATE/s for $CG_DURATION s), in $OUT/callgrind/.
# --rings: `ringwire-bench rings` (producer on $SERVER_CORE, consumer on
# $LOAD_CORE, after waiting for a quiet machine again), page
# docs/BENCHMARKS-rings.md. --scale: scripts/scale.sh into $OUT/scale, page
# docs/BENCHMARKS-scale.md. --all: --sockperf --callgrind --rings --scale.
# Without --quick the run ends by writing docs/BENCHMARKS.md
# (`ringwire-bench report`, $NOTE as its first paragraph) and
# docs/bench-latency.svg (`ringwire-bench plot`; --no-plot skips it).
# A cell the host disturbed (hypervisor steal over $STEAL_LIMIT %, default 2,
# the report's limit) is measured again against the same server after
# `wait-quiet --steal-only` (up to $STEAL_WAIT s, default 60), at most
# $STEAL_RETRIES times (default 2; 0 with --quick); the disturbed attempts
# are kept in <round>/stolen/. Session scale rows are not repeated (each is
# a fresh server and its handshakes).
# --quick: a short smoke run (about a second per phase) that asserts only
# that every server ran and every JSON report parses; it writes every page
# and the plot into $OUT only. Every docs/BENCHMARKS*.md page from one run:
#   scripts/bench.sh --rounds 3 --all
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/server.sh
source scripts/lib/server.sh

ARGS="$*"
QUICK=0
SOCKPERF=0
CALLGRIND=0
RINGS=0
SCALE=0
PLOT=1
BUILD=1
ROUNDS=1
OUT=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --sockperf) SOCKPERF=1 ;;
        --callgrind) CALLGRIND=1 ;;
        --rings) RINGS=1 ;;
        --scale) SCALE=1 ;;
        --all) SOCKPERF=1; CALLGRIND=1; RINGS=1; SCALE=1 ;;
        --no-plot) PLOT=0 ;;
        --no-build) BUILD=0 ;;
        --rounds) ROUNDS="$2"; shift ;;
        --out) OUT="$2"; shift ;;
        -h|--help) sed -n '2,62p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "--rounds needs a positive integer" >&2; exit 2; }
SERVER_CORE=${SERVER_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
PEERS=${PEERS:-64}
PAYLOAD=${PAYLOAD:-32}
BULK_PEERS=${BULK_PEERS:-4}
BULK_PAYLOAD=${BULK_PAYLOAD:-1200}
BULK_WINDOW=${BULK_WINDOW:-256}
BASE_PORT=${BASE_PORT:-21000}
CG_RATE=${CG_RATE:-5000}
CG_DURATION=${CG_DURATION:-2}
STEAL_LIMIT=${STEAL_LIMIT:-2}
if [[ $QUICK == 1 ]]; then
    DURATION=${DURATION:-1}
    WARMUP=${WARMUP:-0.2}
    QUIET_WAIT=${QUIET_WAIT:-0}
    STEAL_RETRIES=${STEAL_RETRIES:-0}
    STEAL_WAIT=${STEAL_WAIT:-0}
else
    DURATION=${DURATION:-10}
    WARMUP=${WARMUP:-2}
    QUIET_WAIT=${QUIET_WAIT:-300}
    STEAL_RETRIES=${STEAL_RETRIES:-2}
    STEAL_WAIT=${STEAL_WAIT:-60}
fi
[[ $QUIET_WAIT =~ ^[0-9]+$ ]] || { echo "QUIET_WAIT needs whole seconds" >&2; exit 2; }
OUT=${OUT:-bench-out/$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"

if [[ $BUILD == 1 ]]; then
    cargo build --release -p ringwire -p ringwire-bench
fi
BENCH=target/release/ringwire-bench
[[ -x $BENCH ]] || { echo "missing $BENCH (run without --no-build)" >&2; exit 1; }

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- . ':!docs/BENCHMARKS*.md' ':!docs/bench-latency.svg' 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "nproc: $(nproc)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "kernel: $(uname -r)"
    echo "command: $0 $ARGS"
    echo "duration: $DURATION s, warmup: $WARMUP s, peers: $PEERS, payload: $PAYLOAD B, server core $SERVER_CORE, load core $LOAD_CORE"
    echo "bulk: $BULK_PEERS peers, $BULK_PAYLOAD B, window $BULK_WINDOW, GSO/GRO peers"
} >"$OUT/machine.txt"
loadavg() { echo "loadavg $(cut -d' ' -f1-3 /proc/loadavg) $1" | tee -a "$OUT/machine.txt"; }

# ---- server list -----------------------------------------------------------
# Baselines built into ringwire-bench. mmsg must stay first (the floor).
SERVERS=(mmsg mmsg-gso tokio glommio)

# >>> RINGWIRE HOOK: the engine, built above (or $RINGWIRE_BIN), runs the echo
# app on one shard pinned like the baselines; its command line is in
# server_cmd below ("ringwire" case), its CPU is read from /proc (run_round).
RINGWIRE_BIN=${RINGWIRE_BIN:-target/release/ringwire}
if [[ -x $RINGWIRE_BIN ]] && "$RINGWIRE_BIN" serve --help 2>/dev/null | grep -q -- '--app'; then
    SERVERS+=(ringwire)
else
    echo "FAILED: $RINGWIRE_BIN missing or its 'serve --app' not available (run without --no-build)" >&2
    exit 1
fi
# An older engine binary for a before/after comparison in one run: it runs
# right after ringwire in every round, as `ringwire-base`.
BASE_BIN=${RINGWIRE_BASELINE_BIN:-}
if [[ -n $BASE_BIN ]]; then
    if [[ -x $BASE_BIN ]] && "$BASE_BIN" serve --help 2>/dev/null | grep -q -- '--app'; then
        SERVERS+=(ringwire-base)
        echo "baseline engine: $BASE_BIN ($("$BASE_BIN" --version 2>/dev/null || echo 'no --version'))" >>"$OUT/machine.txt"
    else
        echo "FAILED: RINGWIRE_BASELINE_BIN=$BASE_BIN missing or its 'serve --app' not available" >&2
        exit 1
    fi
fi
# The engine without its UDP offloads, for the bulk phases only.
SERVERS+=(ringwire-no-offload)
printf '[shard]\ngso = "off"\ngro = "off"\n' >"$OUT/no-offload.toml"
# <<< RINGWIRE HOOK

# is_engine NAME: a ringwire binary (CPU from /proc, report from its log).
is_engine() { [[ $1 == ringwire || $1 == ringwire-base || $1 == ringwire-no-offload ]]; }

# phases_of NAME: the phases NAME runs (the echo phases, then the bulk ones).
phases_of() {
    case "$1" in
        ringwire-no-offload) echo "bulk relay-bulk" ;;
        mmsg|mmsg-gso) echo "sat lat open25 open50 open75 open90 bulk" ;;
        ringwire) echo "sat lat open25 open50 open75 open90 bulk relay-bulk" ;;
        # The baseline binary may speak an older session protocol than the bundled client,
        # so it runs the echo phases only.
        ringwire-base) echo "sat lat open25 open50 open75 open90 bulk" ;;
        *) echo "sat lat open25 open50 open75 open90" ;;
    esac
}

# server_cmd NAME PORT JSON [APP]: the command line that serves APP (echo, or
# relay for an engine) on PORT.
server_cmd() {
    local name=$1 port=$2 json=$3 app=${4:-echo}
    case "$name" in
        mmsg|mmsg-gso|tokio|glommio)
            echo "$BENCH server --kind $name --bind 127.0.0.1:$port --threads 1 --cores $SERVER_CORE --json $json" ;;
        ringwire)
            echo "$RINGWIRE_BIN serve --bind 127.0.0.1:$port --app $app --shards 1 --cores $SERVER_CORE" ;;
        ringwire-no-offload)
            echo "$RINGWIRE_BIN serve --config $OUT/no-offload.toml --bind 127.0.0.1:$port --app $app --shards 1 --cores $SERVER_CORE" ;;
        ringwire-base)
            echo "$BASE_BIN serve --bind 127.0.0.1:$port --app $app --shards 1 --cores $SERVER_CORE" ;;
        *) echo "unknown server $name" >&2; return 1 ;;
    esac
}

# start_server NAME PORT LOG WAIT_S CMD...: CMD in the background until it listens on UDP PORT
# (scripts/lib/server.sh; sets SERVER_PID). server_stop stops it (SIGINT).
start_server() {
    local name=$1 port=$2 log=$3 wait_s=$4
    shift 4
    server_start "$name" "$log" "$wait_s" udp_listening "$port" -- "$@"
}

# cpu_sample PID OUT: the engine's shard thread CPU; retried for up to 5 s, as
# the port listens a moment before the shard threads exist.
cpu_sample() {
    local i
    for i in $(seq 1 50); do
        "$BENCH" cpu-sample --pid "$1" --out "$2" 2>/dev/null && return 0
        sleep 0.1
    done
    "$BENCH" cpu-sample --pid "$1" --out "$2"
}

FAILED=0
# The hypervisor's steal during a cell's measured window, % (empty if not recorded).
steal_of() { grep -o '"steal_pct": *[0-9.eE+-]*' "$1" | sed 's/.*: *//'; }
# measure DIR NAME PHASE LOAD-ARGS...: one load run into DIR/NAME.PHASE.json. A run the host
# disturbed (steal over $STEAL_LIMIT %) is measured again, after `wait-quiet --steal-only` (up
# to $STEAL_WAIT s), at most $STEAL_RETRIES times; the disturbed attempts stay in DIR/stolen/
# (the report reads only DIR's own files), and the last attempt is the cell, marked invalid
# by the report if it was stolen too.
measure() {
    local dir=$1 name=$2 phase=$3 try=0 steal; shift 3
    local json=$dir/$name.$phase.json
    while true; do
        echo "== $name $phase"
        if ! "$BENCH" load --json "$json" "$@"; then
            echo "FAILED: $name $phase" >&2
            FAILED=1
            return
        fi
        steal=$(steal_of "$json")
        if [[ -z $steal ]] || awk -v s="$steal" -v l="$STEAL_LIMIT" 'BEGIN { exit !(s <= l) }'; then
            return
        fi
        steal=$(awk -v s="$steal" 'BEGIN { printf "%.1f", s }')
        if (( try >= STEAL_RETRIES )); then
            echo "stolen: $name $phase lost ${steal}% to the hypervisor in every attempt; the report marks it"
            return
        fi
        try=$((try + 1))
        mkdir -p "$dir/stolen"
        mv "$json" "$dir/stolen/$name.$phase.attempt-$try.json"
        echo "stolen: $name $phase lost ${steal}% to the hypervisor; again (retry $try of $STEAL_RETRIES)"
        "$BENCH" wait-quiet --steal-only --max-s "$STEAL_WAIT"
    done
}
load() { # load DIR NAME PHASE PORT ARGS...
    local dir=$1 name=$2 phase=$3 port=$4; shift 4
    measure "$dir" "$name" "$phase" --target "127.0.0.1:$port" --peers "$PEERS" --threads 1 \
        --cores "$LOAD_CORE" --payload "$PAYLOAD" --duration "$DURATION" \
        --warmup "$WARMUP" "$@"
}

# bulk_phase DIR NAME PHASE PORT: a fresh server (relay for relay-bulk) for one
# bulk phase; its CPU in DIR/NAME.cpu-PHASE.json.
bulk_phase() {
    local dir=$1 name=$2 phase=$3 port=$4 app=echo cmd log json
    local extra=(--payload "$BULK_PAYLOAD")
    if [[ $phase == relay-bulk ]]; then
        app=relay
        extra=(--mode relay --payload $((BULK_PAYLOAD - 9)))
    fi
    json=$dir/$name.cpu-$phase.json
    cmd=$(server_cmd "$name" "$port" "$json" "$app")
    log=$dir/$name.$phase.server.log
    echo "## $name $phase: $cmd"
    # shellcheck disable=SC2086 # the command line is split on purpose
    start_server "$name" "$port" "$log" 60 $cmd || { FAILED=1; return; }
    if is_engine "$name"; then
        cpu_sample "$SERVER_PID" "$dir/$name.$phase.cpu-before.sample" || FAILED=1
    fi
    if [[ $phase == relay-bulk ]]; then
        # Sessions are authenticated: the client needs the key the server announces.
        local key
        key=$(sed -n 's/^ringwire: session public key //p' "$log" | head -n 1)
        if [[ -z $key ]]; then
            echo "FAILED: $name $phase: the server announced no session public key" >&2
            FAILED=1
        fi
        extra+=(--server-key "$key")
    fi
    measure "$dir" "$name" "$phase" --target "127.0.0.1:$port" --bulk --peers "$BULK_PEERS" \
        --threads 1 --cores "$LOAD_CORE" --window "$BULK_WINDOW" --duration "$DURATION" \
        --warmup "$WARMUP" "${extra[@]}"
    if is_engine "$name"; then
        cpu_sample "$SERVER_PID" "$dir/$name.$phase.cpu-after.sample" || FAILED=1
    fi
    server_stop || FAILED=1
    if is_engine "$name" && ! "$BENCH" engine-report --log "$log" --kind "$name" \
        --before "$dir/$name.$phase.cpu-before.sample" --after "$dir/$name.$phase.cpu-after.sample" \
        --json "$json"; then
        echo "FAILED: no server report for $name $phase" >&2
        FAILED=1
    fi
}

# One round: every server in turn, all its phases, reports into DIR. The open-loop
# rates come from the first round's floor, so every round offers the same load.
FLOOR_RATE=""
run_round() {
    local dir=$1 i=0 name port cmd pct log phase
    mkdir -p "$dir"
    for name in "${SERVERS[@]}"; do
        port=$((BASE_PORT + i)); i=$((i + 1))
        if [[ " $(phases_of "$name") " != *" sat "* ]]; then
            loadavg "before $name ($dir)"
            for phase in $(phases_of "$name"); do
                bulk_phase "$dir" "$name" "$phase" "$((port + 30))"
            done
            continue
        fi
        cmd=$(server_cmd "$name" "$port" "$dir/$name.server.json")
        log=$dir/$name.server.log
        echo "## $name: $cmd"
        loadavg "before $name ($dir)"
        # shellcheck disable=SC2086 # the command line is split on purpose
        start_server "$name" "$port" "$log" 60 $cmd || { FAILED=1; continue; }
        if is_engine "$name"; then
            cpu_sample "$SERVER_PID" "$dir/$name.cpu-before.sample" || FAILED=1
        fi
        load "$dir" "$name" sat "$port" --window 256
        load "$dir" "$name" lat "$port" --window 8
        if [[ -z $FLOOR_RATE ]]; then
            FLOOR_RATE=$("$BENCH" compare "$dir" --floor mmsg --floor-rate) || FLOOR_RATE=""
            echo "floor saturation rate: ${FLOOR_RATE:-unknown} responses/s"
        fi
        if [[ -n $FLOOR_RATE && $FLOOR_RATE -gt 0 ]]; then
            for pct in 25 50 75 90; do
                load "$dir" "$name" "open$pct" "$port" --rate $((FLOOR_RATE * pct / 100))
            done
        fi
        if is_engine "$name"; then
            cpu_sample "$SERVER_PID" "$dir/$name.cpu-after.sample" || FAILED=1
        fi
        server_stop || FAILED=1
        cat "$log"
        if is_engine "$name" && ! "$BENCH" engine-report --log "$log" --kind "$name" \
            --before "$dir/$name.cpu-before.sample" --after "$dir/$name.cpu-after.sample" \
            --json "$dir/$name.server.json"; then
            echo "FAILED: no server report for $name" >&2
            FAILED=1
        fi
        for phase in $(phases_of "$name"); do
            [[ $phase == *bulk ]] && bulk_phase "$dir" "$name" "$phase" "$((port + 30))"
        done
    done
}

"$BENCH" wait-quiet --max-s "$QUIET_WAIT"
cp /proc/loadavg "$OUT/loadavg.start"
head -1 /proc/stat >"$OUT/cpustat.start"
loadavg "at start"
DIRS=()
if [[ $ROUNDS == 1 ]]; then
    DIRS=("$OUT")
else
    for r in $(seq 1 "$ROUNDS"); do DIRS+=("$OUT/round-$r"); done
fi
for dir in "${DIRS[@]}"; do
    run_round "$dir"
done

# ---- sockperf: its client against its own server and against ringwire ------
# sockperf_cmd NAME PORT: the server command line for the sockperf client.
sockperf_cmd() {
    case "$1" in
        sockperf) echo "taskset -c $SERVER_CORE sockperf server -i 127.0.0.1 -p $2" ;;
        ringwire) echo "$RINGWIRE_BIN serve --bind 127.0.0.1:$2 --app sockperf --shards 1 --cores $SERVER_CORE" ;;
        ringwire-base) echo "$BASE_BIN serve --bind 127.0.0.1:$2 --app sockperf --shards 1 --cores $SERVER_CORE" ;;
    esac
}
if [[ $SOCKPERF == 1 ]]; then
    if ! command -v sockperf >/dev/null; then
        (apt-get update -qq && apt-get install -y -qq sockperf) >/dev/null || true
    fi
    if command -v sockperf >/dev/null; then
        SP=$OUT/sockperf
        mkdir -p "$SP"
        secs=${DURATION%.*}
        [[ ${secs:-0} -ge 1 ]] || secs=1
        mps=$(( ${FLOOR_RATE:-0} > 0 ? FLOOR_RATE / 2 : 10000 ))
        port=$((BASE_PORT + 90))
        SP_SERVERS=(sockperf ringwire)
        if [[ -n $BASE_BIN ]] && "$BASE_BIN" serve --help 2>/dev/null | grep -q sockperf; then
            SP_SERVERS+=(ringwire-base)
        fi
        cp /proc/loadavg "$SP/loadavg.before"
        for name in "${SP_SERVERS[@]}"; do
            port=$((port + 1))
            cmd=$(sockperf_cmd "$name" "$port")
            echo "## sockperf client against $name: $cmd"
            loadavg "before sockperf against $name"
            # shellcheck disable=SC2086
            start_server "$name" "$port" "$SP/$name.server.log" 60 $cmd || { FAILED=1; continue; }
            sleep 0.3
            for test in ping-pong under-load throughput; do
                extra=()
                [[ $test == under-load ]] && extra=(--mps "$mps")
                if ! taskset -c "$LOAD_CORE" sockperf "$test" -i 127.0.0.1 -p "$port" \
                    -m "$PAYLOAD" -t "$secs" "${extra[@]}" >"$SP/$name.$test.txt" 2>&1; then
                    echo "FAILED: sockperf $test against $name:" >&2
                    cat "$SP/$name.$test.txt" >&2
                    FAILED=1
                fi
                grep -E "Summary:|percentile (50|99|99\.9)00 " "$SP/$name.$test.txt" | sed "s/^/  $name $test: /" || true
            done
            server_stop || FAILED=1
        done
        cp /proc/loadavg "$SP/loadavg.after"
    else
        echo "note: sockperf not available; skipped"
    fi
fi

# ---- callgrind: user-space instructions per request ------------------------
# callgrind_run NAME PORT: NAME under callgrind; counters dumped once it listens
# ($CG/NAME.out.1: start-up) and after $CG_RATE/s for $CG_DURATION s
# ($CG/NAME.out.2: the load, what callgrind-report counts). SIGINT then,
# SIGKILL if it does not exit (the engine under valgrind 3.19: see
# bench/src/callgrind.rs).
callgrind_run() {
    local name=$1 port=$2 cmd i
    cmd=$(server_cmd "$name" "$port" "$CG/$name.server.json")
    rm -f "$CG/$name.out"*
    # shellcheck disable=SC2086
    start_server "$name" "$port" "$CG/$name.log" 60 \
        valgrind --tool=callgrind --callgrind-out-file="$CG/$name.out" $cmd || return 1
    callgrind_control -d "$SERVER_PID" >/dev/null || return 1
    "$BENCH" load --target "127.0.0.1:$port" --peers "$PEERS" --threads 1 \
        --cores "$LOAD_CORE" --payload "$PAYLOAD" --rate "$CG_RATE" \
        --duration "$CG_DURATION" --warmup 0 --json "$CG/$name.load.json" \
        >"$CG/$name.load.txt" || return 1
    callgrind_control -d "$SERVER_PID" >/dev/null || return 1
    kill -INT "$SERVER_PID" 2>/dev/null || true
    for i in $(seq 1 50); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "note: $name did not stop on SIGINT under valgrind; killed after its dump"
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    [[ -s $CG/$name.out.2 ]]
}
if [[ $CALLGRIND == 1 ]]; then
    if command -v valgrind >/dev/null && command -v callgrind_control >/dev/null; then
        CG=$OUT/callgrind
        mkdir -p "$CG"
        port=$((BASE_PORT + 80))
        for name in "${SERVERS[@]}"; do
            port=$((port + 1))
            echo "## callgrind: $name ($CG_RATE/s for $CG_DURATION s)"
            if callgrind_run "$name" "$port"; then
                "$BENCH" callgrind-report --server "$name" --dump "$CG/$name.out.2" \
                    --load-json "$CG/$name.load.json" --json "$CG/$name.callgrind.json" || FAILED=1
            elif [[ $name == glommio ]]; then
                echo "note: callgrind: skipping glommio, it does not run under valgrind here ($CG/$name.log):"
                tail -n 3 "$CG/$name.log" | sed 's/^/  /'
                kill -KILL "$SERVER_PID" 2>/dev/null || true
                wait "$SERVER_PID" 2>/dev/null || true
            else
                echo "FAILED: callgrind run of $name ($CG/$name.log)" >&2
                kill -KILL "$SERVER_PID" 2>/dev/null || true
                wait "$SERVER_PID" 2>/dev/null || true
                FAILED=1
            fi
        done
    else
        echo "note: valgrind not available (scripts/setup.sh installs it); callgrind skipped"
    fi
fi

# ---- the other pages: rings and session scale --------------------------
if [[ $QUICK == 1 ]]; then PAGES=$OUT; else PAGES=docs; fi
if [[ $RINGS == 1 ]]; then
    echo "## rings"
    "$BENCH" wait-quiet --max-s "$QUIET_WAIT"
    rings_args=(--cores "$SERVER_CORE,$LOAD_CORE")
    [[ $QUICK == 1 ]] && rings_args+=(--items 200000 --round-trips 2000 --wakes 50 --runs 1 --processes 1)
    if ! "$BENCH" rings "${rings_args[@]}" --json "$OUT/rings.json" \
        --machine "$OUT/machine.txt" --markdown "$PAGES/BENCHMARKS-rings.md"; then
        echo "FAILED: rings" >&2
        FAILED=1
    fi
fi
if [[ $SCALE == 1 ]]; then
    echo "## session scale"
    scale_args=(--no-build --out "$OUT/scale")
    [[ $QUICK == 1 ]] && scale_args+=(--quick)
    if ! QUIET_WAIT=$QUIET_WAIT scripts/scale.sh "${scale_args[@]}"; then
        echo "FAILED: scale" >&2
        FAILED=1
    elif [[ $QUICK == 1 ]]; then
        cp "$OUT/scale/BENCHMARKS-scale.md" "$PAGES/BENCHMARKS-scale.md"
    fi
fi

cp /proc/loadavg "$OUT/loadavg.end"
head -1 /proc/stat >"$OUT/cpustat.end"
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

# ---- BENCHMARKS.md and the latency plot ----------------------------------
if [[ $QUICK == 1 ]]; then
    MD=$OUT/BENCHMARKS.md SVG=$OUT/bench-latency.svg
else
    MD=docs/BENCHMARKS.md SVG=docs/bench-latency.svg
fi
if [[ $PLOT == 1 ]]; then
    "$BENCH" plot "$OUT" --out "$SVG" || { echo "FAILED: plot" >&2; FAILED=1; }
fi
note=()
[[ -n ${NOTE:-} ]] && note=(--note "$NOTE")
if "$BENCH" report "$OUT" --markdown "$MD" "${note[@]}"; then
    echo "wrote $MD"
else
    echo "FAILED: report" >&2
    FAILED=1
fi

if [[ $QUICK == 1 ]]; then
    for dir in "${DIRS[@]}"; do
        for name in "${SERVERS[@]}"; do
            for phase in $(phases_of "$name"); do
                [[ -s $dir/$name.$phase.json ]] || { echo "FAILED: missing $dir/$name.$phase.json" >&2; FAILED=1; }
                if [[ $phase == *bulk ]]; then
                    [[ -s $dir/$name.cpu-$phase.json ]] || { echo "FAILED: missing $dir/$name.cpu-$phase.json" >&2; FAILED=1; }
                fi
            done
            if [[ " $(phases_of "$name") " == *" sat "* ]]; then
                [[ -s $dir/$name.server.json ]] || { echo "FAILED: missing $dir/$name.server.json" >&2; FAILED=1; }
            fi
        done
    done
fi
if [[ $FAILED != 0 ]]; then
    echo "bench.sh: some runs failed" >&2
    exit 1
fi
echo "bench.sh: all runs completed"
