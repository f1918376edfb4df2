#!/usr/bin/env bash
# Side-by-side figures for Starling, Prosody and ejabberd on this machine: the same users, the
# same scenarios (starling-bench), each server pinned to CPU 0 and the generator to CPU 1, a fresh
# server process per scenario run, medians of RUNS runs, with TLS off and with STARTTLS. Writes
# BENCHMARKS.md (tables, machine, commands) and keeps raw results in $OUT/results.txt.
#
#   bench/servers/prosody.sh install && bench/servers/ejabberd.sh install   # once, as root
#   bench/compare.sh                      # everything: ~1 hour on 2 cores
#   RUNS=1 QUICK=1 bench/compare.sh       # a smoke test: small counts, short windows
#   SERVERS="starling" MODES="off" bench/compare.sh   # a subset
#   BIG_IDLE=0 HOSTILE=0 bench/compare.sh # without the 100,000-connection idle run and the
#                                         # hostile shapes (bench/hostile.sh)
#   FULL=0 MAM=0 bench/compare.sh         # without issue 13's scenarios: chat_sat_full
#                                         # (carbons, archive and stream management on every
#                                         # session) and the archive queries (Starling)
#   SCENARIOS="chat_sat chat_sat_full" MAM=1 bench/compare.sh   # only those chat scenarios
#                                         # (and the archive queries); default: all
#   SCENARIOS="pep" BIG_IDLE=0 HOSTILE=0 MAM=0 bench/compare.sh   # PEP fan-out only
#   SCENARIOS="muc muc_flood" BIG_IDLE=0 HOSTILE=0 MAM=0 bench/compare.sh
#                                         # multi-user chat only (rooms without archives, as
#                                         # ejabberd's and Prosody's run; MUC_ARCHIVE=true
#                                         # archives Starling's)
#   EARLIER="bench/results/full-X.txt" …  # the report takes figures this run lacks from there
#   EARLIER="… bench/results/s2s-X.txt"    # … and keeps bench/s2s.sh's server-to-server section
#   MODES="off ws" SCENARIOS="idle chat_sat" SERVERS="starling ejabberd" BIG_IDLE=0 HOSTILE=0 MAM=0 bench/compare.sh
#                                         # issue 17: XMPP over WebSocket (RFC 7395, mode ws:
#                                         # TLS off, the server's WebSocket endpoint on PORT+2 at
#                                         # /xmpp-websocket) beside raw TCP; mode ws runs only
#                                         # idle and chat_sat
#   CARGO_TARGET_DIR=… bench/compare.sh   # binaries from that target directory
#
# CI does not run this; the figures are only meaningful on a quiet machine (nothing compiling).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SERVERS=${SERVERS:-"starling prosody ejabberd"}
MODES=${MODES:-"off starttls"}
RUNS=${RUNS:-3}
QUICK=${QUICK:-}
BIG_IDLE=${BIG_IDLE:-1}
HOSTILE=${HOSTILE:-1}
FULL=${FULL:-1}
MAM=${MAM:-1}
# Scenarios run per server and mode (names as in results.txt); empty: every one.
SCENARIOS=${SCENARIOS:-}
OUT=${OUT:-$ROOT/target/bench/compare}
REPORT=${REPORT:-$ROOT/BENCHMARKS.md}
SERVER_CPU=${SERVER_CPU:-0}
GEN_CPU=${GEN_CPU:-1}
PORT=${PORT:-25222}
BENCH=${CARGO_TARGET_DIR:-$ROOT/target}/release/starling-bench

# Sizes. The targets ask for at least 1,000 users connected and 10,000-user login storms.
if [ -n "$QUICK" ]; then
    USERS=2000 CHAT_USERS=200 RING_USERS=200 RING=10 IDLE_USERS=1000 LOGIN_USERS=1000
    SCALE_SMALL=50 SCALE_LARGE=500 DURATION=3 AGING_ROUNDS=2 BIG_IDLE_USERS=5000
    MAM_USERS=100 MAM_ROWS=50000
    MUC_ROOMS=10 MUC_OCCUPANTS=20 MUC_FLOOD=200 MUC_QUIET_RATE=200 MUC_NOISY_RATE=1000
