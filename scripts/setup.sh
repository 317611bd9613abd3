#!/usr/bin/env bash
# Installs what ringwire's scripts use beyond the Rust toolchain, from Debian's packages:
# sockperf (a third-party UDP latency tool), nftables (fault injection in namespaces) and
# valgrind (callgrind: instructions per request in scripts/bench.sh --callgrind); and, from
# PyPI, the Python `noiseprotocol` package in a venv under target/ for the session interop test.
# Idempotent; needs root for apt-get. Missing tools only skip the steps that use them.
set -euo pipefail
need=()
command -v sockperf >/dev/null 2>&1 || need+=(sockperf)
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v valgrind >/dev/null 2>&1 || need+=(valgrind)
if [[ ${#need[@]} -gt 0 ]]; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing ${need[*]}"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    else
        echo "setup: not root or no apt-get; skipping ${need[*]} (only the sockperf comparison, fault injection and callgrind need them)"
    fi
fi
# The session interop test's Python venv (noiseprotocol); scripts/test.sh makes it too.
if ! "$(dirname "$0")/interop-venv.sh" >/dev/null; then
    echo "setup: could not make the interop venv (python3 -m venv, pip install noiseprotocol); the interop test will skip"
fi
