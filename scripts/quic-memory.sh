#!/usr/bin/env bash
# QUIC: memory per idle connection and server CPU per connection, ringwire's quic-echo (one
# shard) against quinn on tokio (one endpoint), side by side, on loopback.
#
#   scripts/quic-memory.sh [--no-build]
#
# For each server and each count N in $CONNS: a fresh server on $SERVER_CORE; its resident
# memory (VmRSS) and CPU time (utime + stime) read before; then `ringwire-bench quic-load
# --mode datagram --window 0 --conns N` on $LOAD_CORE opens N connections (one UDP socket
# each, one after another) and holds them, sending nothing, for $HOLD s; the server's VmRSS is
# sampled every 0.2 s meanwhile. Prints, per run: the peak RSS growth over N (bytes per
# connection, fixed costs included) and the server CPU over N (handshake and idle hold); then,
# per server, the growth between the smallest and largest N over their difference (fixed costs
# cancelled: the figure to quote). The machine is called busy when the load average is 0.3 or
# more.
#
# ringwire serves with retry = "never" and the per-source admission limits lifted (every
# client is 127.0.0.1), as quinn's server, which has neither.
#
# Environment: SERVER_CORE (0), LOAD_CORE (1), CONNS ("500 2000"), HOLD (5),
# BIN (target/release), SERVER_CONFIG (the config above; empty: none, for binaries that
# predate [quic.admission], whose QUIC had no admission and no Retry by default).
set -euo pipefail

cd "$(dirname "$0")/.."

if [[ "${1:-}" != "--no-build" ]]; then
    cargo build --release -q -p ringwire -p ringwire-bench
fi
SERVER_CORE=${SERVER_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
CONNS=${CONNS:-"500 2000"}
HOLD=${HOLD:-5}
BIN=${BIN:-target/release}
RW=$BIN/ringwire
BENCH=$BIN/ringwire-bench
PORT=4533
CLK_TCK=$(getconf CLK_TCK)
OUT=$(mktemp -d)

server_pid=""
stop_server() {
    if [[ -n "$server_pid" ]]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}
trap 'stop_server; rm -rf "$OUT"' EXIT

SERVER_CONFIG=${SERVER_CONFIG-$OUT/quic.toml}
cat >"$OUT/quic.toml" <<'TOML'
[quic]
retry = "never"
[quic.admission]
max_sessions_per_prefix = 1000000
new_sessions_per_prefix_per_second = 1000000
new_sessions_per_prefix_burst = 1000000
TOML

rss() { awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$1/status"; }
# utime + stime of the whole process, in nanoseconds.
cpu() { awk -v t="$CLK_TCK" '{ printf "%.0f\n", ($14 + $15) * 1e9 / t }' "/proc/$1/stat"; }

start_server() { # name
    PORT=$((PORT + 1))
    case "$1" in
        ringwire) $RW serve ${SERVER_CONFIG:+--config "$SERVER_CONFIG"} --app quic-echo --bind "127.0.0.1:$PORT" --shards 1 --cores "$SERVER_CORE" >/dev/null 2>&1 & ;;
        quinn) $BENCH quic-server --bind "127.0.0.1:$PORT" --endpoints 1 --cores "$SERVER_CORE" >/dev/null 2>&1 & ;;
    esac
    server_pid=$!
    sleep 1
}

declare -A peak
for name in ringwire quinn; do
    for n in $CONNS; do
        start_server "$name"
        before=$(cut -d' ' -f1 /proc/loadavg)
        rss0=$(rss "$server_pid")
        cpu0=$(cpu "$server_pid")
        $BENCH quic-load --server "127.0.0.1:$PORT" --mode datagram --window 0 --conns "$n" \
            --duration "$HOLD" --core "$LOAD_CORE" >"$OUT/load" &
        load_pid=$!
        max=$rss0
        while kill -0 "$load_pid" 2>/dev/null; do
            r=$(rss "$server_pid")
            ((r > max)) && max=$r
            sleep 0.2
        done
        wait "$load_pid"
        cpu1=$(cpu "$server_pid")
        after=$(cut -d' ' -f1 /proc/loadavg)
        stop_server
        lost=$(grep -o 'conns_lost=[0-9]*' "$OUT/load" | head -1)
        peak[$name/$n]=$max
        echo "$name conns=$n rss_before=$rss0 rss_peak=$max bytes_per_conn=$(((max - rss0) / n)) cpu_us_per_conn=$(((cpu1 - cpu0) / n / 1000)) $lost loadavg=$before->$after"
    done
    first=${CONNS%% *}
    last=${CONNS##* }
    if [[ "$first" != "$last" ]]; then
        echo "$name slope: bytes_per_conn=$(((peak[$name/$last] - peak[$name/$first]) / (last - first))) ($first -> $last connections)"
    fi
done
echo "commit $(git rev-parse --short HEAD) kernel $(uname -r)"