else
    USERS=10000 CHAT_USERS=1000 RING_USERS=1000 RING=50 IDLE_USERS=10000 LOGIN_USERS=10000
    SCALE_SMALL=100 SCALE_LARGE=5000 DURATION=10 AGING_ROUNDS=10 BIG_IDLE_USERS=100000
    # Issue 13: the last 50 messages of a 1,000,000-message archive of 100 users.
    MAM_USERS=100 MAM_ROWS=1000000
    # Issue 16 item 6: 100 rooms of 50 occupants (each user in one room), and one user joining
    # a room of 1,000 occupants.
    MUC_ROOMS=100 MUC_OCCUPANTS=50 MUC_FLOOD=1000
    # … and 1,000 posts/s over those rooms (50,000 deliveries/s) while room 0 is offered
    # 5,000 posts/s (250,000 deliveries/s: more than any of the servers delivers).
    MUC_QUIET_RATE=1000 MUC_NOISY_RATE=5000
fi


for tool in taskset python3; do
    command -v "$tool" > /dev/null || { echo "compare.sh: $tool is missing" >&2; exit 2; }
done
for s in $SERVERS; do
    case $s in
        prosody) command -v prosody > /dev/null || { echo "Prosody is not installed: bench/servers/prosody.sh install" >&2; exit 2; } ;;
        ejabberd) command -v ejabberdctl > /dev/null || [ -x /usr/sbin/ejabberdctl ] || { echo "ejabberd is not installed: bench/servers/ejabberd.sh install" >&2; exit 2; } ;;
        starling) ;;
        *) echo "unknown server $s" >&2; exit 2 ;;
    esac
done
# Each side holds up to 10,000 sockets, 100,000 in the big idle run: the hard limit is raised
# where that is allowed (root with CAP_SYS_RESOURCE). Where it is not, the big run holds what the
# limit allows, and machine.txt says so.
ulimit -Hn 400000 2> /dev/null || true
ulimit -n "$(ulimit -Hn)" 2> /dev/null || true
FD_LIMIT=$(ulimit -n)
if [ "$FD_LIMIT" != unlimited ] && [ "$FD_LIMIT" -lt $((BIG_IDLE_USERS + 1000)) ]; then
    BIG_IDLE_USERS=$((FD_LIMIT - 1000))
fi
# Loopback source addresses for the big idle run: one reaches a port from ~28,000 ports.
BIG_IDLE_SOURCES=$(((BIG_IDLE_USERS + 19999) / 20000))

mkdir -p "$OUT"
RESULTS=$OUT/results.txt
: > "$RESULTS"
rm -f "$OUT"/commands-*.txt
LOG=$OUT/compare.log
: > "$LOG"
echo "== build"
bench/servers/starling.sh install | tee -a "$LOG"

# bench SERVER MODE NAME RUN PID ARGS...: runs the generator pinned, records its RESULT line.
bench() {
    local server=$1 mode=$2 name=$3 run=$4 pid=$5
    shift 5
    # Mode ws: XMPP over WebSocket to the server's HTTP port (PORT+2), no TLS.
    local transport=(--port "$PORT" --tls "$mode")
    [ "$mode" = ws ] && transport=(--port "$((PORT + 2))" --tls off --transport ws)
    local cmd=(taskset -c "$GEN_CPU" "$BENCH" "${transport[@]}" --server-pid "$pid"
        --scram-cache "$OUT/scram-cache" --time-limit 1200 "$@")
    echo "   ${cmd[*]}" >> "$LOG"
    if [ "$run" = 1 ]; then
        echo "$name: ${cmd[*]}" | sed "s#$ROOT/##; s#--server-pid $pid#--server-pid PID#" >> "$OUT/commands-$server-$mode.txt"
    fi
    local out
    out=$("${cmd[@]}" 2>&1) || true
    echo "$out" | sed 's/^/      /' >> "$LOG"
    local result
    result=$(echo "$out" | grep '^RESULT' | tail -1)
    [ -n "$result" ] || result="RESULT error=failed"
    echo "$server $mode $name $run $result" >> "$RESULTS"
    echo "   $server $mode $name run $run: ${result#RESULT }"
}

