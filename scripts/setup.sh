#!/usr/bin/env bash
# Installs the tools ringwire's scripts use beyond the Rust toolchain, from Debian's packages,
# and nothing else:
#   sockperf  a third-party UDP latency client/server (scripts/bench.sh --sockperf, README)
#   valgrind  callgrind, instructions per request (scripts/bench.sh --callgrind)
# Idempotent: a tool already on PATH is not installed again. Needs root and apt-get; without
# them it says what it would install and exits 0 (only the steps that use a tool need it).
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: scripts/setup.sh [--dry-run] [--only TOOL[,TOOL...]] [--help]

Installs the tools ringwire's scripts use, from Debian's packages:
  sockperf   scripts/bench.sh --sockperf (a third-party latency client and server)
  valgrind   scripts/bench.sh --callgrind (instructions per request)

  --dry-run        say what would be installed, install nothing
  --only LIST      install only these tools (comma-separated names from the list above)
  --help           this text; installs nothing

Exit status: 0 done (or nothing to do); 2 a bad argument; 1 apt-get failed.
USAGE
}

known=(sockperf valgrind)
wanted=("${known[@]}")
dry_run=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --dry-run) dry_run=1; shift ;;
        --only)
            [[ $# -ge 2 ]] || { echo "setup: --only needs a list of tools" >&2; exit 2; }
            IFS=, read -r -a wanted <<<"$2"
            for tool in "${wanted[@]}"; do
                [[ " ${known[*]} " == *" $tool "* ]] || {
                    echo "setup: unknown tool '$tool' (known: ${known[*]})" >&2
                    exit 2
                }
            done
            shift 2 ;;
        *) echo "setup: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

need=()
for tool in "${wanted[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
if [[ ${#need[@]} -eq 0 ]]; then
    echo "setup: nothing to install (${wanted[*]} already present)"
    exit 0
fi
if [[ $dry_run -eq 1 ]]; then
    echo "setup: would install ${need[*]}"
    exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: not root or no apt-get; not installing ${need[*]} (only the sockperf comparison and callgrind need them)"
    exit 0
fi
echo "setup: installing ${need[*]}"
apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
