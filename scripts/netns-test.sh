#!/usr/bin/env bash
# Multi-node gateway test in network namespaces: a relay gateway (`ringwire serve --app relay`,
# 2 shards) in one namespace and several client nodes in others, each joined to the gateway by
# a veth pair, each running the load generator in relay mode (its peers' sessions forward
# through the gateway to each other). nftables `numgen random` rules in the gateway's namespace
# drop a share of the datagrams both ways (this kernel has no netem), with counters. The
# clients run, the gateway restarts (a new process, a new identity), and the clients run again
# against the new one. (Not yet: a restart while the load generator runs; its open loop waits
# for ever to send on the sessions the restart ended. docs/TESTING.md.)
#
# Checked end to end: every datagram that reached the gateway's namespace was dropped by the
# loss rule or handed to UDP (nft counters against the namespace's UDP counters); every
# datagram a gateway read reached its session layer and every handoff between its shards
# arrived or was counted (each run's final counters); what UDP took and no gateway read is
# reported as left in the socket at a restart; each client's datagrams were received or
# counted lost by it, none received twice or misrouted; the second run gets traffic through.
#
#   scripts/netns-test.sh [--clients N] [--loss PERCENT] [--seconds S]
#
# Needs root, network namespaces and io_uring; skips with `skipping: <reason>` where they are
# not allowed (fails instead under RINGWIRE_REQUIRE_NETNS=1). Installs nftables with apt-get
# if `nft` is missing. Cleans up (processes, namespaces) on any exit.
set -euo pipefail
cd "$(dirname "$0")/.."
clients=3 loss=2 seconds=6
while (($#)); do
    case "$1" in
        --clients) clients="$2"; shift 2 ;;
        --loss) loss="$2"; shift 2 ;;
        --seconds) seconds="$2"; shift 2 ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
skip() {
    if [[ -n "${RINGWIRE_REQUIRE_NETNS:-}" && "$RINGWIRE_REQUIRE_NETNS" != 0 ]]; then
        echo "netns-test: $1 (RINGWIRE_REQUIRE_NETNS is set)" >&2
        exit 1
    fi
    echo "skipping: netns-test: $1" >&2
    exit 0
}
((EUID == 0)) || skip "needs root for network namespaces"
probe_ns="rwnt-probe-$$"
ip netns add "$probe_ns" 2>/dev/null || skip "network namespaces are not allowed here"
ip netns del "$probe_ns"
if ! command -v nft >/dev/null; then
    echo "netns-test: installing nftables" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables; } >/dev/null 2>&1 ||
        skip "nftables is not installed and apt-get could not install it"
fi
cargo build -q --release -p ringwire -p ringwire-bench
cargo run -q --release -p ringwire-shard --example probe >/dev/null 2>&1 || skip "io_uring is unavailable"

out=target/netns-test
rm -rf "$out"
mkdir -p "$out"
gw="rwnt-gw-$$"
nodes=()
pids=()
cleanup() {
    local status=$?
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for n in "${nodes[@]}"; do ip netns del "$n" 2>/dev/null || true; done
    ((status == 0)) || echo "netns-test: FAILED (logs in $out)" >&2
}
trap cleanup EXIT
in_ns() { local ns="$1"; shift; ip netns exec "$ns" "$@"; }

# Topology: client i is 10.77.i.2, the gateway 10.77.i.1 on the veth towards it.
ip netns add "$gw"; nodes+=("$gw")
in_ns "$gw" ip link set lo up
for i in $(seq 1 "$clients"); do
    c="rwnt-c$i-$$"
    ip netns add "$c"; nodes+=("$c")
    in_ns "$c" ip link set lo up
    ip link add "rwg$i-$$" netns "$gw" type veth peer name "rwc$i-$$" netns "$c"
    in_ns "$gw" ip addr add "10.77.$i.1/24" dev "rwg$i-$$"
    in_ns "$gw" ip link set "rwg$i-$$" up
    in_ns "$c" ip addr add "10.77.$i.2/24" dev "rwc$i-$$"
    in_ns "$c" ip link set "rwc$i-$$" up
done
# Loss both ways at the gateway, counted: `arrived` and `sent` count every gateway datagram
# before the loss rules; `dropped_in` and `dropped_out` count what the rules drop.
in_ns "$gw" nft -f - <<NFT
table inet rwnt {
    counter arrived {}
    counter dropped_in {}
    counter sent {}
    counter dropped_out {}
    chain input {
        type filter hook input priority 0; policy accept;
        udp dport 4500 counter name arrived
        udp dport 4500 numgen random mod 100 < $loss counter name dropped_in drop
    }
    chain output {
        type filter hook output priority 0; policy accept;
        udp sport 4500 counter name sent
        udp sport 4500 numgen random mod 100 < $loss counter name dropped_out drop
    }
}
NFT
nft_packets() { in_ns "$gw" nft list counter inet rwnt "$1" | sed -n 's/.*packets \([0-9]*\).*/\1/p'; }
udp_snmp() {
    # The gateway namespace's UDP counters: InDatagrams NoPorts InErrors.
    in_ns "$gw" awk '/^Udp: [0-9]/ { print $2, $3, $4 }' /proc/net/snmp
}