start() { # SERVER DIR MODE [full|pep|muc] -> pid
    # Issue 13's feature set when asked (ARCHIVE for Starling, FEATURES for the others), or PEP
    # for the pep scenario (FEATURES=pep: ejabberd's mod_pubsub and mod_caps, Prosody's mod_pep;
    # Starling's default configuration), or MUC for the muc scenarios (FEATURES=muc: ejabberd's
    # mod_muc, Prosody's muc component, on conference.localhost), else none of it, whatever the
    # caller's environment holds.
    local archive=false features=base
    case ${4:-} in
        full) archive=true features=full ;;
        pep) features=pep ;;
        muc) features=muc ;;
    esac
    SERVER_CPU=$SERVER_CPU ARCHIVE=$archive FEATURES=$features \
        "bench/servers/$1.sh" start "$2" "$PORT" "$3" | awk '/^PID/ {print $2}'
}
stop() { "bench/servers/$1.sh" stop "$2" > /dev/null 2>&1 || true; }

# wanted NAME: whether SCENARIOS selects the scenario NAME.
wanted() { [ -z "$SCENARIOS" ] || [[ " $SCENARIOS " == *" $1 "* ]]; }

# scenario SERVER DIR MODE NAME RUN ARGS...: a fresh server process for one run of one scenario,
# with the server's optional features WITH (`WITH=pep scenario …`; default none).
scenario() {
    local server=$1 dir=$2 mode=$3 name=$4 run=$5
    shift 5
    wanted "$name" || return 0
    local pid
    pid=$(start "$server" "$dir" "$mode" "${WITH:-}")
    [ -n "$pid" ] || { echo "$server did not start" >&2; return 1; }
    bench "$server" "$mode" "$name" "$run" "$pid" "$@"
    stop "$server" "$dir"
}

# full_scenario SERVER DIR MODE NAME RUN ARGS...: as scenario, with issue 13's features on in the
# server (carbons, every message archived, stream management) and an empty archive at the start
# of every run; afterwards the archive's row count is recorded as NAME_archive, to show that the
# server really archived (two rows per message between two local users, one per archive).
full_scenario() {
    local server=$1 dir=$2 mode=$3 name=$4 run=$5
    shift 5
    wanted "$name" || return 0
    "bench/servers/$server.sh" archive-reset "$dir"
    local pid rows
    pid=$(start "$server" "$dir" "$mode" full)
    [ -n "$pid" ] || { echo "$server did not start" >&2; return 1; }
    bench "$server" "$mode" "$name" "$run" "$pid" "$@"
    stop "$server" "$dir"
    rows=$("bench/servers/$server.sh" archive-count "$dir" 2>> "$LOG" || echo failed)
    echo "$server $mode ${name}_archive $run RESULT archived_rows=$rows" >> "$RESULTS"
    echo "   $server $mode ${name} run $run: $rows rows archived"
}

