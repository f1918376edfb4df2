#!/usr/bin/env bash
# Issue 11's hostile shapes against a server, each on a fresh server process (so that memory
# freed by one shape does not hide what the next one holds): server CPU and RSS from /proc around
# the shape, bytes delivered to the recipient, against the bytes sent. See `starling-bench hostile
# --help` for the shapes.
#
#   bench/hostile.sh                       # Starling, plain TCP
#   SERVERS="starling ejabberd" bench/hostile.sh
#
# Prints one RESULT line per server and shape, and writes them to $OUT/hostile.txt. Like
# compare.sh, the server runs on CPU $SERVER_CPU and the generator on CPU $GEN_CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SERVERS=${SERVERS:-starling}
OUT=${OUT:-$ROOT/target/bench/hostile}
SERVER_CPU=${SERVER_CPU:-0}
GEN_CPU=${GEN_CPU:-1}
PORT=${PORT:-25232}
HOLDERS=${HOLDERS:-50}
PREAUTH=${PREAUTH:-200}
BENCH=$ROOT/target/release/starling-bench

mkdir -p "$OUT"
: > "$OUT/hostile.txt"
bench/servers/starling.sh install > /dev/null

# shape, users, extra arguments
SHAPES=(
    "xml-prefix 2 --repeat 10000"
    "ns-children 2 --repeat 200"
    "ns-attributes 2 --repeat 100"
    "partial $((HOLDERS + 1))"
    "partial-ns $((HOLDERS + 1))"
    "pre-auth $PREAUTH"
)

for server in $SERVERS; do
    dir=$OUT/$server
    rm -rf "$dir"
    mkdir -p "$dir"
    "bench/servers/$server.sh" provision "$dir" bench "$((HOLDERS + 1))" 0 pw > /dev/null
    for entry in "${SHAPES[@]}"; do
        read -r shape users extra <<< "$entry"
        pid=$(SERVER_CPU=$SERVER_CPU "bench/servers/$server.sh" start "$dir" "$PORT" off | awk '/^PID/ {print $2}')
        [ -n "$pid" ] || { echo "$server did not start" >&2; exit 1; }
        # shellcheck disable=SC2086 # extra holds several arguments
        out=$(taskset -c "$GEN_CPU" "$BENCH" --port "$PORT" --tls off --server-pid "$pid" \
            --users "$users" --scram-cache "$OUT/scram-cache" --time-limit 600 \
            hostile --shape "$shape" $extra 2>&1) || true
        "bench/servers/$server.sh" stop "$dir" > /dev/null 2>&1 || true
        echo "$out" | grep -v '^RESULT' | sed "s/^/$server $shape: /"
        result=$(echo "$out" | grep '^RESULT' | tail -1)
        [ -n "$result" ] || result="RESULT error=failed"
        echo "$server ${result#RESULT }" | tee -a "$OUT/hostile.txt"
    done
done