gateway_pid=""
start_gateway() {
    local run=$1
    ip netns exec "$gw" target/release/ringwire serve --bind 0.0.0.0:4500 --shards 2 \
        --app relay >"$out/gateway$run.out" 2>"$out/gateway$run.err" &
    gateway_pid=$!
    pids+=("$gateway_pid")
    key=""
    for _ in $(seq 1 300); do
        key=$(sed -n 's/.*session public key \([^ ]*\).*/\1/p' "$out/gateway$run.err" | head -1)
        [[ -n "$key" ]] && return 0
        kill -0 "$gateway_pid" 2>/dev/null || { cat "$out/gateway$run.err" >&2; return 1; }
        sleep 0.1
    done
    echo "netns-test: gateway $run printed no key" >&2
    return 1
}
stop_gateway() {
    kill -TERM "$gateway_pid"
    wait "$gateway_pid" || { echo "netns-test: gateway exited with status $?" >&2; return 1; }
}
client_pids=()
start_clients() {
    local run=$1
    client_pids=()
    for i in $(seq 1 "$clients"); do
        ip netns exec "rwnt-c$i-$$" target/release/ringwire-bench load --target "10.77.$i.1:4500" \
            --mode relay --server-key "$key" --peers 16 --rate 2000 --duration "$seconds" \
            --warmup 0.5 --poll block --json "$out/client$i.run$run.json" \
            >"$out/client$i.run$run.out" 2>&1 &
        client_pids+=($!)
        pids+=($!)
    done
}
wait_clients() {
    for p in "${client_pids[@]}"; do wait "$p" || { echo "netns-test: a client failed" >&2; return 1; }; done
}

read -r in0 noports0 inerr0 <<<"$(udp_snmp)"
# Run 1; the gateway restarts; run 2 against the new gateway.
start_gateway 1
start_clients 1
wait_clients
stop_gateway
start_gateway 2
start_clients 2
wait_clients
stop_gateway

read -r in1 noports1 inerr1 <<<"$(udp_snmp)"
python3 - "$out" "$clients" "$(nft_packets arrived)" "$(nft_packets dropped_in)" \
    "$(nft_packets sent)" "$(nft_packets dropped_out)" "$((in1 - in0))" "$((noports1 - noports0))" \
    "$((inerr1 - inerr0))" <<'PY'
import json, sys
out, clients = sys.argv[1], int(sys.argv[2])
arrived, dropped_in, sent, dropped_out, in_dgrams, noports, inerrors = map(int, sys.argv[3:10])
fail = []
def final(path):
    t = {}
    for line in open(path):
        if line.startswith(("final shard ", "app shard ")):
            for f in line.split(": ", 1)[1].split():
                k, _, v = f.partition("=")
                if v.isdigit():
                    t[k] = t.get(k, 0) + int(v)
    return t
print(f"netns-test: gateway namespace: {arrived} arrived, {dropped_in} dropped by the loss rule, "
      f"UDP took {in_dgrams} (+{noports} to no port while restarting, +{inerrors} errors); "
      f"{sent} sent, {dropped_out} dropped on the way out")
if arrived != dropped_in + in_dgrams + noports + inerrors:
    fail.append(f"namespace ledger: {arrived} arrived != {dropped_in} + {in_dgrams} + {noports} + {inerrors}")
read_total = 0
for run in (1, 2):
    t = final(f"{out}/gateway{run}.out")
    g = lambda k: t.get(k, 0)
    read_total += g("datagrams_in") + g("kernel_drops")
    gaps = {
        "read = taken by sessions": g("datagrams_in") - g("session_datagrams"),
        "endpoint = taken + handoffs received":
            g("session_endpoint_datagrams") - g("session_datagrams") - g("session_handoffs_received"),
        "handed off = received + full + closed":
            g("session_handed_off") - g("session_handoffs_received") - g("session_handoff_full")
            - g("session_handoff_closed"),
    }
    print(f"  gateway run {run}: read {g('datagrams_in')}, kernel drops {g('kernel_drops')}, "
          f"sessions accepted {g('sessions_accepted')}, ledger gaps {gaps}")
    if not t:
        fail.append(f"gateway run {run}: no final counters")
    fail += [f"gateway run {run}: {k} gap {v}" for k, v in gaps.items() if v]
left = in_dgrams - read_total
print(f"  UDP took {in_dgrams}; the gateways read or counted {read_total}; left in the socket at "
      f"a stop: {left}")
if left < 0:
    fail.append("the gateways counted more than UDP delivered")
for run in (1, 2):
    for i in range(1, clients + 1):
        r = json.load(open(f"{out}/client{i}.run{run}.json"))
        s, got, lost = r["sent"], r["received"], r["lost"]
        print(f"  client {i} run {run}: sent {s} received {got} lost {lost} misrouted "
              f"{r['misrouted']} sessions {r.get('sessions_established')}")
        if got + lost != s:
            fail.append(f"client {i} run {run}: {got} received + {lost} lost != {s} sent")
        if r["misrouted"]:
            fail.append(f"client {i} run {run}: misrouted {r['misrouted']}")
        if run == 2 and got == 0:
            fail.append(f"client {i}: nothing through the restarted gateway")
if fail:
    print("netns-test: FAIL: " + "; ".join(fail))
    sys.exit(1)
print("netns-test: ok")
PY
