#!/usr/bin/env bash
# Coverage-guided fuzzing of the targets in shard/fuzz (libFuzzer through libfuzzer-sys, on the
# stable toolchain: built with the compiler's coverage instrumentation and no sanitizer, which
# stable cannot link; overflow checks and debug assertions on). docs/TESTING.md has the long runs.
#
#   scripts/fuzz.sh [--seconds N] [--merge] [TARGET...]
#
# Targets: wire handshake session gro config (default: all, one after another, one process
# each). Each runs N seconds (default 60) on its committed corpus (shard/fuzz/corpus/TARGET,
# read only) plus a working corpus (shard/fuzz/work/TARGET, not committed). A crash stops the
# script with status 1 and leaves the input in shard/fuzz/artifacts/TARGET/. --merge adds the
# working inputs that reach new coverage to the committed corpus. The summary line of each
# target (runs, executions, libFuzzer's cov: and ft:) goes to standard output.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=60
merge=0
targets=()
while (($#)); do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --merge) merge=1; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done
((${#targets[@]})) || targets=(wire handshake session gro config)
fuzz=shard/fuzz
export CARGO_TARGET_DIR="$PWD/$fuzz/target"
# What cargo-fuzz passes with `--sanitizer none`: SanitizerCoverage's inline 8-bit counters,
# PC table and comparison tracing, which libFuzzer reads; no -Zsanitizer (nightly only).
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
# An explicit --target keeps RUSTFLAGS off build scripts and proc macros (they run on the host
# without libFuzzer's runtime).
host=$(rustc -vV | sed -n 's/^host: //p')
(cd "$fuzz" && cargo build --release --locked --bins --target "$host")
for t in "${targets[@]}"; do
    bin="$CARGO_TARGET_DIR/$host/release/$t"
    [[ -x "$bin" ]] || { echo "no fuzz target $t" >&2; exit 2; }
    mkdir -p "$fuzz/work/$t" "$fuzz/artifacts/$t"
    log="$fuzz/work/$t.log"
    dict=()
    [[ -f "$fuzz/dict/$t.dict" ]] && dict=("-dict=$fuzz/dict/$t.dict")
    echo "fuzz: $t for ${seconds}s (log $log)" >&2
    status=0
    "$bin" "$fuzz/work/$t" "$fuzz/corpus/$t" "${dict[@]}" -max_total_time="$seconds" \
        -print_final_stats=1 -artifact_prefix="$fuzz/artifacts/$t/" >"$log" 2>&1 || status=$?
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    time_s=$(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1 || true)
    echo "$t: status $status, ${time_s:-?}, executions ${execs:-?}, ${done_line:-no DONE line}"
    if ((status != 0)); then
        tail -40 "$log" >&2
        echo "fuzz: $t failed; the input is in $fuzz/artifacts/$t/" >&2
        exit 1
    fi
    if ((merge)); then
        "$bin" -merge=1 "$fuzz/corpus/$t" "$fuzz/work/$t" >"$fuzz/work/$t.merge.log" 2>&1
        echo "$t: merged; committed corpus now $(ls "$fuzz/corpus/$t" | wc -l) files"
    fi
done
