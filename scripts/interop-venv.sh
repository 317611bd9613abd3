#!/usr/bin/env bash
# Makes (once) a Python virtual environment under the cargo target dir with `noiseprotocol`
# (PyPI; it brings `cryptography`), the independent Noise implementation the session interop
# test (shard/tests/session_interop.rs) runs against. Prints the venv's python on stdout.
# Exits non-zero, saying why on stderr, when python3, venv or the install is unavailable.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${CARGO_TARGET_DIR:-target}/interop-venv"
py="$venv/bin/python"
# An absolute path, but not resolved through the venv's symlink (that is the base python).
abs() { echo "$(cd "$(dirname "$py")" && pwd)/$(basename "$py")"; }
if [[ -x $py ]] && "$py" -c 'import noise.connection, cryptography' 2>/dev/null; then
    abs
    exit 0
fi
if ! command -v python3 >/dev/null 2>&1; then
    echo "interop-venv: no python3" >&2
    exit 1
fi
mkdir -p "$(dirname "$venv")"
python3 -m venv "$venv" >&2
"$venv/bin/pip" install -q --disable-pip-version-check noiseprotocol >&2
"$py" -c 'import noise.connection, cryptography'
abs