# mam_runs SERVER MODE: issue 13's archive queries (Starling; ejabberd beside it). Its own
# directory with MAM_USERS users only, so that the database is (nearly) all archive: for
# Starling, starling-bench mam-fill writes MAM_ROWS rows through Starling's archive store; for
# ejabberd, ejabberd.sh archive-fill inserts the same shape of history into its SQL archive
# (both servers stopped); each reports the bytes on disk per archived row. Then, on a fresh
# server per run with the archive on, mam-query asks for the last 50 messages of the users'
# archives, one query at a time (latency: the p99 target) and 8 at a time (throughput).
mam_runs() {
    local server=$1 mode=$2 mdir=$OUT/data-$1-mam
    rm -rf "$mdir" && mkdir -p "$mdir"
    echo "== $server: archive of $MAM_ROWS messages for $MAM_USERS users"
    "bench/servers/$server.sh" provision "$mdir" mam "$MAM_USERS" 0 pw 2>&1 | tail -1 | tee -a "$LOG"
    local cmd=(taskset -c "$GEN_CPU" "$BENCH" --prefix mam --users "$MAM_USERS" mam-fill
        --db "$mdir/starling.db" --rows "$MAM_ROWS")
    if [ "$server" = ejabberd ]; then
        cmd=(taskset -c "$GEN_CPU" bench/servers/ejabberd.sh archive-fill "$mdir" mam "$MAM_USERS" "$MAM_ROWS")
    fi
    echo "   ${cmd[*]}" >> "$LOG"
    echo "mam_fill: ${cmd[*]}" | sed "s#$ROOT/##g" >> "$OUT/commands-$server-$mode.txt"
    local out result
    out=$("${cmd[@]}" 2>&1) || true
    echo "$out" | sed 's/^/      /' >> "$LOG"
    result=$(echo "$out" | grep '^RESULT' | tail -1)
    [ -n "$result" ] || result="RESULT error=failed"
    echo "$server $mode mam_fill 1 $result" >> "$RESULTS"
    echo "   $server $mode mam_fill: ${result#RESULT }"
    for run in $(seq "$RUNS"); do
        local pid
        pid=$(start "$server" "$mdir" "$mode" full)
        bench "$server" "$mode" mam_query "$run" "$pid" --prefix mam --users "$MAM_USERS" mam-query --max 50 --inflight 1 --duration "$DURATION"
        bench "$server" "$mode" mam_query_8 "$run" "$pid" --prefix mam --users "$MAM_USERS" mam-query --max 50 --inflight 8 --duration "$DURATION"
        stop "$server" "$mdir"
    done
}

