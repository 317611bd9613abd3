#!/usr/bin/env bash
# How ringwire's session server scales with the number of sessions, and how
# its relay's fan-out scales with the number of subscribers.
#
#   scripts/scale.sh [--quick] [--phase sessions|hot|fanout|all] [--out DIR] [--no-build]
#
# Sessions phase: for each session count N (default 1, 1000, 10000, 100000,
# 1000000; --quick: 1, 100, 1000) a fresh single-shard
#   ringwire-bench session-server --app echo --cores $SERVER_CORE
#       --max-sessions (N + 10%) --keepalive-ms 0 --idle-timeout-ms 3600000
#       --handshakes-per-second 1000000
# (ringwire's session-echo app through the library, with the settings a
# million idle sessions from one machine need: no keepalive traffic, no idle
# timeout during the run, no cookie round trip for the benchmark's own
# handshakes) is driven by
#   ringwire-bench load --mode session --sessions N --peers min(N, $SOCKETS)
#       --peers-per-ip $PEERS_PER_IP --keepalive-ms 0 --handshake-rto-ms $HANDSHAKE_RTO_MS
#       --rate $RATE ...
# (many sessions per socket: $SOCKETS sockets on $SOCKETS/$PEERS_PER_IP
# loopback addresses, so at most N/($SOCKETS/$PEERS_PER_IP) sessions per source
# address; open loop at a fixed, moderate rate so the server's CPU per request
# is comparable across N). While the load runs, the script watches its stderr
# markers and samples the server:
#   load start            -> utime+stime (handshake CPU starts)
#   load: sessions ready  -> VmRSS from /proc/PID/status (N sessions, idle), utime+stime
#   load: measuring       -> utime+stime
#   load: done            -> utime+stime again
# and reports per N: server CPU us per request (CPU delta / requests received
# in the measured window), server CPU per handshake, RSS with N idle sessions,
# bytes per session ((RSS_N - RSS_1) / (N - 1), and against the previous N),
# handshake phase, latency p50/p99, the client's lag behind its schedule and
# the load average before and after (`ringwire-bench scale-report`: a row
# whose client was over 1 ms late at p99 keeps its CPU and memory but not its
# latency).
#
# The 1-session reference (sessions phase, after the rows above): each N of $ONE_SOCKET_SIZES
# (default 1000 10000; --quick: 100) again over ONE client socket (`load --peers 1`: the
# 1-session row's client structure, every reply to one address, with N sessions' state), and
# the 1-session row again last, so the page splits the growth from 1 session into the server's
# session state and the load generator's sockets, and shows how far the reference drifted over
# the phase (the tables' *vs 1 session* is over the mean of its two runs; D79, D84). About a
# minute more on a quiet machine ($ONE_SOCKET_SIZES="" and AGAIN=0 leave them out).
#
# Hot phase: for each session count N of at least $HOT (default 1000; --quick
# 100), the same run with `--active $HOT`: every one of the N sessions opens,
# but only the first $HOT carry the traffic and the rest stay idle, so the CPU
# per request against N shows what idle sessions cost (the sessions phase,
# where every request reaches the next session in turn, also counts the cache
# misses of touching cold state at each request).
#
# Fan-out phase: for each subscriber count N (default 10, 100, 1000, 10000;
# --quick: 10, 100) a fresh `session-server --app relay` is driven by
#   ringwire-bench load --mode fanout --sessions (N + 1) --rate $FANOUT_RATE
#       --payload $FANOUT_PAYLOAD
# (one publisher, N subscribers on one shard, 1191 B probes in 1200 B relay
# messages): CPU per delivered message (server threads' schedstat ns),
# delivery latency p50/p99 measured at each subscriber from the publish's
# intended time, and the split of it: per publish, its first and last copy
# leaving the server (each copy's kernel receive timestamp at the client,
# SO_TIMESTAMPNS, from the publish's actual send), the server's time per copy
# ((last - first) / (N - 1)), and per delivery the client's own delay (kernel
# timestamp to decrypted); plus the server's final counters that show whether a
# pool held the copies back (enobufs, send_queue_full, session_backlogged,
# relay_fanout_dropped, kernel_drops).
# Beside each N, in the same run, the fan-out floor (FANOUT_FLOOR=1, default): a fresh
#   ringwire-bench server --kind mmsg-fanout --fanout-batch $FANOUT_FLOOR_BATCH
# (plain UDP, no sessions, no cryptography, one thread; each publish's N copies leave with
# sendmmsg, every header pointing at the same bytes: the best a one-core kernel-socket relay
# does) driven by the same load line in `--mode raw-fanout` (same schedule, probes, sockets
# and timestamps), into $OUT/fanout-floor; the page sets ringwire's server time per copy,
# last copy out, delivery p50/p99 and CPU per delivery against the floor's.
#
# Before the first run it waits up to $QUIET_WAIT s (300; quick 0) for the
# 1-minute load average to fall below 0.3 (`ringwire-bench wait-quiet`);
# the page calls the run quiet only if it was.
# Writes docs/BENCHMARKS-scale.md (--quick: $OUT/BENCHMARKS-scale.md) from
# $OUT/sessions (with $OUT/one-socket, $OUT/again), $OUT/hot and $OUT/fanout, and
# $OUT/scale.json, plus each run's load
# JSON and server log, and prints the tables. --quick: small N and short
# runs; asserts only that every run exited 0, sent something and every JSON
# parses.
#
# Environment: SERVER_CORE (0), LOAD_CORE (1), RATE (20000; quick 5000),
# DURATION (5; quick 1), WARMUP (1; quick 0.3), SIZES, FANOUT_SIZES (space
# separated), SOCKETS (4000), PEERS_PER_IP (4), HANDSHAKE_RATE (new sessions/s;
# default unpaced), HANDSHAKE_RTO_MS (the client's first Initiation retransmission delay,
# 4000: 256 Initiations in flight wait behind the server's Diffie-Hellman work for longer
# than the default 500 ms on a busy core, and each retransmission costs both sides a new
# handshake), FANOUT_RATE (publishes/s, 5), FANOUT_PAYLOAD (1191),
# HOT (active sessions in the hot phase), ONE_SOCKET_SIZES, AGAIN (1: the 1-session row again
# at the end of the sessions phase, when SIZES has 1), SERVER_ARGS (more session-server flags, e.g.
# --no-offloads), SERVER_BENCH (the ringwire-bench binary that runs session-server, default
# the built one: an older build against the same load generator, side by side), QUIET_WAIT,
# NOTE (first paragraph of the page), FANOUT_FLOOR (1: run the fan-out floor beside ringwire;
# 0: not), FANOUT_FLOOR_BATCH (copies per sendmmsg, 64; at most 1024).
set -euo pipefail

