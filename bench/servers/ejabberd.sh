#!/usr/bin/env bash
# ejabberd for the benchmark comparison: install, start, stop and provision an instance that lives
# entirely in one directory (configs, Mnesia spool, logs, its own Erlang node name, cookie and
# distribution port), independent of the system service and of other instances.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PYTHON=${PYTHON:-python3}

usage() {
    cat >&2 <<'EOF'
usage: ejabberd.sh install
       ejabberd.sh provision DIR PREFIX COUNT RING PASSWORD
       ejabberd.sh start DIR PORT TLS        TLS = off | starttls | ws
       ejabberd.sh stop DIR
       ejabberd.sh pid DIR
       ejabberd.sh ctl DIR ARGS...           (any ejabberdctl command against this instance)
       ejabberd.sh archive-count DIR         (FEATURES=full: rows in the MAM archive table)
       ejabberd.sh archive-reset DIR         (FEATURES=full, stopped: an empty archive)
       ejabberd.sh archive-fill DIR PREFIX COUNT ROWS   (stopped: a synthetic history)

install    apt-get install ejabberd and erlang-p1-sqlite3 (the SQLite driver of FEATURES=full);
           no system service is started or left running; prints the version.
provision  users PREFIX1..PREFIX{COUNT}@localhost with PASSWORD stored as SCRAM-SHA-1 keys (4096
           iterations) and, with RING>0, RING mutual contacts each (i±1..i±RING/2 mod COUNT,
           subscription both): writes DIR/provision.xml (XEP-0227) and loads it with ejabberdctl
           import_piefxis. Best run BEFORE start (DIR fresh): a temporary instance on a free port
           loads the data into DIR/database and stops. If the instance is running it imports into
           it (its RSS then includes the import: restart for a clean baseline).
start      writes DIR/ejabberd.yml, DIR/ejabberdctl.cfg and a private copy of ejabberdctl, then
           starts the node (detached): domain localhost, c2s on 127.0.0.1:PORT only, Mnesia in
           DIR/database, logs (warning and up) in DIR/log. Node name and cookie are random, kept
           in DIR/node and DIR/cookie; Erlang distribution on a free loopback port (no epmd).
           TLS=off: no TLS, PLAIN and SCRAM-SHA-1 over plaintext. TLS=ws: as off, plus an
           ejabberd_http listener on 127.0.0.1:PORT+2 with XMPP over WebSocket (RFC 7395,
           ejabberd_http_ws) at /xmpp-websocket, whose sessions take the c2s listener's limits
           (max_stanza_size, shaper). TLS=starttls: STARTTLS offered
           and required, self-signed ECDSA P-256 certificate for localhost made in DIR/certs (or
           TLS_CERT/TLS_KEY if set). Waits until the port accepts connections and prints
           "PID <n>" (the beam.smp process). SERVER_CPU=<cpu list> runs it under taskset -c and
           sizes the Erlang schedulers to that many CPUs (+S N:N +SDcpu N:N).
           EJABBERD_ERL_OPTIONS replaces the default extra VM flags "+sbwt none +sbwtdcpu none
           +sbwtdio none" (no scheduler busy-waiting, so CPU time is work done).
stop       ejabberdctl stop, waits for beam.smp to exit (SIGKILL after 60 s).
pid        prints "PID <n>" of the running beam.smp.

FEATURES=full (give it to start) adds what issue 13 compares with everything on: mod_mam
(XEP-0313, `default: always`, stored in SQL: SQLite in DIR/ejabberd.db, made from Debian's
lite.sql at first start, needs erlang-p1-sqlite3) and mod_carboncopy (XEP-0280); mod_stream_mgmt
is there in both variants. FEATURES=pep adds mod_pubsub with the pep plugin (XEP-0163) and
mod_caps (XEP-0115), for the pep scenario. FEATURES=muc adds mod_muc (XEP-0045) on
conference.localhost (anyone may create rooms; up to 100,000 occupants a room), for the muc
scenario. The default, FEATURES=base, has none of these (the
feature set of the other scenarios). archive-count prints the rows of that archive; archive-reset (instance stopped)
deletes the SQLite file, so that the next start begins with an empty archive. archive-fill
(instance stopped) inserts ROWS rows of synthetic history for PREFIX1..PREFIX{COUNT} into that
archive with SQL (ejabberd_mam_fill.py: the same shape as starling-bench mam-fill writes for
Starling) and prints a RESULT line with the bytes on disk per row.

SCRAM_HASH=SHA-256 (give it to provision and start alike) stores SHA-256 keys instead: the server
then offers SCRAM-SHA-256 and not SCRAM-SHA-1 (hashed storage serves one SCRAM family).
SCRAM_ITERATIONS (default 4096) sets the PBKDF2 iteration count of provisioned users.

For a server-to-server pair (bench/s2s.sh), give provision and start alike:
  SERVER_DOMAIN=<domain>   the domain served instead of localhost (users are PREFIXn@SERVER_DOMAIN)
  S2S_ADDR=<ipv4>          ejabberd_s2s_in on S2S_ADDR:5269, outgoing s2s from that address
                           (s2s_access: all, STARTTLS required, mod_s2s_dialback as the fallback)
  S2S_CERT=… S2S_KEY=…     the domain's certificate (chain) and key (certfiles)
  S2S_CA=<pem>             the CA peers' certificates are verified against (s2s_cafile)
ejabberd 23.01 finds a peer's address with an SRV query (DNS) and then getaddrinfo(): the
system's resolver, /etc/hosts included (not the node's inetrc): bench/s2s.sh adds /etc/hosts
entries for the peer domains while it runs.
EOF
    exit 2
}

