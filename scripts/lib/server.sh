# shellcheck shell=bash
# Sourced by the benchmark scripts (bench.sh, bench-secure.sh): start and stop the one server
# under test. SERVER_PID is the running server's pid ("" when none); SERVER_NAME and
# SERVER_LOG its name and log.

SERVER_PID="" SERVER_NAME="" SERVER_LOG=""

# server_start NAME LOG WAIT_S READY... -- CMD...: runs CMD in the background (output to LOG)
# and sets SERVER_PID, then runs READY (a command and its arguments) every 0.1 s until it
# succeeds. Fails, with LOG on stderr and the server stopped, if READY has not succeeded within
# WAIT_S seconds or the server exits first.
server_start() {
    local wait_s=$3 ready=() i
    SERVER_NAME=$1 SERVER_LOG=$2
    shift 3
    while [[ $# -gt 0 && $1 != -- ]]; do ready+=("$1"); shift; done
    shift
    "$@" >"$SERVER_LOG" 2>&1 &
    SERVER_PID=$!
    for ((i = 0; i < wait_s * 10; i++)); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        "${ready[@]}" && return 0
        sleep 0.1
    done
    echo "FAILED: $SERVER_NAME did not start:" >&2
    cat "$SERVER_LOG" >&2
    kill -INT "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
    return 1
}

# server_stop [SIGNAL]: sends the server SIGNAL (INT by default; TERM drains an engine) and
# waits; fails, with its log on stderr, if it exited with an error.
server_stop() {
    local pid=$SERVER_PID
    SERVER_PID=""
    kill -"${1:-INT}" "$pid" 2>/dev/null || true
    if ! wait "$pid"; then
        echo "FAILED: $SERVER_NAME exited with an error:" >&2
        cat "$SERVER_LOG" >&2
        return 1
    fi
}

# udp_listening PORT: something listens on UDP PORT (without `ss`: assumed after a second).
udp_listening() {
    if command -v ss >/dev/null; then
        ss -Hlun "sport = :$1" | grep -q .
    else
        sleep 1
    fi
}