cd "$(dirname "$0")/.."

QUICK=0
BUILD=1
OUT=""
PHASE=all
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --no-build) BUILD=0 ;;
        --out) OUT="$2"; shift ;;
        --phase) PHASE="$2"; shift ;;
        -h|--help) sed -n '2,/^set /p' "$0" | grep '^#'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

SERVER_CORE=${SERVER_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
SOCKETS=${SOCKETS:-4000}
PEERS_PER_IP=${PEERS_PER_IP:-4}
FANOUT_RATE=${FANOUT_RATE:-5}
FANOUT_PAYLOAD=${FANOUT_PAYLOAD:-1191}
FANOUT_FLOOR=${FANOUT_FLOOR:-1}
FANOUT_FLOOR_BATCH=${FANOUT_FLOOR_BATCH:-64}
HANDSHAKE_RTO_MS=${HANDSHAKE_RTO_MS:-4000}
AGAIN=${AGAIN:-1}
HARD_NOFILE=$(ulimit -Hn)
if [[ $QUICK == 1 ]]; then
    SIZES=${SIZES:-"1 100 1000"}
    ONE_SOCKET_SIZES=${ONE_SOCKET_SIZES-"100"}
    HOT=${HOT:-100}
    FANOUT_SIZES=${FANOUT_SIZES:-"10 100"}
    RATE=${RATE:-5000}
    DURATION=${DURATION:-1}
    WARMUP=${WARMUP:-0.3}
    QUIET_WAIT=${QUIET_WAIT:-0}
else
    SIZES=${SIZES:-"1 1000 10000 100000 1000000"}
    ONE_SOCKET_SIZES=${ONE_SOCKET_SIZES-"1000 10000"}
    HOT=${HOT:-1000}
    FANOUT_SIZES=${FANOUT_SIZES:-"10 100 1000 10000"}
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
    echo "nofile hard limit: $HARD_NOFILE; sockets: at most $SOCKETS, $PEERS_PER_IP per loopback address"
    echo "phase: $PHASE  sizes: $SIZES  over one socket: ${ONE_SOCKET_SIZES:-none}  1 session again: $([[ $AGAIN == 1 ]] && echo yes || echo no)  hot subset: $HOT  rate: $RATE/s  duration: ${DURATION}s  warmup: ${WARMUP}s  handshake rate: ${HANDSHAKE_RATE:-unpaced}  client handshake RTO: ${HANDSHAKE_RTO_MS} ms"
    [[ -n ${SERVER_ARGS:-} ]] && echo "session-server flags: $SERVER_ARGS"
    echo "fan-out sizes: $FANOUT_SIZES  publishes: $FANOUT_RATE/s of ${FANOUT_PAYLOAD} B  floor: $([[ $FANOUT_FLOOR == 1 ]] && echo "mmsg-fanout, $FANOUT_FLOOR_BATCH per sendmmsg" || echo off)"
} | tee "$OUT/machine.txt"
"$LOAD" wait-quiet --max-s "$QUIET_WAIT"
cp /proc/loadavg "$OUT/loadavg.start"
head -1 /proc/stat >"$OUT/cpustat.start"
echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"