NAME=ejabberd.sh
# shellcheck source=bench/servers/common.sh
source "$HERE/common.sh"

ctl_cmd() { # DIR -> CTL array: the instance's own ejabberdctl with its own configs
    CTL=(env HOME="$1" "$1/ejabberdctl" --config-dir "$1" --ctl-config "$1/ejabberdctl.cfg"
        --config "$1/ejabberd.yml" --logs "$1/log" --spool "$1/database")
}

ctl() { # DIR ARGS...
    local CTL
    ctl_cmd "$1"; shift
    "${CTL[@]}" "$@"
}

since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

node_of() { cat "$1/node" 2>/dev/null || true; }

beam_pid() { # DIR -> pid of the instance's beam.smp, or nothing
    local node
    node=$(node_of "$1")
    [ -n "$node" ] || return 0
    pgrep -f -- "beam.smp .*-sname $node " | head -1 || true
}

free_port() {
    "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

cpu_count() { # taskset cpu list like "0", "0,1", "2-3" -> number of CPUs
    local n=0 part
    IFS=, read -ra parts <<< "$1"
    for part in "${parts[@]}"; do
        if [[ $part =~ ^([0-9]+)-([0-9]+)$ ]]; then
            n=$((n + BASH_REMATCH[2] - BASH_REMATCH[1] + 1))
        else
            n=$((n + 1))
        fi
    done
    echo "$n"
}

make_cert() { # DIR -> DIR/certs/localhost.pem (certificate and key, as ejabberd's certfiles wants)
    mkdir -p "$1/certs"
    if [ -n "${TLS_CERT:-}" ]; then
        cp "$TLS_CERT" "$1/certs/localhost.crt"
        cp "${TLS_KEY:?TLS_KEY must be set with TLS_CERT}" "$1/certs/localhost.key"
    else
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
            -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
            -keyout "$1/certs/localhost.key" -out "$1/certs/localhost.crt" 2>/dev/null
    fi
    cat "$1/certs/localhost.crt" "$1/certs/localhost.key" > "$1/certs/localhost.pem"
    chmod 600 "$1/certs/localhost.key" "$1/certs/localhost.pem"
}

cmd_install() {
    # Debian's postinst would start the system service through invoke-rc.d (a policy-rc.d that
    # denies it is the norm in containers). Stop and disable any system instance so benchmark
    # runs never share ports, the node name ejabberd@localhost or CPU with it.
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q ejabberd erlang-p1-sqlite3 >/dev/null; then
        apt-get update -q >/dev/null   # a fresh machine may have no package lists yet
        apt-get install -y -q ejabberd erlang-p1-sqlite3 >/dev/null
    fi
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
        systemctl disable --now ejabberd >/dev/null 2>&1 || true
    else
        update-rc.d ejabberd disable >/dev/null 2>&1 || true
    fi
    # Without systemd, a system instance started by the postinst is node ejabberd@localhost.
    # (Only ask it to stop if it exists: a bare `ejabberdctl stop` would leave an epmd behind.)
    if pgrep -f -- 'beam.smp .*-sname ejabberd@localhost ' >/dev/null; then
        ejabberdctl stop >/dev/null 2>&1 || true
    fi
    dpkg-query -W -f='ejabberd ${Version} ' ejabberd
    dpkg-query -W -f='(Erlang/OTP erts ${Version})\n' erlang-base
}

cmd_start() {
    [ $# -eq 3 ] || usage
    local pid
    pid=$(launch "$(abs_dir "$1")" "$2" "$3")
    echo "PID $pid"
}

launch() { # DIR PORT TLS [SERVER_CPU from env] -> prints the beam.smp pid once PORT accepts
    local dir=$1 port=$2 tls=$3
    case $tls in off|starttls|ws) ;; *) die "TLS must be off, starttls or ws";; esac
    [[ $port =~ ^[0-9]+$ ]] || die "bad port: $port"
    [ -x /usr/sbin/ejabberdctl ] || die "ejabberd is not installed (ejabberd.sh install)"
    if [ -f "$dir/ejabberdctl.cfg" ] && [ -n "$(beam_pid "$dir")" ]; then
        die "already running in $dir (pid $(beam_pid "$dir"))"
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then die "port $port is already in use"; fi
    mkdir -p "$dir/log" "$dir/database"

    # A private ejabberdctl: the packaged one switches to the 'ejabberd' user when run as root,
    # which then cannot reach a DIR under /root; here the node runs as the caller (like Prosody
    # and Starling in the same benchmark).
    sed -e 's/^INSTALLUSER=ejabberd$/INSTALLUSER=/' \
        -e '/WARNING: It is not recommended to run ejabberd as root/d' \
        /usr/sbin/ejabberdctl > "$dir/ejabberdctl"
    chmod +x "$dir/ejabberdctl"

    # Mnesia ties its files to the node name, so the name (and cookie) are made once per DIR.
    [ -s "$dir/node" ] ||
        echo "bench_ejabberd_$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')@localhost" > "$dir/node"
    [ -s "$dir/cookie" ] || { od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > "$dir/cookie"; }
    chmod 600 "$dir/cookie"
    local node cookie dist_port
    node=$(cat "$dir/node")
    cookie=$(cat "$dir/cookie")
    dist_port=$(free_port)
    local vm="-env ERL_CRASH_DUMP_BYTES 0 -setcookie $cookie"
    vm+=" -kernel inet_dist_use_interface {127,0,0,1}"
    vm+=" ${EJABBERD_ERL_OPTIONS:-+sbwt none +sbwtdcpu none +sbwtdio none}"
    if [ -n "${SERVER_CPU:-}" ]; then
        local n
        n=$(cpu_count "$SERVER_CPU")
        vm+=" +S $n:$n +SDcpu $n:$n"
    fi
    cat > "$dir/ejabberdctl.cfg" <<EOF
# Written by bench/servers/ejabberd.sh; read by DIR/ejabberdctl for the node and every ctl call.
ERLANG_NODE=$node
ERL_DIST_PORT=$dist_port
ERL_OPTIONS="$vm"
EJABBERD_BYPASS_WARNINGS=true
EOF
    printf '{lookup,["file","native"]}.\n{host,{127,0,0,1}, ["localhost"]}.\n' > "$dir/inetrc"
    local domain=${SERVER_DOMAIN:-localhost}

    local hash=${SCRAM_HASH:-SHA-1} scram_hash
    case $hash in SHA-1) scram_hash=sha;; SHA-256) scram_hash=sha256;;
        *) die "SCRAM_HASH must be SHA-1 or SHA-256";; esac
    local tls_listen="" certfiles="" ws_listen=""
    if [ "$tls" = ws ]; then
        ws_listen="  -
    port: $((port + 2))
    ip: \"127.0.0.1\"
    module: ejabberd_http
    backlog: 1024
    request_handlers:
      /xmpp-websocket: ejabberd_http_ws"
    fi
    if [ "$tls" = starttls ]; then
        [ -f "$dir/certs/localhost.pem" ] || make_cert "$dir"
        tls_listen="    starttls: true
    starttls_required: true"
        certfiles="certfiles:
  - \"$dir/certs/localhost.pem\""
    fi

    # S2S_ADDR: federation (see the usage); otherwise none at all.
    local s2s_settings="# No s2s listener, and no outgoing s2s either.
