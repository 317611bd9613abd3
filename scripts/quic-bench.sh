#!/usr/bin/env bash
# QUIC: ringwire's quic-echo against quinn on tokio, side by side, on loopback.
#
#   scripts/quic-bench.sh [--no-build]
#
# Servers (each fresh, one at a time, server on $SERVER_CORE, client on $LOAD_CORE):
#   ringwire        target/release/ringwire serve --app quic-echo --shards 1
#   quinn           ringwire-bench quic-server --endpoints 1     (one endpoint, one thread)
# Phases, each `ringwire-bench quic-load` for $DURATION s against each server:
#   datagram        64-byte DATAGRAM frames, 8 connections, 8 outstanding each
#   stream          64-byte request/response streams, 8 connections, 8 outstanding each
#   handshake       a new connection per request (handshake, one stream echo, close), 4 at once
#                   (also against ringwire with retry = "always": what a Retry costs)
# Then two server threads (unpinned): ringwire --shards 2 (QUIC steering on) against quinn
# --endpoints 2 (one endpoint per thread on SO_REUSEPORT, no steering), 16 connections with one
# DATAGRAM frame outstanding each, first with clients that keep their ports (the two-thread
# throughput, and the control for the next row), then with clients that move to a new port
# every $REBIND_MS ms: requests and connections lost.
# Prints each quic-load line with the load average before and after, and the server's CPU time
# during the load (utime + stime of all its threads, from /proc): server_cpu_s, and
# per_server_cpu_s = responses / server_cpu_s, the throughput per core of server CPU (the
# closed-loop rate alone is bounded by the client and by latency, not by the server's core).
# Client datagrams per response each way (client_tx/rx_per_response) tell how many requests
# share a packet; client_cpu_s is the client thread's CPU time in the phase (near the phase's
# length: the client, not the server, bounds the closed-loop rate); server_sleeps_per_response
# counts the server threads' voluntary context switches (each a park in io_uring_enter or
# epoll_wait, and a wake-up to pay) per response. The machine is called busy when the load average is 0.3 or more; steal_pct is the share of the machine's CPU time the hypervisor took during the line (over 2%: disturbed, as scripts/bench.sh judges a cell). ringwire serves with retry = "never" and the
# per-source admission limits lifted (every client is 127.0.0.1), as quinn's server, which has
# neither.
#
# Environment: SERVER_CORE (0), LOAD_CORE (1), DURATION (5), REBIND_MS (500), ROUNDS (1: the
# one-thread phases run this many times, ringwire and quinn alternating, for a median of
# several samples instead of one), QUIET_WAIT (300: before the first server, wait up to this
# many seconds for the 1-minute load average to fall below 0.3, `ringwire-bench wait-quiet`,
# as scripts/bench.sh does; 0: start at once).
set -euo pipefail

cd "$(dirname "$0")/.."

if [[ "${1:-}" != "--no-build" ]]; then
    cargo build --release -q -p ringwire -p ringwire-bench
