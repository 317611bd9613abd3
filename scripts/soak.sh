#!/usr/bin/env bash
# Soak: a ringwire server (session-echo, 2 shards, loopback) under session churn, 1% loss and
# 1% garbage for N minutes (client: `ringwire-bench soak`). Every 10 s it samples the server's
# RSS, open fds, live sessions and ledger (scripts/soak.py); at the end it drains the server
# with SIGTERM and reports the slopes and the final ledger. It fails (status 1) on a positive
# slope beyond noise (RSS by more than max(1 MiB, 2%) over the run after warm-up, any fd, live
# sessions by more than max(4, 5%)), a ledger gap, or a duplicate or forged echo.
#
#   scripts/soak.sh --minutes N [--sessions 64] [--rate 1000] [--loss 0.01] [--garbage 0.01]
#                   [--out DIR]
#
# Output (samples.csv, the server's and client's logs, report.txt) in DIR (default
# target/soak/<time>). Needs io_uring (probe first; skips with a reason, or fails under
# RINGWIRE_REQUIRE_IO_URING=1). docs/TESTING.md has the figures of long runs.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=10 sessions=64 rate=1000 loss=0.01 garbage=0.01 out=""
while (($#)); do
    case "$1" in
        --minutes) minutes="$2"; shift 2 ;;
        --sessions) sessions="$2"; shift 2 ;;
        --rate) rate="$2"; shift 2 ;;
        --loss) loss="$2"; shift 2 ;;
        --garbage) garbage="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
cargo build -q --release -p ringwire -p ringwire-bench
if ! target/release/ringwire-bench --help >/dev/null || ! cargo run -q --release -p ringwire-shard --example probe >/dev/null; then
    if [[ -n "${RINGWIRE_REQUIRE_IO_URING:-}" && "$RINGWIRE_REQUIRE_IO_URING" != 0 ]]; then
        echo "soak: io_uring is unavailable and RINGWIRE_REQUIRE_IO_URING is set" >&2
        exit 1
    fi
    echo "skipping: soak needs io_uring" >&2
    exit 0
fi
out=${out:-target/soak/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
free_tcp_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
mport=$(free_tcp_port)
server_pid="" client_pid="" sampler_pid=""
cleanup() {
    for p in $sampler_pid $client_pid $server_pid; do
        kill "$p" 2>/dev/null || true
    done
}
trap cleanup EXIT
cat >"$out/server.toml" <<TOML
bind = "127.0.0.1:$port"
shards = 2
pin = false
app = "session-echo"
metrics_addr = "127.0.0.1:$mport"
drain_timeout_ms = 10000
TOML
target/release/ringwire serve --config "$out/server.toml" >"$out/server.out" 2>"$out/server.err" &
server_pid=$!
key=""
for _ in $(seq 1 300); do
    key=$(sed -n 's/.*session public key \([^ ]*\).*/\1/p' "$out/server.err" | head -1)
    [[ -n "$key" ]] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$out/server.err" >&2; exit 1; }
    sleep 0.1
done
[[ -n "$key" ]] || { echo "soak: the server printed no public key" >&2; exit 1; }
echo "soak: $minutes min, server pid $server_pid on 127.0.0.1:$port, output in $out" >&2
cat /proc/loadavg >"$out/loadavg-before"
commit=$(git rev-parse --short HEAD)  # the tree the binaries were just built from
target/release/ringwire-bench soak --server "127.0.0.1:$port" --server-key "$key" \
    --seconds "$((minutes * 60))" --sessions "$sessions" --rate "$rate" --loss "$loss" \
    --garbage "$garbage" >"$out/client.json" 2>"$out/client.err" &
client_pid=$!
python3 scripts/soak.py sample "$server_pid" "http://127.0.0.1:$mport/stats.json" \
    "$out/samples.csv" "$client_pid" &
sampler_pid=$!
status=0
wait "$client_pid" || status=$?
client_pid=""
wait "$sampler_pid" || true
sampler_pid=""
cat /proc/loadavg >"$out/loadavg-after"
kill -TERM "$server_pid"
wait "$server_pid" || { echo "soak: the server exited with status $?" >&2; status=1; }
server_pid=""
((status == 0)) || { echo "soak: the client failed" >&2; tail -5 "$out/client.err" >&2; exit 1; }
{
    echo "soak: commit $commit, kernel $(uname -r), load before $(cut -d' ' -f1-3 "$out/loadavg-before"), after $(cut -d' ' -f1-3 "$out/loadavg-after")"
    python3 scripts/soak.py judge "$out"
} | tee "$out/report.txt"
exit "${PIPESTATUS[0]}"
