#!/usr/bin/env bash
# Issue 18 item 6: server-to-server throughput. For each pair A-B (A the senders' server, B the
# receivers'), USERS senders log in to A (domain a.bench.test) and as many receivers to B
# (b.bench.test), and sender i sends receiver i chat messages as fast as the link takes
# (`starling-bench s2s`, saturated like chat_sat: 16 in flight per sender): every message
# crosses one s2s connection A → B. Figures: messages/s, end-to-end latency, and the CPU per
# message of A and of B, each read from /proc over the window; medians of RUNS runs, a fresh
# pair of server processes per run.
#
#   bench/s2s.sh                                  # every pair, RUNS=3: ~7 minutes
#   RUNS=1 QUICK=1 bench/s2s.sh                   # a smoke test: 50 senders, 3 s windows
#   PAIRS="starling-starling" bench/s2s.sh        # some pairs
#   REPORT=/dev/null bench/s2s.sh                 # leave BENCHMARKS.md alone
#   bench/s2s.sh report bench/results/s2s-X.txt   # only rewrite the section from those results
#
# Pairs: starling-starling, starling-ejabberd, ejabberd-starling and, as the reference for what
# the path costs elsewhere, ejabberd-ejabberd.
#
# Setup (all on loopback): A's s2s listener on 127.0.0.21:5269, B's on 127.0.0.22:5269.
# Starling finds its peer through `[s2s.hosts]`; ejabberd 23.01 asks DNS for SRV records (none)
# and then getaddrinfo(), so for pairs with ejabberd the script adds one /etc/hosts line per
# domain, marked, removed when it exits (as tests/federation/run.sh does; root needed).
# A test CA made here with openssl signs one ECDSA P-256 certificate per domain (SAN dNSName,
# EKU serverAuth + clientAuth, as tests/federation's "good" kind); each server trusts only that
# CA for s2s, so both ends verify each other and authenticate with SASL EXTERNAL (RFC 6120
# §6.4, §13.7.1.2) over STARTTLS (required by both). Dialback stays configured as the fallback;
# the link line of each run (`s2s_link`, from `starling s2s list` on each Starling side) shows
# what was used. Client connections run without TLS (c2s as compare.sh's mode off), so that
# the per-message CPU is the s2s path's, not c2s TLS's.
#
# Pinning: both servers on CPU $SERVER_CPU (default 0), the generator alone on CPU $GEN_CPU
# (default 1), as compare.sh pins one server. The pair then shares one core, so messages/s is
# what one core does when it carries both halves of the path (A: c2s in + s2s out; B: s2s in +
# c2s out): comparable with chat_sat's figure for one server doing both halves locally, with
# the generator never competing with a server. Each side's CPU per message is its own.
#
# Writes raw results to $RESULTS (default bench/results/s2s-<commit>.txt: RESULT lines in
# compare.sh's format, the pair in the server column, plus `# ` lines describing the run) and
# the section "## Server-to-server (issue 18)" of $REPORT (default BENCHMARKS.md), replaced in
# place or inserted before "## Notes", the rest of the file untouched. compare.sh keeps the
# section when given the results file: EARLIER="… bench/results/s2s-<commit>.txt".
#
# CI does not run this; the figures are only meaningful on a quiet machine (nothing compiling).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PAIRS=${PAIRS:-"starling-starling starling-ejabberd ejabberd-starling ejabberd-ejabberd"}
RUNS=${RUNS:-3}
QUICK=${QUICK:-}
OUT=${OUT:-$ROOT/target/bench/s2s}
REPORT=${REPORT:-$ROOT/BENCHMARKS.md}
SERVER_CPU=${SERVER_CPU:-0}
GEN_CPU=${GEN_CPU:-1}
PORT_A=${PORT_A:-25242}
PORT_B=${PORT_B:-25252}
BENCH=${CARGO_TARGET_DIR:-$ROOT/target}/release/starling-bench
STARLING=${CARGO_TARGET_DIR:-$ROOT/target}/release/starling
if [ -n "$QUICK" ]; then
    USERS=${USERS:-50} DURATION=${DURATION:-3}
else
    USERS=${USERS:-500} DURATION=${DURATION:-10}
fi
WINDOW=${WINDOW:-16}
DOMAIN_A=a.bench.test ADDR_A=127.0.0.21
DOMAIN_B=b.bench.test ADDR_B=127.0.0.22
COMMIT=$(git rev-parse --short HEAD)$(git diff --quiet -- crates bench || echo '+changes')
RESULTS=${RESULTS:-$ROOT/bench/results/s2s-$COMMIT.txt}

