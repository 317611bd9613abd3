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
# Then rebinding, with two server threads (unpinned): ringwire --shards 2 (QUIC steering on)
# against quinn --endpoints 2 (SO_REUSEPORT, no steering), 16 connections whose clients move
# to a new port every $REBIND_MS ms: connections lost.
# Prints each quic-load line with the load average before and after; the machine is called
# busy when the load average is 0.3 or more. ringwire serves with retry = "never" and the
# per-source admission limits lifted (every client is 127.0.0.1), as quinn's server, which has
# neither.
#
# Environment: SERVER_CORE (0), LOAD_CORE (1), DURATION (5), REBIND_MS (500).
set -euo pipefail

cd "$(dirname "$0")/.."

if [[ "${1:-}" != "--no-build" ]]; then
    cargo build --release -q -p ringwire -p ringwire-bench
fi
SERVER_CORE=${SERVER_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
DURATION=${DURATION:-5}
REBIND_MS=${REBIND_MS:-500}
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

load() { # server-name phase args...
    local name=$1 phase=$2
    shift 2
    local before after line
    before=$(cut -d' ' -f1 /proc/loadavg)
    line=$($BENCH quic-load --server "127.0.0.1:$PORT" --duration "$DURATION" "$@")
    after=$(cut -d' ' -f1 /proc/loadavg)
    echo "$name $phase: $line loadavg=$before->$after"
}

for phase in datagram stream handshake; do
    names="ringwire quinn"
    [[ $phase == handshake ]] && names="ringwire quinn ringwire-retry"
    for name in $names; do
        start_server "$name" 1
        case $phase in
            handshake) load "$name" "$phase" --mode handshake --conns 4 --window 1 --core "$LOAD_CORE" ;;
            *) load "$name" "$phase" --mode "$phase" --conns 8 --window 8 --core "$LOAD_CORE" ;;
        esac
        stop_server
    done
done
for name in ringwire quinn; do
    start_server "$name" 2
    load "$name" "rebind" --mode datagram --conns 16 --window 1 --rebind-ms "$REBIND_MS"
    stop_server
done
echo "commit $(git rev-parse --short HEAD) kernel $(uname -r)"