s2s_access: none" s2s_listen="" s2s_modules=""
    if [ -n "${S2S_ADDR:-}" ]; then
        [ -n "${S2S_CERT:-}" ] || die "S2S_ADDR needs S2S_CERT and S2S_KEY"
        mkdir -p "$dir/certs"
        cat "$S2S_CERT" "${S2S_KEY:?S2S_KEY must be set with S2S_CERT}" > "$dir/certs/s2s.pem"
        chmod 600 "$dir/certs/s2s.pem"
        certfiles="certfiles:
  - \"$dir/certs/s2s.pem\""
        s2s_settings="# Federation from and to $S2S_ADDR, STARTTLS required, peers' certificates checked
# against S2S_CA; SASL EXTERNAL when they verify, dialback (mod_s2s_dialback) otherwise.
s2s_access: all
s2s_use_starttls: required
ca_file: \"${S2S_CA:-}\"
s2s_cafile: \"${S2S_CA:-}\"
s2s_dns_timeout: 2
s2s_dns_retries: 1   # attempts, not retries: 0 would skip the lookup altogether
outgoing_s2s_families: [ipv4]
outgoing_s2s_ipv4_address: \"$S2S_ADDR\""
        s2s_listen="  -
    port: 5269
    ip: \"$S2S_ADDR\"
    module: ejabberd_s2s_in
    shaper: none
    max_stanza_size: 524288   # as Starling's [s2s] max_stanza_size"
        s2s_modules="  mod_s2s_dialback: {}"
    fi

    # FEATURES=full: MAM in SQLite (ejabberd's SQL schema, old layout without server_host,
    # as new_sql_schema defaults to false) and carbons. Auth, rosters and offline stay in
    # Mnesia, where provision put them: only mod_mam has db_type sql.
    local sql_settings="" full_modules=""
    case ${FEATURES:-base} in
        base) ;;
        full)
            ls -d /usr/lib/erlang/lib/p1_sqlite3-* >/dev/null 2>&1 ||
                die "FEATURES=full needs erlang-p1-sqlite3 (ejabberd.sh install)"
            [ -f "$dir/ejabberd.db" ] || make_archive_db "$dir/ejabberd.db"
            sql_settings="sql_type: sqlite