for server in $SERVERS; do
    dir=$OUT/data-$server
    rm -rf "$dir" && mkdir -p "$dir"
    echo "== $server: provisioning $USERS users and $RING_USERS with ring rosters of $RING"
    "bench/servers/$server.sh" provision "$dir" bench "$USERS" 0 pw 2>&1 | tail -1 | tee -a "$LOG"
    "bench/servers/$server.sh" provision "$dir" ring "$RING_USERS" "$RING" pw 2>&1 | tail -1 | tee -a "$LOG"
    for mode in $MODES; do
        echo "== $server, TLS $mode"
        # Prime the generator's cache of salted passwords (per-user salts on Prosody/ejabberd),
        # so PBKDF2 in the generator never counts against a server.
        pid=$(start "$server" "$dir" "$mode")
        bench "$server" "$mode" prime 0 "$pid" --users "$USERS" login > /dev/null
        [ "$mode" = ws ] || bench "$server" "$mode" prime 0 "$pid" --prefix ring --users "$RING_USERS" login > /dev/null
        stop "$server" "$dir"
        for run in $(seq "$RUNS"); do
            if [ "$mode" = ws ]; then
                # Issue 17: the TLS-off idle hold and saturated chat, over WebSocket.
                scenario "$server" "$dir" "$mode" idle "$run" --users "$IDLE_USERS" idle --settle 5
                scenario "$server" "$dir" "$mode" chat_sat "$run" --users "$CHAT_USERS" chat --rate 0 --duration "$DURATION"
                continue
            fi
            scenario "$server" "$dir" "$mode" idle "$run" --users "$IDLE_USERS" idle --settle 5
            scenario "$server" "$dir" "$mode" login "$run" --users "$LOGIN_USERS" --concurrency 100 login
            scenario "$server" "$dir" "$mode" chat_10k "$run" --users "$CHAT_USERS" chat --rate 10000 --duration "$DURATION"
            scenario "$server" "$dir" "$mode" chat_2k "$run" --users "$CHAT_USERS" chat --rate 2000 --duration "$DURATION"
            scenario "$server" "$dir" "$mode" chat_sat "$run" --users "$CHAT_USERS" chat --rate 0 --duration "$DURATION"
            # Issue 12: XEP-0198 enabled by every client (resumable), requests answered at once.
            scenario "$server" "$dir" "$mode" idle_sm "$run" --users "$IDLE_USERS" --sm idle --settle 5
            scenario "$server" "$dir" "$mode" chat_sat_sm "$run" --users "$CHAT_USERS" --sm chat --rate 0 --duration "$DURATION"
            # Issue 13: chat_sat with carbons, archives and stream management on every session.
            if [ "$FULL" = 1 ]; then
                full_scenario "$server" "$dir" "$mode" chat_sat_full "$run" --users "$CHAT_USERS" --sm --carbons chat --rate 0 --duration "$DURATION"
            fi
            # Issue 14: SCRAM logins over SASL2 (Bind2, SM, a FAST token) beside reconnects with
            # XEP-0484 FAST + resumption in one round trip. Starling only (Debian's Prosody 0.12
            # and ejabberd 23.01 have neither SASL2 nor FAST), with TLS (SASL2 requires it).
            if [ "$server" = starling ] && [ "$mode" = starttls ]; then
                scenario "$server" "$dir" "$mode" fast "$run" --users "$LOGIN_USERS" --concurrency 100 fast --rounds 3
            fi
            scenario "$server" "$dir" "$mode" presence "$run" --prefix ring --users "$RING_USERS" presence --duration "$DURATION"
            # PEP fan-out (XEP-0163) among the same ring users: caps with tune+notify (XEP-0115),
            # each publishes to its tune node, closed loop; PEP on in every server (WITH=pep).
            WITH=pep scenario "$server" "$dir" "$mode" pep "$run" --prefix ring --users "$RING_USERS" pep --duration "$DURATION"
            # Multi-user chat (XEP-0045, issue 16 item 6): MUC_ROOMS rooms of MUC_OCCUPANTS (the
            # bench users, one room each) join, creating instant rooms, and post in a closed loop
            # on each post's reflection; then one user joins a room of MUC_FLOOD occupants ten
            # times (the presence flood to a joiner).
            WITH=muc scenario "$server" "$dir" "$mode" muc "$run" --users "$((MUC_ROOMS * MUC_OCCUPANTS))" muc --rooms "$MUC_ROOMS" --occupants "$MUC_OCCUPANTS" --duration "$DURATION"
            WITH=muc scenario "$server" "$dir" "$mode" muc_flood "$run" --users "$((MUC_FLOOD + 1))" muc --join-flood "$MUC_FLOOD" --flood-rounds 10
            # Does one noisy room slow the others? The same rooms posting at MUC_QUIET_RATE in
            # all, alone (muc_quiet) and beside room 0 offered MUC_NOISY_RATE posts/s
            # (muc_noisy), each server with its default limits (Starling: 200 messages/s per
            # room). Not Prosody: the quiet rate alone is beyond what it delivers.
            if [ "$server" != prosody ]; then
                WITH=muc MUC_LIMITS=default scenario "$server" "$dir" "$mode" muc_quiet "$run" --users "$((MUC_ROOMS * MUC_OCCUPANTS))" muc --rooms "$MUC_ROOMS" --occupants "$MUC_OCCUPANTS" --rate "$MUC_QUIET_RATE" --duration "$DURATION"
                WITH=muc MUC_LIMITS=default scenario "$server" "$dir" "$mode" muc_noisy "$run" --users "$((MUC_ROOMS * MUC_OCCUPANTS))" muc --rooms "$MUC_ROOMS" --occupants "$MUC_OCCUPANTS" --rate "$MUC_QUIET_RATE" --noisy-rate "$MUC_NOISY_RATE" --duration "$DURATION"
            fi
            scenario "$server" "$dir" "$mode" scale_small "$run" --users "$SCALE_SMALL" chat --rate 5000 --duration "$DURATION"
            scenario "$server" "$dir" "$mode" scale_large "$run" --users "$SCALE_LARGE" chat --rate 5000 --duration "$DURATION"
        done
        if [ "$mode" = off ] && wanted aged; then
            # Ageing: saturated chat, then ten 10,000-user login storms, then the same chat again,
            # all on one server process.
            pid=$(start "$server" "$dir" "$mode")
            bench "$server" "$mode" aged_before 1 "$pid" --users "$CHAT_USERS" chat --rate 0 --duration "$DURATION"
            bench "$server" "$mode" aged_storms 1 "$pid" --users "$LOGIN_USERS" --concurrency 100 login --rounds "$AGING_ROUNDS"
            bench "$server" "$mode" aged_after 1 "$pid" --users "$CHAT_USERS" chat --rate 0 --duration "$DURATION"
            stop "$server" "$dir"
        fi
        if [ "$mode" = off ] && [ "$server" = starling ] && [ "$BIG_IDLE" = 1 ] && wanted idle_100k; then
            # Issue 12: 100,000 held connections with stream management, from several loopback
            # source addresses. Starling only (the others' provisioning of 100,000 accounts
            # takes hours); once.
            "bench/servers/$server.sh" provision "$dir" big "$BIG_IDLE_USERS" 0 pw 2>&1 | tail -1 | tee -a "$LOG"
            scenario "$server" "$dir" "$mode" idle_100k 1 --prefix big --users "$BIG_IDLE_USERS" \
                --source-addrs "$BIG_IDLE_SOURCES" --concurrency 200 --sm idle --settle 10
        fi
        if [ "$mode" = off ] && [ "$MAM" = 1 ] && [ "$server" != prosody ]; then
            mam_runs "$server" "$mode"
        fi
    done