SERVER_PID=""
cleanup() { [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null || true; }
trap cleanup EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# On-CPU time of every thread of $1 in ns (the scheduler's own account: ns resolution, where
# clock ticks are 10 ms, a large part of a fan-out row's 25 publishes at small N).
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f", s}'; }
# The server's final counters (`final shard K: name=value ...`, summed over shards) as JSON.
final_counters() {
    grep '^final shard' "$1" | tr ' ' '\n' | grep -E '^[a-z_]+=[0-9]+$' |
        awk -F= '{v[$1] += $2} END {sep=""; printf "{"; for (k in v) {printf "%s\"%s\": %d", sep, k, v[k]; sep=", "}; printf "}"}'
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# One run: a fresh server ($1: echo|relay, or floor: the fan-out floor) and the load ($2:
# session|fanout|raw-fanout) with $3 sessions
# (traffic on the first $6 only, if given; over $RUN_PEERS client sockets if set, else
# min($3, $SOCKETS)); the samples go to $4/server.$5.json, the load's report to
# $4/load.$5.json.
run_one() {
    local app=$1 mode=$2 sessions=$3 dir=$4 n=$5 active=()
    [[ -n ${6:-} ]] && active=(--active "$6")
    local log="$dir/server.$n.log" max=$(( sessions + sessions / 10 + 1024 ))
    if [[ $app == floor ]]; then
        "$LOAD" server --kind mmsg-fanout --bind 127.0.0.1:0 --cores "$SERVER_CORE" \
            --fanout-batch "$FANOUT_FLOOR_BATCH" >"$log" 2>&1 &
    else
        "${SERVER_BENCH:-$LOAD}" session-server --app "$app" --cores "$SERVER_CORE" --max-sessions "$max" \
            --keepalive-ms 0 --idle-timeout-ms 3600000 --rekey-after-ms 3600000 \
            --handshakes-per-second 1000000 \
            ${SERVER_ARGS:-} >"$log" 2>&1 &
    fi
    SERVER_PID=$!
    local addr="" key=""
    for _ in $(seq 100); do
        addr=$(grep -o 'listening on [^ ]*' "$log" | awk '{print $3}' || true)
        [[ -n $addr ]] && break
        sleep 0.05
    done
    [[ -n $addr ]] || { echo "server did not start:" >&2; cat "$log" >&2; exit 1; }
    # Sessions are Noise-authenticated: the client needs the server's static public key,
    # which the server prints at start.
    local key_args=()
    if [[ $app != floor ]]; then
        key=$(grep -o 'session public key [^ ]*' "$log" | awk '{print $4}' || true)
        [[ -n $key ]] || { echo "server printed no session public key:" >&2; cat "$log" >&2; exit 1; }
        key_args=(--server-key "$key")
    fi
    local rss_empty; rss_empty=$(rss_kib "$SERVER_PID")
    local peers=${RUN_PEERS:-$(( sessions < SOCKETS ? sessions : SOCKETS ))}
    local rate=$RATE payload=32 pace=()
    if [[ $mode == fanout || $mode == raw-fanout ]]; then rate=$FANOUT_RATE; payload=$FANOUT_PAYLOAD; fi
    [[ -n ${HANDSHAKE_RATE:-} ]] && pace=(--handshake-rate "$HANDSHAKE_RATE")
    local err="$dir/load.$n.stderr"
    local hs0; hs0=$(cpu_ticks "$SERVER_PID")
    "$LOAD" load --mode "$mode" --target "$addr" "${key_args[@]}" --sessions "$sessions" \
        --peers "$peers" --peers-per-ip "$PEERS_PER_IP" --keepalive-ms 0 --idle-timeout-ms 3600000 \
        --rekey-after-ms 3600000 --handshake-rto-ms "$HANDSHAKE_RTO_MS" "${pace[@]}" "${active[@]}" --cores "$LOAD_CORE" --rate "$rate" --payload "$payload" \
        --duration "$DURATION" --warmup "$WARMUP" --poll block \
        --timeout-ms 1000 --json "$dir/load.$n.json" >"$dir/load.$n.txt" 2>"$err" &
    local load_pid=$!
    local rss_idle="" hs1="" cpu0="" cpu1="" ns0="" ns1=""
    while kill -0 "$load_pid" 2>/dev/null; do
        if [[ -z $rss_idle ]] && grep -qs '^load: sessions ready' "$err"; then
            hs1=$(cpu_ticks "$SERVER_PID"); rss_idle=$(rss_kib "$SERVER_PID")
        fi
        if [[ -z $cpu0 ]] && grep -qs '^load: measuring' "$err"; then
            cpu0=$(cpu_ticks "$SERVER_PID"); ns0=$(cpu_ns "$SERVER_PID")
        fi
        if [[ -z $cpu1 ]] && grep -qs '^load: done' "$err"; then
            cpu1=$(cpu_ticks "$SERVER_PID"); ns1=$(cpu_ns "$SERVER_PID")
        fi
        sleep 0.02
    done
    if ! wait "$load_pid"; then
        echo "load with $sessions sessions failed:" >&2; cat "$err" "$dir/load.$n.txt" >&2; exit 1
    fi
    [[ -n $cpu1 ]] || { cpu1=$(cpu_ticks "$SERVER_PID"); ns1=$(cpu_ns "$SERVER_PID"); }
    cat "$dir/load.$n.txt"
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
    local cpu_ns=null
    [[ -n $ns0 && -n $ns1 ]] && cpu_ns=$(( ns1 - ns0 ))
    echo "{\"n\": $n, \"rss_empty_kib\": $rss_empty, \"rss_idle_kib\": ${rss_idle:-null}, \"cpu_ticks\": $(( ${cpu1:-0} - ${cpu0:-0} )), \"cpu_ns\": $cpu_ns, \"measured\": $([[ -n $cpu0 && -n $cpu1 ]] && echo true || echo false), \"handshake_cpu_ticks\": $(( ${hs1:-$hs0} - hs0 )), \"counters\": $(final_counters "$log")}" >"$dir/server.$n.json"
}

if [[ $PHASE == all || $PHASE == sessions ]]; then
    mkdir -p "$OUT/sessions"
    cp "$OUT/machine.txt" "$OUT/sessions/"
    for N in $SIZES; do run_one echo session "$N" "$OUT/sessions" "$N"; done
    # The reference's calibration: N sessions over one client socket, then 1 session again.
    if [[ -n $ONE_SOCKET_SIZES ]]; then
        mkdir -p "$OUT/one-socket"
        cp "$OUT/machine.txt" "$OUT/one-socket/"
        for N in $ONE_SOCKET_SIZES; do
            RUN_PEERS=1 run_one echo session "$N" "$OUT/one-socket" "$N"
        done
    fi
    if [[ $AGAIN == 1 && " $SIZES " == *" 1 "* ]]; then
        mkdir -p "$OUT/again"
        cp "$OUT/machine.txt" "$OUT/again/"
        run_one echo session 1 "$OUT/again" 1
    fi
fi
if [[ $PHASE == all || $PHASE == hot ]]; then
    mkdir -p "$OUT/hot"
    cp "$OUT/machine.txt" "$OUT/hot/"
    for N in $SIZES; do
        if (( N >= HOT )); then run_one echo session "$N" "$OUT/hot" "$N" "$HOT"; fi
    done
fi
if [[ $PHASE == all || $PHASE == fanout ]]; then
    mkdir -p "$OUT/fanout"
    cp "$OUT/machine.txt" "$OUT/fanout/"
    if [[ $FANOUT_FLOOR == 1 ]]; then
        mkdir -p "$OUT/fanout-floor"
        cp "$OUT/machine.txt" "$OUT/fanout-floor/"
    fi
    # Interleaved: ringwire and the floor at each N, one after the other, so both see the
    # same machine.
    for N in $FANOUT_SIZES; do
        run_one relay fanout $(( N + 1 )) "$OUT/fanout" "$N"
        if [[ $FANOUT_FLOOR == 1 ]]; then
            run_one floor raw-fanout $(( N + 1 )) "$OUT/fanout-floor" "$N"
        fi
    done
fi

cp /proc/loadavg "$OUT/loadavg.end"
head -1 /proc/stat >"$OUT/cpustat.end"
echo "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"

if [[ $QUICK == 1 ]]; then PAGE=$OUT/BENCHMARKS-scale.md; else PAGE=docs/BENCHMARKS-scale.md; fi
note=()
[[ -n ${NOTE:-} ]] && note=(--note "$NOTE")
for d in sessions one-socket again hot fanout fanout-floor; do
    cp "$OUT/loadavg.start" "$OUT/loadavg.end" "$OUT/cpustat.start" "$OUT/cpustat.end" "$OUT/$d/" 2>/dev/null || true
done
# The page needs the sessions phase; a fan-out-only run joins an earlier one with
#   ringwire-bench scale-report EARLIER/sessions --fanout $OUT/fanout --markdown ...
if [[ -d $OUT/sessions ]]; then
    parts=("$OUT/sessions")
    [[ -d $OUT/hot ]] && compgen -G "$OUT/hot/load.*.json" >/dev/null && parts+=(--hot "$OUT/hot")
    [[ -d $OUT/one-socket ]] && compgen -G "$OUT/one-socket/load.*.json" >/dev/null &&
        parts+=(--one-socket "$OUT/one-socket")
    [[ -d $OUT/again ]] && [[ -f $OUT/again/load.1.json ]] && parts+=(--again "$OUT/again")
    [[ -d $OUT/fanout ]] && parts+=(--fanout "$OUT/fanout")
    [[ -d $OUT/fanout-floor ]] && parts+=(--fanout-floor "$OUT/fanout-floor")
    "$LOAD" scale-report "${parts[@]}" --markdown "$PAGE" --json "$OUT/scale.json" "${note[@]}"
    sed -n '/^## Results/,/^## How to read/p' "$PAGE" | sed '$d'
else
    for f in "$OUT"/fanout/load.*.txt; do cat "$f"; done
    # The floor's comparison without a sessions phase: the fan-out tables alone.
    if [[ -d $OUT/fanout-floor ]]; then
        "$LOAD" scale-report "$OUT/fanout" --fanout "$OUT/fanout" --fanout-floor "$OUT/fanout-floor" \
            --markdown "$OUT/fanout.md" --json "$OUT/scale.json" "${note[@]}"
        sed -n '/^### Fan-out/,/^## How to read/p' "$OUT/fanout.md" | sed '$d'
    fi
    PAGE="(none: fan-out only; see above)"
fi
if [[ $QUICK == 1 ]]; then
    for f in "$OUT"/*/load.*.json; do
        grep -Eq '"sent": [1-9]' "$f" || { echo "FAILED: $f sent nothing" >&2; exit 1; }
    done
    echo "quick: every run exited 0 and every JSON parses"
fi
echo "wrote $PAGE $OUT/scale.json"