fi
SERVER_CORE=${SERVER_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
DURATION=${DURATION:-5}
REBIND_MS=${REBIND_MS:-500}
ROUNDS=${ROUNDS:-1}
QUIET_WAIT=${QUIET_WAIT:-300}
[[ $QUIET_WAIT =~ ^[0-9]+$ ]] || { echo "QUIET_WAIT needs whole seconds" >&2; exit 2; }
RW=target/release/ringwire
BENCH=target/release/ringwire-bench
PORT=4433
CONFIG=$(mktemp)
cat >"$CONFIG" <<'TOML'
[quic]
retry = "never"
[quic.admission]
max_sessions_per_prefix = 1000000
new_sessions_per_prefix_per_second = 1000000
new_sessions_per_prefix_burst = 1000000
TOML
RETRY_CONFIG=$(mktemp)
sed 's/^retry = "never"/retry = "always"/' "$CONFIG" >"$RETRY_CONFIG"

server_pid=""
stop_server() {
    if [[ -n "$server_pid" ]]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}
trap 'stop_server; rm -f "$CONFIG" "$RETRY_CONFIG"' EXIT

start_server() { # name threads
    local name=$1 threads=$2
    PORT=$((PORT + 1))
    case "$name/$threads" in
        ringwire-retry/1) $RW serve --config "$RETRY_CONFIG" --app quic-echo --bind "127.0.0.1:$PORT" --shards 1 --cores "$SERVER_CORE" >/dev/null 2>&1 & ;;
        ringwire/1) $RW serve --config "$CONFIG" --app quic-echo --bind "127.0.0.1:$PORT" --shards 1 --cores "$SERVER_CORE" >/dev/null 2>&1 & ;;
        ringwire/*) $RW serve --config "$CONFIG" --app quic-echo --bind "127.0.0.1:$PORT" --shards "$threads" --no-pin >/dev/null 2>&1 & ;;
        quinn/1) $BENCH quic-server --bind "127.0.0.1:$PORT" --endpoints 1 --cores "$SERVER_CORE" >/dev/null 2>&1 & ;;
        quinn/*) $BENCH quic-server --bind "127.0.0.1:$PORT" --endpoints "$threads" >/dev/null 2>&1 & ;;
    esac
    server_pid=$!
    sleep 1
}

# $2 (an awk program printing one number) over /proc/PID/task/*/$1 of the server, summed.
server_sum() {
    local t sum=0
    for t in /proc/"$server_pid"/task/*/"$1"; do
        sum=$((sum + $(awk "$2" "$t" 2>/dev/null || echo 0)))
    done
    echo "$sum"
}
# CPU ticks (utime + stime) of every thread of the server so far.
server_ticks() { server_sum stat '{print $14 + $15}'; }
# Voluntary context switches of every thread of the server so far (each a sleep and a wake).
server_sleeps() { server_sum status '/^voluntary_ctxt_switches/ {print $2}'; }

# The first line of /proc/stat: total CPU ticks and the hypervisor's steal ("total steal").
cpu_steal() { awk '/^cpu / {t = 0; for (i = 2; i <= 9; i++) t += $i; print t, $9; exit}' /proc/stat; }
# Steal between two cpu_steal readings, % of all CPU time.
steal_pct() { awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " "); t = y[1] - x[1]; if (t > 0) printf "%.1f", (y[2] - x[2]) * 100 / t; else print "-" }'; }

load() { # server-name phase args...
    local name=$1 phase=$2
    shift 2
    local before after line t0 t1 s0 s1 responses hz cpu per sleeps
    hz=$(getconf CLK_TCK)
    before=$(cut -d' ' -f1 /proc/loadavg)
    local c0 c1
    c0=$(cpu_steal)
    t0=$(server_ticks)
    s0=$(server_sleeps)
    line=$($BENCH quic-load --server "127.0.0.1:$PORT" --duration "$DURATION" "$@")
    t1=$(server_ticks)
    s1=$(server_sleeps)
    after=$(cut -d' ' -f1 /proc/loadavg)
    c1=$(cpu_steal)
    responses=$(sed -n 's/.* responses=\([0-9]*\).*/\1/p' <<<"$line")
    cpu=$(awk -v t=$((t1 - t0)) -v hz="$hz" 'BEGIN { printf "%.2f", t / hz }')
    per=$(awk -v r="${responses:-0}" -v c="$cpu" 'BEGIN { if (c > 0) printf "%.0f", r / c; else print "-" }')
    sleeps=$(awk -v r="${responses:-0}" -v s=$((s1 - s0)) 'BEGIN { if (r > 0) printf "%.3f", s / r; else print "-" }')
    echo "$name $phase: $line server_cpu_s=$cpu per_server_cpu_s=$per server_sleeps_per_response=$sleeps loadavg=$before->$after steal_pct=$(steal_pct "$c0" "$c1")"
}

# Report (and wait for) a quiet machine before the first server: its verdict line is the run's.
"$BENCH" wait-quiet --max-s "$QUIET_WAIT"
echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"

for phase in datagram stream handshake; do
    names="ringwire quinn"
    [[ $phase == handshake ]] && names="ringwire quinn ringwire-retry"
    for _ in $(seq "$ROUNDS"); do
        for name in $names; do
            start_server "$name" 1
            case $phase in
                handshake) load "$name" "$phase" --mode handshake --conns 4 --window 1 --core "$LOAD_CORE" ;;
                *) load "$name" "$phase" --mode "$phase" --conns 8 --window 8 --core "$LOAD_CORE" ;;
            esac
            stop_server
        done
    done
done
for phase in two-threads rebind; do
    for name in ringwire quinn; do
        start_server "$name" 2
        case $phase in
            two-threads) load "$name" "$phase" --mode datagram --conns 16 --window 1 ;;
            rebind) load "$name" "$phase" --mode datagram --conns 16 --window 1 --rebind-ms "$REBIND_MS" ;;
        esac
        stop_server
    done
done
echo "commit $(git rev-parse --short HEAD) kernel $(uname -r)"