done

echo "== versions and machine"
{
    echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs, $(free -g | awk '/Mem:/ {print $2}') GiB, Linux $(uname -r)"
    echo "starling: $(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes')"
    command -v prosody > /dev/null && echo "prosody: $(dpkg-query -W -f '${Version}' prosody 2> /dev/null)"
    [ -x /usr/sbin/ejabberdctl ] && echo "ejabberd: $(dpkg-query -W -f '${Version}' ejabberd 2> /dev/null)"
    echo "open files per process: $FD_LIMIT (the big idle run held up to $BIG_IDLE_USERS)"
    echo "sizes: users=$USERS chat_users=$CHAT_USERS ring=${RING_USERS}x$RING idle=$IDLE_USERS login=$LOGIN_USERS scale=$SCALE_SMALL/$SCALE_LARGE muc=${MUC_ROOMS}x$MUC_OCCUPANTS flood=$MUC_FLOOD duration=${DURATION}s runs=$RUNS archive=${MAM_ROWS}x$MAM_USERS"
    if [ -n "$SCENARIOS" ]; then echo "scenarios: $SCENARIOS (only)"; fi
} > "$OUT/machine.txt"
cat "$OUT/machine.txt"
if [ "$HOSTILE" = 1 ]; then
    echo "== hostile shapes"
    hostile_servers=""
    for s in starling ejabberd; do
        case " $SERVERS " in *" $s "*) hostile_servers="$hostile_servers $s" ;; esac
    done
    SERVERS="${hostile_servers# }" OUT="$OUT/hostile" bench/hostile.sh | tee -a "$LOG"
fi
# EARLIER="bench/results/full-X.txt …": figures this run did not measure come from those files
# (e.g. a run of only the new scenarios beside the committed full run); machine.txt says which.
read -ra earlier <<< "${EARLIER:-}"
python3 bench/report.py "$OUT" "${earlier[@]}" > "$REPORT"
echo "== wrote $REPORT (raw results: $RESULTS, log: $LOG)"