sql_database: \"$dir/ejabberd.db\""
            full_modules="  # FEATURES=full: XEP-0313 archives for every message (SQL), XEP-0280 carbons.
  mod_mam:
    db_type: sql
    default: always
  mod_carboncopy: {}"
            ;;
        pep)
            # The pep scenario: XEP-0163 PEP (the pep node plugin; flat serves the pubsub.
            # service, which nothing uses) and XEP-0115 caps tracking, from which PEP learns the
            # contacts' +notify features. ejabberd's defaults otherwise: Mnesia storage, PEP nodes
            # with max_items 1, access model presence, last item sent on presence.
            full_modules="  # FEATURES=pep: XEP-0163 personal eventing and the XEP-0115 caps it relies on.
  mod_caps: {}
  mod_pubsub:
    plugins:
      - flat
      - pep"
            ;;
        muc)
            # The muc scenario: XEP-0045 on conference.localhost (the default host
            # conference.@HOST@, named), Mnesia, rooms temporary (gone with their last
            # occupant); room creation open to all (access_create: all, the default). The cap
            # on occupants (200 by default, service and room alike) raised for --join-flood.
            full_modules="  # FEATURES=muc: XEP-0045 multi-user chat.
  mod_muc:
    host: conference.localhost
    access_create: all
    max_users: 100000
    max_user_conferences: 1000
    default_room_options:
      max_users: 100000"
            ;;
        *) die "FEATURES must be base, full, pep or muc, not ${FEATURES}" ;;
    esac

    cat > "$dir/ejabberd.yml" <<EOF
# Written by bench/servers/ejabberd.sh for a benchmark run: not a production config.
hosts:
  - "$domain"
loglevel: warning
log_rotate_count: 0
log_rotate_size: infinity
$certfiles

auth_method: [mnesia]
auth_password_format: scram   # only SCRAM keys are stored
auth_scram_hash: $scram_hash   # hashed storage serves one family: SCRAM-$hash (+ -PLUS over TLS)
disable_sasl_mechanisms: ["digest-md5", "x-oauth2"]
default_db: mnesia
$sql_settings

listen:
  -
    port: $port
    ip: "127.0.0.1"
    module: ejabberd_c2s
    backlog: 1024             # ejabberd's default is 5; Starling's 1024
    max_stanza_size: 262144   # as Starling and Prosody
    shaper: none
    access: c2s
$tls_listen
$ws_listen
$s2s_listen

$s2s_settings

