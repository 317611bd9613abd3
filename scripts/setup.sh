#!/usr/bin/env bash
# Installs what ringwire's scripts use beyond the Rust toolchain, and nothing else:
#   sockperf  a third-party UDP latency client/server (scripts/bench.sh --sockperf, README), Debian
#   valgrind  callgrind, instructions per request (scripts/bench.sh --callgrind), Debian
#   interop   Python's `noiseprotocol` (an independent Noise implementation) in a venv under
#             target/, for the session interop test (scripts/interop-venv.sh; test.sh makes it too)
# Idempotent: what is already there is not installed again. apt-get needs root; without it the
# script says what it would install and exits 0 (only the steps that use a tool need it).
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: scripts/setup.sh [--dry-run] [--only TOOL[,TOOL...]] [--help]

Installs the tools ringwire's scripts use:
  sockperf   scripts/bench.sh --sockperf (a third-party latency client and server; Debian)
  valgrind   scripts/bench.sh --callgrind (instructions per request; Debian)
  interop    the session interop test's Python venv with noiseprotocol (PyPI, under target/)

  --dry-run        say what would be installed, install nothing
  --only LIST      install only these tools (comma-separated names from the list above)
  --help           this text; installs nothing

Exit status: 0 done (or nothing to do); 2 a bad argument; 1 an install failed.
USAGE
}

known=(sockperf valgrind interop)
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
interop=0
for tool in "${wanted[@]}"; do
    case "$tool" in
        interop) interop=1 ;;
        *) command -v "$tool" >/dev/null 2>&1 || need+=("$tool") ;;
    esac
done
if [[ ${#need[@]} -gt 0 ]]; then
    if [[ $dry_run -eq 1 ]]; then
        echo "setup: would install ${need[*]}"
    elif [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        echo "setup: not root or no apt-get; not installing ${need[*]} (only the sockperf comparison and callgrind need them)"
    else
        echo "setup: installing ${need[*]}"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    fi
fi
if [[ $interop -eq 1 ]]; then
    if [[ $dry_run -eq 1 ]]; then
        echo "setup: would make the interop venv (scripts/interop-venv.sh)"
    elif ! "$(dirname "$0")/interop-venv.sh" >/dev/null; then
        echo "setup: could not make the interop venv (python3 -m venv, pip install noiseprotocol); the interop test will skip" >&2
        exit 1
    fi
fi
[[ ${#need[@]} -gt 0 || $interop -eq 1 ]] || echo "setup: nothing to install (${wanted[*]} already present)"
