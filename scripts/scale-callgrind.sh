#!/usr/bin/env bash
# User-space instructions per request of the session-echo server at N sessions, under
# `valgrind --tool=callgrind`: a count that other processes on the machine do not change, where
# the CPU time of scripts/scale.sh moves by some 15% between runs.
#
#   scripts/scale-callgrind.sh [--out DIR] [N ...]      (default N: 1 10000)
#
# Per N: `ringwire-bench session-server --app echo` (scale.sh's flags) starts under
#   valgrind --tool=callgrind --instr-atstart=no
# so the handshakes run uninstrumented; the load (scale.sh's session mode, many sessions per
# socket, open loop at $CG_RATE/s, default 1000, for $CG_DURATION s, default 4, each request
# to the next session in turn) runs its handshakes and warm-up, and the script switches
# instrumentation on at `load: measuring` and off at `load: done` (`callgrind_control -i`),
# then dumps (`callgrind_control -d`), and divides the dump's instructions by the datagrams the
# server echoed while instrumentation was on (the dump's calls of `SessionEcho::on_message`:
# the switch takes effect when valgrind next polls, not at the marker). Writes
# DIR/callgrind.N.{out*,txt} and DIR/load.N.json, and prints one line per N. The server runs far slower under valgrind, so the rate is low
# and the figure counts instructions, not time (no cache misses: the cold-state cost of a
# large N does not show here; see scale.sh for that).
#
# Valgrind 3.19 does not treat `io_uring_enter` as a blocking call, so a shard thread that
# waits in it holds valgrind's lock and every other thread of the server stops until a
# datagram arrives: the script binds the server to a fixed port ($CG_PORT, 47311) and pokes it
# with bursts of 1-byte datagrams (dropped as malformed, outside the measured window) until it has
# printed its address and key, and while each `callgrind_control` request waits for an answer.
#
# Environment: SERVER_CORE (0), LOAD_CORE (1), SOCKETS (4000), PEERS_PER_IP (4), CG_RATE,
# CG_DURATION, CG_PORT, SERVER_BENCH (the ringwire-bench that runs the server: an older build
# side by side), BENCH (the load generator, default target/release/ringwire-bench).
set -euo pipefail

cd "$(dirname "$0")/.."

OUT=""
SIZES=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --out) OUT="$2"; shift ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) SIZES+=("$1") ;;
    esac
    shift
done
[[ ${#SIZES[@]} -gt 0 ]] || SIZES=(1 10000)
OUT=${OUT:-bench-out/scale-callgrind-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
SERVER_CORE=${SERVER_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
SOCKETS=${SOCKETS:-4000}
PEERS_PER_IP=${PEERS_PER_IP:-4}
CG_RATE=${CG_RATE:-1000}
CG_DURATION=${CG_DURATION:-4}
CG_PORT=${CG_PORT:-47311}
BENCH=${BENCH:-target/release/ringwire-bench}
SERVER_BENCH=${SERVER_BENCH:-$BENCH}
command -v valgrind >/dev/null && command -v callgrind_control >/dev/null ||
    { echo "valgrind not available (scripts/setup.sh installs it)" >&2; exit 1; }
[[ -x $BENCH && -x $SERVER_BENCH ]] || { echo "build first: cargo build --release -p ringwire-bench" >&2; exit 1; }

# A burst of 1-byte datagrams the server drops: enough work for valgrind's scheduler to end
# the shard thread's time slice and run the others (see above).
poke() {
    python3 -c 'import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(2000):
    s.sendto(b"x", ("127.0.0.1", int(sys.argv[1])))' "$CG_PORT" 2>/dev/null || true
}
# callgrind_control ARGS..., poking the server until it answers.
ctl() {
    callgrind_control "$@" >/dev/null &
    local pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        poke
        sleep 0.05
    done
    wait "$pid"
}

SERVER_PID=""
cleanup() { [[ -n $SERVER_PID ]] && kill -KILL "$SERVER_PID" 2>/dev/null || true; }
trap cleanup EXIT

for n in "${SIZES[@]}"; do
    log=$OUT/server.$n.log err=$OUT/load.$n.stderr cg=$OUT/callgrind.$n.out
    rm -f "$cg"*
    max=$(( n + n / 10 + 1024 ))
    taskset -c "$SERVER_CORE" valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$cg" \
        "$SERVER_BENCH" session-server --app echo --bind "127.0.0.1:$CG_PORT" --cores "$SERVER_CORE" --max-sessions "$max" \
        --keepalive-ms 0 --idle-timeout-ms 3600000 --rekey-after-ms 3600000 \
        --handshakes-per-second 1000000 >"$log" 2>&1 &
    SERVER_PID=$!
    addr="" key=""
    for _ in $(seq 3000); do
        addr=$(grep -o 'listening on [^ ]*' "$log" | awk '{print $3}' || true)
        key=$(grep -o 'session public key [^ ]*' "$log" | awk '{print $4}' || true)
        [[ -n $addr && -n $key ]] && break
        poke
        sleep 0.1
    done
    [[ -n $addr ]] || { echo "server did not start:" >&2; cat "$log" >&2; exit 1; }
    peers=$(( n < SOCKETS ? n : SOCKETS ))
    "$BENCH" load --mode session --target "$addr" --server-key "$key" --sessions "$n" \
        --peers "$peers" --peers-per-ip "$PEERS_PER_IP" --keepalive-ms 0 --idle-timeout-ms 3600000 \
        --rekey-after-ms 3600000 --handshake-rto-ms 30000 --cores "$LOAD_CORE" --rate "$CG_RATE" \
        --payload 32 --duration "$CG_DURATION" --warmup 1 --poll block --timeout-ms 5000 \
        --json "$OUT/load.$n.json" >"$OUT/load.$n.txt" 2>"$err" &
    load_pid=$!
    # The switch takes effect when valgrind next polls, some time after the marker, so the
    # requests counted are the server's own: calls of `SessionEcho::on_message` in the dump.
    on=0
    while kill -0 "$load_pid" 2>/dev/null; do
        if [[ $on == 0 ]] && grep -q '^load: measuring' "$err"; then
            callgrind_control -i on "$SERVER_PID" >/dev/null &
            on=$!
        fi
        sleep 0.02
    done
    wait "$load_pid" || { echo "load with $n sessions failed:" >&2; cat "$err" >&2; exit 1; }
    [[ $on != 0 ]] || { echo "missed the load's markers ($err)" >&2; exit 1; }
    wait "$on"
    ctl -i off "$SERVER_PID"
    ctl -d "$SERVER_PID"
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
    dumps=("$cg".*)
    total=$(awk '/^totals:/ {s += $2} END {print s + 0}' "${dumps[@]}")
    # Calls of SessionEcho::on_message (the echoes; the pokes are not among them): a function's
    # name is given once, by the first `fn=(id) name` or `cfn=(id) name` with its id, then
    # `(id)` alone.
    calls=$(awk '
        /^c?fn=/ {
            callee = ($1 ~ /^cfn=/); id = $1; sub(/^c?fn=/, "", id)
            if (NF > 1) { $1 = ""; name[id] = $0 }
            if (callee) cur = name[id]
            next
        }
        /^calls=/ { if (cur ~ /SessionEcho.*on_message/) { c = $1; sub(/^calls=/, "", c); s += c } }
        END { print s + 0 }' "${dumps[@]}")
    echo "$n sessions: $total instructions over $calls echoes: $(awk -v t="$total" -v c="$calls" 'BEGIN { if (c > 0) printf "%.0f", t / c; else print "-" }') instructions per request" |
        tee "$OUT/callgrind.$n.txt"
done