access_rules:
  c2s:
    allow: all
  register:
    deny: all

# No traffic shaping; sessions and offline queues as Starling's defaults.
shaper: {}
shaper_rules:
  c2s_shaper: none
  s2s_shaper: none
  max_user_sessions: infinity
  max_user_offline_messages: 1000
max_fsm_queue: 1000000

# The feature set Starling has: roster, presence, messages, offline, disco, ping, vcard-temp,
# version, time, stream management (XEP-0198, used only by clients that enable it) and client
# state indication (XEP-0352). No registration, MUC, HTTP, PubSub/PEP, MAM, carbons, blocking,
# caps tracking or shared roster (FEATURES=full, pep and muc add some: see the usage).
modules:
  mod_roster:
    versioning: true
  mod_offline:
    access_max_user_messages: max_user_offline_messages
  mod_disco: {}
  mod_ping: {}
  mod_vcard:
    search: false
  mod_version: {}
  mod_time: {}
  mod_stream_mgmt:
    resume_timeout: 300     # as Starling's default
    max_ack_queue: 1000     # as Starling's stream_management.max_unacked
  mod_client_state: {}
$full_modules
$s2s_modules
EOF

    local CTL t0 pid="" i ready_port=$port
    # With the WebSocket listener, ready once it accepts too (listeners start in order).
    [ "$tls" = ws ] && ready_port=$((port + 2))
    ctl_cmd "$dir"
    # With SERVER_CPU the affinity is inherited by the detached beam.smp and all its threads.
    [ -n "${SERVER_CPU:-}" ] && CTL=(taskset -c "$SERVER_CPU" "${CTL[@]}")
    t0=$(date +%s.%N)
    "${CTL[@]}" start > "$dir/log/start.out" 2>&1 < /dev/null
    for ((i = 0; i < 1200; i++)); do
        [ -n "$pid" ] || pid=$(beam_pid "$dir")
        if [ -n "$pid" ] && (exec 3<>"/dev/tcp/127.0.0.1/$ready_port") 2>/dev/null; then break; fi
        if [ $i -gt 50 ] && [ -z "$pid" ]; then break; fi
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then pid=""; break; fi
        sleep 0.1
    done
    if [ -n "$pid" ] && [ -n "${S2S_ADDR:-}" ]; then
        for ((i = 0; i < 100; i++)); do
            (exec 3<>"/dev/tcp/$S2S_ADDR/5269") 2>/dev/null && break
            sleep 0.1
        done
    fi
    if [ -z "$pid" ] || ! (exec 3<>"/dev/tcp/127.0.0.1/$ready_port") 2>/dev/null; then
        tail -30 "$dir/log/start.out" "$dir/log/ejabberd.log" "$dir/log/error.log" >&2 2>/dev/null || true
        if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
        die "ejabberd did not start listening on $ready_port (see $dir/log)"
    fi
    echo "$pid" > "$dir/server.pid"
    echo "ejabberd started in $(since "$t0") s" >&2
    echo "$pid"
}

