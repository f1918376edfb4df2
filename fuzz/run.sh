#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 60), one after the other.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# Exits non-zero if any target crashed, timed out or ran out of memory (the input is then in
# fuzz/artifacts/<target>/), and prints per target the executions, executions per second and CPU
# time. Works on stable Rust: the targets are built with `--sanitizer none` (our crates forbid
# `unsafe`, so AddressSanitizer, which needs nightly, would only watch the dependencies).
#
# Environment:
#   FUZZ_TARGET_DIR   cargo target dir for the instrumented build (default fuzz/target)
#   FUZZ_KEEP_GOING=1 run in libFuzzer's fork mode with -ignore_crashes=1: keep fuzzing after a
#                     crash to collect several (every one still lands in fuzz/artifacts/ and still
#                     fails the run)
#   FUZZ_XFAIL        targets (space-separated) whose crashes are known and reported, but do not
#                     fail the run; an expected failure that does not happen is reported too
#   FUZZ_RSS_MB       -rss_limit_mb (default 2048)
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
shift || true
case $secs in '' | *[!0-9]*)
    echo "usage: fuzz/run.sh [SECONDS] [TARGET...]" >&2
    exit 2
    ;;
esac

if ! cargo fuzz --version > /dev/null 2>&1; then
    echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked --version '~0.13'" >&2
    exit 2
fi

target_dir=${FUZZ_TARGET_DIR:-fuzz/target}
rss_mb=${FUZZ_RSS_MB:-2048}
xfail=" ${FUZZ_XFAIL:-} "
if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

# Release code with debug assertions and overflow checks (cargo-fuzz's default), no sanitizer.
echo "== building ${targets[*]}"
for t in "${targets[@]}"; do
    cargo fuzz build --sanitizer none --target-dir "$target_dir" "$t"
done
host=$(rustc -vV | sed -n 's/^host: //p')
bin_dir=$target_dir/$host/release

# Largest input per target: stanzas up to 16 KiB exercise several rxml token refills; JIDs are
# at most 3 × 1023 bytes; SASL messages are a few hundred bytes.
max_len() {
    case $1 in
        stream_roundtrip) echo 16384 ;;
        jid) echo 4096 ;;
        sasl) echo 2048 ;;
        *) echo 4096 ;;
    esac
}

status=0
summary=()
for t in "${targets[@]}"; do
    corpus=fuzz/local-corpus/$t
    artifacts=fuzz/artifacts/$t
    log=fuzz/local-corpus/$t.log
    mkdir -p "$corpus" "$artifacts"
    args=(
        -max_total_time="$secs" -rss_limit_mb="$rss_mb" -max_len="$(max_len "$t")" -timeout=10
        -print_final_stats=1 -artifact_prefix="$artifacts/"
    )
    [ -f "fuzz/dicts/$t.dict" ] && args+=(-dict="fuzz/dicts/$t.dict")
    [ "${FUZZ_KEEP_GOING:-0}" = 1 ] && args+=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
    stamp=$(mktemp)
    echo "== $t: ${secs}s"
    # New inputs go to the first directory (not committed); the committed seeds are read only.
    # Wall and CPU time (user + system, fork-mode children included) from bash's `time`.
    rc=0
    {
        TIMEFORMAT='%R %U %S'
        time "$bin_dir/$t" "${args[@]}" "$corpus" "fuzz/corpus/$t" > "$log" 2>&1 || rc=$?
    } 2> "$log.time"
    read -r real user sys < "$log.time"
    cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.1f", u + s }')
    mapfile -t found < <(find "$artifacts" -type f -newer "$stamp")
    rm -f "$stamp"
    new_artifacts=${#found[@]}
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    [ -n "$execs" ] || execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
    rate=$(awk -v e="${execs:-0}" -v r="$real" 'BEGIN { printf "%d", e / (r > 0 ? r : 1) }')
    result=ok
    if [ "$rc" -ne 0 ] || [ "$new_artifacts" -gt 0 ]; then
        result="FAILED (exit $rc, $new_artifacts new input(s) in $artifacts/)"
        # Each input once more, for the message (fork mode keeps the children's output apart).
        for a in "${found[@]:0:20}"; do
            msg=$("$bin_dir/$t" "$a" 2>&1 | grep -m1 -A1 'panicked at' | tail -1 | cut -c1-300) || true
            echo "   $a: ${msg:-no panic when run alone (timeout or OOM?)}"
        done
        [ "$new_artifacts" -gt 0 ] || tail -20 "$log"
        if [[ $xfail == *" $t "* ]]; then
            result="$result, expected (FUZZ_XFAIL)"
        else
            status=1
        fi
    elif [[ $xfail == *" $t "* ]]; then
        result="ok, but listed in FUZZ_XFAIL: remove it there"
    fi
    summary+=("$(printf '%-18s %12s execs %8s/s %8ss CPU  %s' "$t" "${execs:-?}" "$rate" "$cpu" "$result")")
done

echo "== summary (${secs}s per target; logs in fuzz/local-corpus/<target>.log)"
printf '%s\n' "${summary[@]}"
exit $status