# write_section RESULTS: the section from RESULTS into $REPORT, in place of the old one.
write_section() {
    local section
    section=$(mktemp)
    python3 bench/report.py --s2s "$1" > "$section"
    python3 - "$REPORT" "$section" <<'PY'
import sys
from pathlib import Path
report, section = Path(sys.argv[1]), Path(sys.argv[2]).read_text().strip("\n") + "\n"
title = "## Server-to-server (issue 18)"
text = report.read_text() if report.exists() else "# Benchmarks\n"
if title in text:
    start = text.index(title)
    nxt = text.find("\n## ", start + len(title))
    text = text[:start] + section + ("\n" + text[nxt + 1:] if nxt >= 0 else "")
elif "\n## Notes" in text:
    at = text.index("\n## Notes") + 1
    text = text[:at] + section + "\n" + text[at:]
else:
    text = text.rstrip("\n") + "\n\n" + section
report.write_text(text)
PY
    rm -f "$section"
    echo "== wrote the section \"Server-to-server (issue 18)\" of $REPORT"
}
if [ "${1:-}" = report ]; then
    [ -f "${2:-}" ] || { echo "usage: bench/s2s.sh report RESULTS" >&2; exit 2; }
    write_section "$2"
    exit 0
fi

for tool in taskset python3 openssl; do
    command -v "$tool" > /dev/null || { echo "s2s.sh: $tool is missing" >&2; exit 2; }
done
for pair in $PAIRS; do
    for s in ${pair%%-*} ${pair#*-}; do
        case $s in
            starling) ;;
            ejabberd) [ -x /usr/sbin/ejabberdctl ] || { echo "ejabberd is not installed: bench/servers/ejabberd.sh install" >&2; exit 2; } ;;
            *) echo "s2s.sh: unknown server $s in pair $pair (starling, ejabberd)" >&2; exit 2 ;;
        esac
    done
done
ulimit -n 65536 2> /dev/null || true

rm -rf "$OUT" && mkdir -p "$OUT/certs"
LOG=$OUT/s2s.log
: > "$LOG"