cmd_stop() {
    [ $# -eq 1 ] || usage
    halt "$(abs_dir "$1")"
}

halt() { # DIR
    local dir=$1 pid
    pid=$(beam_pid "$dir")
    [ -n "$pid" ] || { echo "not running"; return 0; }
    ctl "$dir" stop > /dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
    await_exit "$pid" 60
    rm -f "$dir/server.pid"
}

cmd_pid() {
    [ $# -eq 1 ] || usage
    local pid
    pid=$(beam_pid "$(abs_dir "$1")")
    [ -n "$pid" ] || die "not running"
    echo "PID $pid"
}

erl_eval() { # DIR EXPR : evaluate EXPR (N is bound to the node's name) on the running node
    local dir=$1 port
    port=$(sed -n 's/^ERL_DIST_PORT=//p' "$dir/ejabberdctl.cfg")
    HOME="$dir" erl -sname "provision_$$" -hidden -noinput -setcookie "$(cat "$dir/cookie")" \
        -erl_epmd_port "$port" -start_epmd false -dist_listen false \
        -eval "N = '$(cat "$dir/node")', $2, init:stop()."
}

cmd_provision() {
    [ $# -eq 5 ] || usage
    local dir temp=""
    dir=$(abs_dir "$1")
    local t0 gen t1
    t0=$(date +%s.%N)
    "$PYTHON" "$HERE/gen_users.py" piefxis "$dir/provision.xml" "${SERVER_DOMAIN:-localhost}" "$2" "$3" "$4" "$5"
    gen=$(since "$t0")
    if [ -z "$(beam_pid "$dir")" ]; then
        # Not running: a temporary instance on a free port loads the data into DIR/database,
        # which `start` then uses (same node name, kept in DIR/node). All CPUs for speed.
        temp=1
        S2S_ADDR="" SERVER_CPU="" launch "$dir" "$(free_port)" off > /dev/null
    fi
    t1=$(date +%s.%N)
    # ejabberd keeps passwd, roster and roster_version in disc_only_copies (dets) tables, where
    # import_piefxis writes about 100 roster items a second. Load into disc_copies (RAM + log)
    # and convert back afterwards, so the benchmark runs on ejabberd's default storage layout.
    local tables='[passwd, roster, roster_version]'
    erl_eval "$dir" "R = [rpc:call(N, mnesia, change_table_copy_type, [T, N, disc_copies]) || T <- $tables], [{atomic, ok}] = lists:usort(R)" ||
        die "could not switch tables to disc_copies"
    local t2 imp
    t2=$(date +%s.%N)
    ctl "$dir" --no-timeout import_piefxis "$dir/provision.xml"
    imp=$(since "$t2")
    erl_eval "$dir" "R = [rpc:call(N, mnesia, change_table_copy_type, [T, N, disc_only_copies]) || T <- $tables], [{atomic, ok}] = lists:usort(R)" ||
        die "could not switch tables back to disc_only_copies"
    rm -f "$dir/provision.xml"
    local users
    users=$(ctl "$dir" registered_users "${SERVER_DOMAIN:-localhost}" | wc -l)
    echo "provisioned $3 users (ring $4) in $(since "$t0") s" \
        "(generate $gen s, load $(since "$t1") s of which import_piefxis $imp s);" \
        "$users accounts on the server"
    if [ -n "$temp" ]; then
        halt "$dir" > /dev/null
    else
        echo "note: the running node's RSS now includes the import; restart it for a clean baseline" >&2
    fi
}

make_archive_db() { # PATH: a SQLite database with ejabberd's SQL schema (Debian's lite.sql)
    # In WAL mode, as Starling's database (the mode is kept in the file; ejabberd sets none):
    # with SQLite's default rollback journal, every archived message costs ejabberd two fsyncs
    # and a saturated run archives a few dozen messages a second on this VM.
    "$PYTHON" - "$1" /usr/share/ejabberd/sql/lite.sql <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("PRAGMA journal_mode=WAL")
db.executescript(open(sys.argv[2]).read())
db.close()
PY
}

cmd_archive_count() {
    [ $# -eq 1 ] || usage
    local dir
    dir=$(abs_dir "$1")
    [ -f "$dir/ejabberd.db" ] || { echo 0; return 0; }
    "$PYTHON" -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM archive").fetchone()[0])' "$dir/ejabberd.db"
}

cmd_archive_reset() {
    [ $# -eq 1 ] || usage
    local dir
    dir=$(abs_dir "$1")
    [ -z "$(beam_pid "$dir")" ] || die "archive-reset: stop the instance first"
    rm -f "$dir/ejabberd.db" "$dir/ejabberd.db-journal" "$dir/ejabberd.db-wal" "$dir/ejabberd.db-shm"
}

cmd_archive_fill() {
    [ $# -eq 4 ] || usage
    local dir
    dir=$(abs_dir "$1")
    [ -z "$(beam_pid "$dir")" ] || die "archive-fill: stop the instance first"
    [ -f "$dir/ejabberd.db" ] || make_archive_db "$dir/ejabberd.db"
    "$PYTHON" "$HERE/ejabberd_mam_fill.py" "$dir/ejabberd.db" localhost "$2" "$3" "$4"
}

cmd_ctl() {
    [ $# -ge 2 ] || usage
    local dir
    dir=$(abs_dir "$1"); shift
    ctl "$dir" "$@"
}

[ $# -ge 1 ] || usage
sub=$1; shift
case $sub in
    install) cmd_install "$@";;
    start) cmd_start "$@";;
    stop) cmd_stop "$@";;
    provision) cmd_provision "$@";;
    pid) cmd_pid "$@";;
    ctl) cmd_ctl "$@";;
    archive-count) cmd_archive_count "$@";;
    archive-reset) cmd_archive_reset "$@";;
    archive-fill) cmd_archive_fill "$@";;
    *) usage;;
esac
