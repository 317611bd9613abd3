#!/usr/bin/env bash
# Multi-node gateway test in network namespaces: a relay gateway (`ringwire serve --app relay`,
# 2 shards) in one namespace and several client nodes in others, each joined to the gateway by
# a veth pair, each running the load generator in relay mode (pairs of its sessions forward
# probes to each other through the gateway, open loop). nftables `numgen random` rules in the
# gateway's namespace drop a share of the datagrams both ways (this kernel has no netem), with
# counters. A quarter into the clients' run, the gateway restarts (SIGTERM: it drains, closing every
# session with ShuttingDown; a new process with the same key file): the clients count their
# sessions lost, open them again against the new gateway and go on; each client ends on its
# own at its deadline with its totals.
#
# Checked end to end, every datagram delivered or counted under a reason on some node:
# - the gateway namespace: every datagram that arrived was dropped by the loss rule, read by a
#   gateway, refused by UDP (no port while restarting, errors) or, the rest and never negative,
#   closed unread in a gateway's socket at its stop (nft counters against /proc/net/snmp, whose
#   InDatagrams counts reads: equal to the gateways' own datagrams_in);
# - each gateway run: every datagram it read reached its session layer, every handoff between
#   its shards arrived or was counted (its final counters), and it drained gracefully;
# - each client: sent = received + lost, nothing misrouted, every session it lost opened again,
#   traffic through the restarted gateway; and over all clients, the probes lost are no more
#   than the datagrams the nodes counted as dropped (loss rules both ways, UDP's refusals, what
#   each gateway left unread at its stop, every drop reason of the gateways' session layer and
#   relay, the clients' own endpoint drops and failed sends).
#
#   scripts/netns-test.sh [--clients N] [--loss PERCENT] [--seconds S]
#
# Needs root, network namespaces and io_uring; skips with `skipping: <reason>` where they are
# not allowed (fails instead under RINGWIRE_REQUIRE_NETNS=1; without io_uring, also under
# RINGWIRE_REQUIRE_IO_URING=1). Installs nftables with apt-get
# if `nft` is missing. Cleans up (processes, namespaces) on any exit. About 15 s after the
# release build.
set -euo pipefail
cd "$(dirname "$0")/.."
clients=3 loss=2 seconds=8
while (($#)); do
    case "$1" in
        --clients) clients="$2"; shift 2 ;;
        --loss) loss="$2"; shift 2 ;;
        --seconds) seconds="$2"; shift 2 ;;
        -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
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
if ! cargo run -q --release -p ringwire-shard --example probe >/dev/null 2>&1; then
    if [[ -n "${RINGWIRE_REQUIRE_IO_URING:-}" && "$RINGWIRE_REQUIRE_IO_URING" != 0 ]]; then
        echo "netns-test: io_uring is unavailable (RINGWIRE_REQUIRE_IO_URING is set)" >&2
        exit 1
    fi
    skip "io_uring is unavailable"
fi

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

# One key file for both gateway runs, so the clients' sessions reopen against the second.
# The per-prefix admission limits are lifted: each client node stands for many peers. GSO is
# off: netfilter sees a GSO send as one packet, so the loss rule would drop (and count) up to
# 64 datagrams as one. The drain deadline is a liveness guard only (a drain ends once every
# goodbye is sent; the check below fails a drain that reached its deadline).
target/release/ringwire keygen --out "$out/gateway.key" >/dev/null
cat >"$out/gateway.toml" <<TOML
bind = "0.0.0.0:4500"
shards = 2
pin = false
app = "relay"
drain_timeout_ms = 30000
[shard]
gso = "off"
[security]
key_file = "$out/gateway.key"
[sessions.admission]
max_sessions_per_prefix = 1000000
new_sessions_per_prefix_per_second = 1000000
new_sessions_per_prefix_burst = 1000000
TOML

gateway_pid=""
start_gateway() {
    local run=$1
    ip netns exec "$gw" target/release/ringwire serve --config "$out/gateway.toml" \
        >"$out/gateway$run.out" 2>"$out/gateway$run.err" &
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
    local status=0
    wait "$gateway_pid" || status=$?
    ((status == 0)) || { echo "netns-test: gateway exited with status $status" >&2; return 1; }
}
client_pids=()
start_clients() {
    for i in $(seq 1 "$clients"); do
        # `timeout`: a client that failed to end on its own fails the test instead of hanging.
        ip netns exec "rwnt-c$i-$$" timeout 120 target/release/ringwire-bench load \
            --target "10.77.$i.1:4500" --mode relay --server-key "$key" --peers 16 \
            --rate 1000 --duration "$seconds" --warmup 0.5 --timeout-ms 1000 \
            --keepalive-ms 500 --idle-timeout-ms 3000 --poll block \
            --json "$out/client$i.json" >"$out/client$i.out" 2>"$out/client$i.err" &
        client_pids+=($!)
        pids+=($!)
    done
}
wait_clients() {
    local status
    for i in $(seq 1 "$clients"); do
        status=0
        wait "${client_pids[$((i - 1))]}" || status=$?
        ((status == 0)) || { echo "netns-test: client $i exited with status $status" >&2; return 1; }
    done
}
await_measuring() {
    for i in $(seq 1 "$clients"); do
        for _ in $(seq 1 600); do
            grep -q 'load: measuring' "$out/client$i.err" 2>/dev/null && break
            kill -0 "${client_pids[$((i - 1))]}" 2>/dev/null ||
                { echo "netns-test: client $i ended early" >&2; cat "$out/client$i.err" >&2; return 1; }
            sleep 0.1
        done
        grep -q 'load: measuring' "$out/client$i.err" ||
            { echo "netns-test: client $i never started measuring" >&2; return 1; }
    done
}