# /etc/hosts lines for the two domains while ejabberd runs, marked; removed at exit (and the
# servers stopped) whatever happens. /etc/hosts may be a bind mount: rewritten in place.
HOSTS_MARK="# starling bench/s2s.sh (removed when the run ends)"
hosts_remove() {
    [ -w /etc/hosts ] && grep -qF "$HOSTS_MARK" /etc/hosts || return 0
    local kept
    kept=$(grep -vF "$HOSTS_MARK" /etc/hosts || true)
    printf '%s\n' "$kept" > /etc/hosts
}
cleanup() {
    local d name
    for d in "$OUT"/data-*-?; do
        [ -d "$d" ] || continue
        name=${d##*/data-}
        stop "${name%-*}" "${name##*-}"
    done
    hosts_remove
}
trap cleanup EXIT
if [[ " $PAIRS " == *ejabberd* ]]; then
    [ -w /etc/hosts ] || { echo "s2s.sh: pairs with ejabberd need a writable /etc/hosts (root)" >&2; exit 2; }
    for entry in "$ADDR_A $DOMAIN_A" "$ADDR_B $DOMAIN_B"; do
        grep -qxF "$entry $HOSTS_MARK" /etc/hosts || echo "$entry $HOSTS_MARK" >> /etc/hosts
    done
fi
echo "== build"
bench/servers/starling.sh install | tee -a "$LOG"

# ---------------------------------------------------------------- certificates
CERTS=$OUT/certs
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
    -subj "/CN=Starling s2s benchmark CA" -keyout "$CERTS/ca.key" -out "$CERTS/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2> /dev/null
for d in $DOMAIN_A $DOMAIN_B; do
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=DNS:$d" > "$CERTS/$d.ext"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$d" \
        -keyout "$CERTS/$d.key" -out "$CERTS/$d.csr" 2> /dev/null
    openssl x509 -req -in "$CERTS/$d.csr" -CA "$CERTS/ca.crt" -CAkey "$CERTS/ca.key" \
        -CAcreateserial -days 7 -extfile "$CERTS/$d.ext" -out "$CERTS/$d.crt" 2> /dev/null
    chmod 600 "$CERTS/$d.key"
done

# side_env SIDE: the environment bench/servers/*.sh take for side a or b (see their usage).
side_env() {
    if [ "$1" = a ]; then
        echo "SERVER_DOMAIN=$DOMAIN_A S2S_ADDR=$ADDR_A S2S_CERT=$CERTS/$DOMAIN_A.crt S2S_KEY=$CERTS/$DOMAIN_A.key S2S_CA=$CERTS/ca.crt S2S_PEERS=$DOMAIN_B=$ADDR_B"
    else
        echo "SERVER_DOMAIN=$DOMAIN_B S2S_ADDR=$ADDR_B S2S_CERT=$CERTS/$DOMAIN_B.crt S2S_KEY=$CERTS/$DOMAIN_B.key S2S_CA=$CERTS/ca.crt S2S_PEERS=$DOMAIN_A=$ADDR_A"
    fi
}
server_sh() { # SERVER SIDE ARGS...: bench/servers/SERVER.sh with the side's environment
    local server=$1 side=$2
    shift 2
    # shellcheck disable=SC2046
    env $(side_env "$side") SERVER_CPU="$SERVER_CPU" ARCHIVE=false FEATURES=base \
        "bench/servers/$server.sh" "$@"
}

# ---------------------------------------------------------------- provisioning
# One directory per server and side, provisioned once: bench1..benchUSERS at the side's domain.
for pair in $PAIRS; do
    for side in a b; do
        if [ "$side" = a ]; then server=${pair%%-*}; else server=${pair#*-}; fi
        dir=$OUT/data-$server-$side
        [ -d "$dir" ] && continue
        mkdir -p "$dir"
        echo "== $server ($side): provisioning $USERS users"
        server_sh "$server" "$side" provision "$dir" bench "$USERS" 0 pw 2>&1 | tail -1 | tee -a "$LOG"
    done
done

start() { # SERVER SIDE PORT -> pid
    server_sh "$1" "$2" start "$OUT/data-$1-$2" "$3" off 2>> "$LOG" | awk '/^PID/ {print $2}'
}
stop() { server_sh "$1" "$2" stop "$OUT/data-$1-$2" > /dev/null 2>&1 || true; }

# links SERVER SIDE: the s2s connections a Starling side reports (`starling s2s list --json`),
# as one field: direction/auth/tls/bidi per connection, comma-separated; "-" for other servers.
links() {
    if [ "$1" != starling ]; then echo "-"; return; fi
    "$STARLING" s2s list --json --config "$OUT/data-$1-$2/starling.toml" 2>> "$LOG" | python3 -c '
import json, sys
links = json.load(sys.stdin)
print(",".join("{}/{}/{}{}".format(l["direction"], l["auth"].replace(" ", "-"),
      "tls" if l["tls"] else "plain", "/bidi" if l["bidi"] else "") for l in links) or "none")' \
        2>> "$LOG" || echo "unknown"
}

{
    echo "# bench/s2s.sh at $COMMIT, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "# machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs, $(free -g | awk '/Mem:/ {print $2}') GiB, Linux $(uname -r)"
    echo "# starling: $("$STARLING" --version 2> /dev/null | head -1)"
    [ -x /usr/sbin/ejabberdctl ] && echo "# ejabberd: $(dpkg-query -W -f '${Version}' ejabberd 2> /dev/null)"
    echo "# load average at the start: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min)"
    echo "# sizes: senders=$USERS receivers=$USERS window=$WINDOW duration=${DURATION}s runs=$RUNS; servers on CPU $SERVER_CPU, generator on CPU $GEN_CPU"
} > "$RESULTS"
CMD_NOTE=""
for pair in $PAIRS; do
    a=${pair%%-*} b=${pair#*-}
    echo "== $a ($DOMAIN_A) → $b ($DOMAIN_B)"
    for run in $(seq "$RUNS"); do
        pid_b=$(start "$b" b "$PORT_B")
        pid_a=$(start "$a" a "$PORT_A")
        if [ -z "$pid_a" ] || [ -z "$pid_b" ]; then
            echo "   $pair run $run: a server did not start (see $LOG and $OUT/data-*)" | tee -a "$LOG"
            echo "$pair off s2s_sat $run RESULT error=start" >> "$RESULTS"
            stop "$a" a
            stop "$b" b
            continue
        fi
        cmd=(taskset -c "$GEN_CPU" "$BENCH" --port "$PORT_A" --domain "$DOMAIN_A" --tls off
            --server-pid "$pid_a" --scram-cache "$OUT/scram-cache" --time-limit 600
            --users "$USERS" s2s --peer-port "$PORT_B" --peer-domain "$DOMAIN_B" --peer-pid "$pid_b"
            --rate 0 --window "$WINDOW" --duration "$DURATION")
        echo "   ${cmd[*]}" >> "$LOG"
        [ -n "$CMD_NOTE" ] || CMD_NOTE=$(echo "${cmd[*]}" | sed "s#$BENCH#starling-bench#; s#$ROOT/##g; s#--server-pid $pid_a#--server-pid PID_A#; s#--peer-pid $pid_b#--peer-pid PID_B#")
        out=$("${cmd[@]}" 2>&1) || true
        echo "$out" | sed 's/^/      /' >> "$LOG"
        result=$(echo "$out" | grep '^RESULT' | tail -1)
        [ -n "$result" ] || result="RESULT error=failed"
        echo "$pair off s2s_sat $run $result" >> "$RESULTS"
        echo "$pair off s2s_link $run RESULT a_links=$(links "$a" a) b_links=$(links "$b" b)" >> "$RESULTS"
        echo "   $pair run $run: ${result#RESULT }"
        stop "$a" a
        stop "$b" b
    done
done
echo "# generator: $CMD_NOTE" >> "$RESULTS"
echo "== raw results: $RESULTS (log: $LOG)"
[ "$REPORT" = /dev/null ] || write_section "$RESULTS"