read -r in0 noports0 inerr0 <<<"$(udp_snmp)"
# The clients run; a quarter of the way in, the gateway restarts under their traffic.
start_gateway 1
start_clients
await_measuring
sleep "$(python3 -c "print($seconds / 4)")"
echo "netns-test: restarting the gateway under traffic" >&2
stop_gateway
start_gateway 2
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
# UDP counts InDatagrams when a socket reads one: what was queued to a gateway's socket and
# never read (it closed at a stop) is the rest of the namespace's ledger.
unread = arrived - dropped_in - in_dgrams - noports - inerrors
print(f"netns-test: gateway namespace: {arrived} arrived = {dropped_in} dropped by the loss rule "
      f"+ {in_dgrams} read by a gateway + {noports} to no port (restarting) + {inerrors} UDP "
      f"errors + {unread} closed unread at a stop; {sent} sent, {dropped_out} dropped on the "
      f"way out")
if unread < 0:
    fail.append(f"namespace ledger: {arrived} arrived < {dropped_in} + {in_dgrams} + {noports} + {inerrors}")
read_total = kernel_drops = 0
# What a gateway counted as dropped, under every reason its session layer and the relay have.
GATEWAY_DROPS = ("session_drops", "session_control_dropped", "session_draining_discarded",
                 "session_handoff_full", "session_handoff_closed", "session_misrouted",
                 "session_relay_full", "session_relay_closed", "session_relayed_send_full",
                 "session_relayed_send_too_large", "session_relayed_unknown",
                 "session_shed_messages", "relay_unreachable", "relay_dropped_full",
                 "relay_malformed", "relay_notices_dropped")
gateway_drops = 0
for run in (1, 2):
    t = final(f"{out}/gateway{run}.out")
    g = lambda k: t.get(k, 0)
    read_total += g("datagrams_in")
    kernel_drops += g("kernel_drops")
    gateway_drops += sum(g(k) for k in GATEWAY_DROPS)
    gaps = {
        "read = taken by sessions": g("datagrams_in") - g("session_datagrams"),
        "endpoint = taken + handoffs received":
            g("session_endpoint_datagrams") - g("session_datagrams") - g("session_handoffs_received"),
        # A handoff the mesh took is received by its owner; one it refused (the owner's lane
        # full, or its shard stopped first at a restart) is counted under its own drop reason,
        # already among the drops above, and never reaches the owner.
        "handed off = received":
            g("session_handed_off") - g("session_handoffs_received"),
    }
    drops = {k: g(k) for k in GATEWAY_DROPS if g(k)}
    print(f"  gateway run {run}: read {g('datagrams_in')}, kernel drops {g('kernel_drops')}, "
          f"sessions accepted {g('sessions_accepted')}, drops {drops}, ledger gaps {gaps}")
    if not t:
        fail.append(f"gateway run {run}: no final counters")
    fail += [f"gateway run {run}: {k} gap {v}" for k, v in gaps.items() if v]
    if "ringwire: drained:" not in open(f"{out}/gateway{run}.err").read():
        fail.append(f"gateway run {run}: did not drain gracefully")
print(f"  UDP: {in_dgrams} read, the gateways counted {read_total} read; {inerrors} UDP errors, "
      f"the gateways counted {kernel_drops} overflows")
if in_dgrams != read_total:
    fail.append(f"UDP says {in_dgrams} read, the gateways {read_total}")
if kernel_drops > inerrors:
    fail.append(f"the gateways counted {kernel_drops} overflows, UDP {inerrors} errors")
lost_total = client_drops = 0
for i in range(1, clients + 1):
    r = json.load(open(f"{out}/client{i}.json"))
    s, got, lost = r["sent"], r["received"], r["lost"]
    lost_total += lost
    client_drops += r["endpoint_drops"] + r["send_failed"]
    print(f"  client {i}: sent {s} received {got} lost {lost} unsent {r['unsent']} misrouted "
          f"{r['misrouted']} unreachable {r['unreachable']} sessions {r['sessions_established']} "
          f"lost {r['sessions_lost']} reopened {r['sessions_reopened']}; dropped by its endpoint "
          f"{r['endpoint_drops']}, send failed {r['send_failed']}")
    if got + lost != s:
        fail.append(f"client {i}: {got} received + {lost} lost != {s} sent")
    if r["misrouted"]:
        fail.append(f"client {i}: misrouted {r['misrouted']}")
    established = r["sessions_established"]
    if established + r["handshake_failures"] != 16 or established < 2:
        fail.append(f"client {i}: {established} of 16 sessions opened")
    if r["sessions_lost"] < established:
        fail.append(f"client {i}: lost {r['sessions_lost']} sessions, not all {established}, at the restart")
    if r["sessions_reopened"] != r["sessions_lost"]:
        fail.append(f"client {i}: reopened {r['sessions_reopened']} of {r['sessions_lost']} lost sessions")
    if got == 0:
        fail.append(f"client {i}: nothing delivered")
counted = dropped_in + dropped_out + noports + inerrors + unread + gateway_drops + client_drops
print(f"  probes lost {lost_total} <= datagrams counted dropped {counted} (loss rules "
      f"{dropped_in} + {dropped_out}, no port {noports}, UDP errors {inerrors}, closed unread "
      f"{unread}, by the gateways {gateway_drops}, by the clients {client_drops})")
if lost_total > counted:
    fail.append(f"{lost_total} probes lost but only {counted} datagrams counted dropped")
t2 = final(f"{out}/gateway2.out")
if t2.get("relay_forwarded_local", 0) + t2.get("relay_forwarded_remote", 0) == 0:
    fail.append("nothing forwarded by the restarted gateway")
if fail:
    print("netns-test: FAIL: " + "; ".join(fail))
    sys.exit(1)
print("netns-test: ok")
PY
