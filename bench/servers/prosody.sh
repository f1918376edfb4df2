#!/usr/bin/env bash
# Prosody for the benchmark comparison: install, start, stop and provision an instance that lives
# entirely in one directory (config, data, pid file, log), independent of the system service.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PYTHON=${PYTHON:-python3}

usage() {
    cat >&2 <<'EOF'
usage: prosody.sh install
       prosody.sh provision DIR PREFIX COUNT RING PASSWORD
       prosody.sh start DIR PORT TLS        TLS = off | starttls | ws
       prosody.sh stop DIR
       prosody.sh pid DIR
       prosody.sh archive-count DIR         (FEATURES=full: messages in the MAM archives)
       prosody.sh archive-reset DIR         (FEATURES=full, stopped: empty archives)

install    apt-get install prosody (no system service is started or left running); prints the
           version.
provision  users PREFIX1..PREFIX{COUNT}@localhost with PASSWORD stored as SCRAM-SHA-1 keys (4096
           iterations) and, with RING>0, RING mutual contacts each (i±1..i±RING/2 mod COUNT,
           subscription both), written straight into Prosody's internal storage in DIR/data
           (accounts/<user>.dat, roster/<user>.dat). Best run BEFORE start (DIR may be empty);
           also works while running, before those users log in (Prosody reads the files on
           demand).
start      writes DIR/prosody.cfg.lua and starts Prosody (prosody -F, in the background):
           domain localhost, c2s on 127.0.0.1:PORT only, data in DIR/data, pid file
           DIR/prosody.pid, warnings and errors in DIR/prosody.log (stdout/stderr in
           DIR/prosody.out). TLS=off: no TLS, PLAIN and SCRAM-SHA-1 over plaintext.
           TLS=ws: as off, plus mod_websocket (RFC 7395) at /xmpp-websocket on an HTTP port,
           127.0.0.1:PORT+2, its WebSockets considered secure.
           TLS=starttls: STARTTLS offered and required, self-signed ECDSA P-256 certificate for
           localhost made in DIR/certs (or TLS_CERT/TLS_KEY if set). Waits until the port
           accepts connections, prints "PID <n>" (the lua5.4 process).
           SERVER_CPU=<cpu list> runs it under taskset -c.
stop       SIGTERM, waits for the process to exit (SIGKILL after 30 s).
pid        prints "PID <n>" of the running instance.

FEATURES=full (give it to start) adds what issue 13 compares with everything on: mod_mam
(XEP-0313; default_archive_policy = true, i.e. every message; archive_expires_after = "never")
and mod_carbons (XEP-0280), both shipped with Debian's prosody 0.12; smacks is there in both
variants. The archive uses the same internal (file) storage as everything else: one
DIR/data/localhost/archive/<user>.list per user (Prosody's SQL storage would need lua-dbi).
FEATURES=pep adds mod_pep (XEP-0163, with its own XEP-0115 caps tracking; internal storage), for
the pep scenario. FEATURES=muc adds the muc component on conference.localhost (XEP-0045,
room creation open to local users, no occupant cap), for the muc scenario. The default,
FEATURES=base, has none of these.

SCRAM_HASH=SHA-256 (give it to provision and start alike) stores SHA-256 keys instead: the server
then offers SCRAM-SHA-256 and not SCRAM-SHA-1 (hashed storage serves one SCRAM family).
SCRAM_ITERATIONS (default 4096) sets the PBKDF2 iteration count of provisioned users.
EOF
    exit 2
}

NAME=prosody.sh
# shellcheck source=bench/servers/common.sh
source "$HERE/common.sh"

make_cert() { # DIR -> DIR/certs/localhost.{crt,key}
    mkdir -p "$1/certs"
    if [ -n "${TLS_CERT:-}" ]; then
        cp "$TLS_CERT" "$1/certs/localhost.crt"
        cp "${TLS_KEY:?TLS_KEY must be set with TLS_CERT}" "$1/certs/localhost.key"
    else
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
            -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
            -keyout "$1/certs/localhost.key" -out "$1/certs/localhost.crt" 2>/dev/null
    fi
    chmod 600 "$1/certs/localhost.key"
}

cmd_install() {
    # Debian's postinst would start the system service through invoke-rc.d; a policy-rc.d that
    # denies it is the norm in containers. Either way, stop any system instance afterwards so
    # benchmark runs never share ports or CPU with it.
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q prosody >/dev/null; then
        apt-get update -q >/dev/null   # a fresh machine may have no package lists yet
        apt-get install -y -q prosody >/dev/null
    fi
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
        systemctl disable --now prosody >/dev/null 2>&1 || true
    else
        update-rc.d prosody disable >/dev/null 2>&1 || true
    fi
    # Without systemd, a system instance started by the postinst writes this pid file.
    if [ -s /run/prosody/prosody.pid ]; then
        kill "$(cat /run/prosody/prosody.pid)" 2>/dev/null || true
    fi
    prosodyctl about 2>/dev/null | sed -n 's/^Prosody /prosody /p' | head -1
    dpkg-query -W -f='debian package prosody ${Version}\n' prosody
}

cmd_start() {
    [ $# -eq 3 ] || usage
    local dir port=$2 tls=$3
    dir=$(abs_dir "$1")
    case $tls in off|starttls|ws) ;; *) die "TLS must be off, starttls or ws";; esac
    [[ $port =~ ^[0-9]+$ ]] || die "bad port: $port"
    if [ -f "$dir/prosody.pid" ] && kill -0 "$(cat "$dir/prosody.pid")" 2>/dev/null; then
        die "already running in $dir (pid $(cat "$dir/prosody.pid"))"
    fi
    command -v prosody >/dev/null || die "prosody is not installed (prosody.sh install)"
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then die "port $port is already in use"; fi
    mkdir -p "$dir/data" "$dir/certs"

    local tls_modules="" tls_settings
    if [ "$tls" = starttls ]; then
        [ -f "$dir/certs/localhost.crt" ] || make_cert "$dir"
        tls_modules='"tls";'
        tls_settings="c2s_require_encryption = true
ssl = { certificate = \"$dir/certs/localhost.crt\"; key = \"$dir/certs/localhost.key\"; }"
    else
        tls_settings="c2s_require_encryption = false
allow_unencrypted_plain_auth = true"
    fi
    local ready_port=$port
    if [ "$tls" = ws ]; then
        ready_port=$((port + 2))
        tls_modules='"websocket";'
        tls_settings="$tls_settings
http_ports = { $ready_port }
http_interfaces = { \"127.0.0.1\" }
https_ports = { }
consider_websocket_secure = true"
    fi
    local hash=${SCRAM_HASH:-SHA-1}
    case $hash in SHA-1|SHA-256) ;; *) die "SCRAM_HASH must be SHA-1 or SHA-256";; esac
    local as_root=false
    [ "$(id -u)" = 0 ] && as_root=true

    # FEATURES=full: MAM for every message, kept forever, and carbons (see usage).
    local full_modules="" full_settings="" components=""
    case ${FEATURES:-base} in
        base) ;;
        full)
            full_modules='-- FEATURES=full: XEP-0313 archives of every message, XEP-0280 carbons.
    "mam"; "carbons";'
            full_settings='default_archive_policy = true
archive_expires_after = "never"'
            ;;
        pep)
            # mod_pep tracks its contacts' XEP-0115 caps itself (disco#info from the owner's
            # bare JID, one answer cached per hash).
            full_modules='-- FEATURES=pep: XEP-0163 personal eventing.
    "pep";'
            ;;
        muc)
            # The muc scenario: Prosody's built-in MUC component (internal storage, rooms
            # temporary unless configured; locked until the creator configures them, as
            # XEP-0045 §10.1.1 says). No occupant cap and no history kept for the bench.
            components='-- FEATURES=muc: XEP-0045 multi-user chat.
Component "conference.localhost" "muc"
    restrict_room_creation = false
    max_history_messages = 0'
            ;;
        *) die "FEATURES must be base, full, pep or muc, not ${FEATURES}" ;;
    esac

    cat > "$dir/prosody.cfg.lua" <<EOF
-- Written by bench/servers/prosody.sh for a benchmark run: not a production config.
run_as_root = $as_root
daemonize = false
pidfile = "$dir/prosody.pid"
data_path = "$dir/data"
plugin_paths = { }
network_backend = "epoll" -- the 0.12 default and its fastest backend (libevent is legacy)
-- Same socket behaviour as ejabberd and Starling: TCP_NODELAY, a listen backlog of 1024
-- (Prosody's defaults are Nagle on and a backlog of 128).
network_settings = { tcp_backlog = 1024; nagle = false; }
certificates = "$dir/certs"
log = { { levels = { min = "warn" }; to = "file"; filename = "$dir/prosody.log"; } }
admins = { }

-- The feature set Starling has: roster, presence, messages, offline (autoloaded), disco, ping,
-- vcard-temp, version, time, smacks (XEP-0198) and csi_simple (XEP-0352). No limits (rate
-- limiting), no registration, no MUC, HTTP, components, PEP, MAM, carbons or blocklist. No s2s.
modules_enabled = {
    "roster"; "saslauth"; $tls_modules
    "disco"; "ping"; "vcard"; "version"; "time";
    -- XEP-0198 (used only by clients that enable it) and XEP-0352, as Starling has them.
    "smacks"; "csi_simple";
    $full_modules
}
$full_settings
modules_disabled = { "s2s"; "s2s_auth_certs"; }
allow_registration = false

c2s_ports = { $port }
c2s_interfaces = { "127.0.0.1" }
c2s_direct_tls_ports = { }
legacy_ssl_ports = { }
s2s_ports = { }

authentication = "internal_hashed" -- SCRAM keys only (salt, stored/server key)
password_hash = "$hash" -- one SCRAM family per server: SCRAM-$hash
storage = "internal"
$tls_settings

VirtualHost "localhost"
$components
EOF

    local cmd=(prosody -F --config "$dir/prosody.cfg.lua")
    [ -n "${SERVER_CPU:-}" ] && cmd=(taskset -c "$SERVER_CPU" "${cmd[@]}")
    rm -f "$dir/prosody.pid"
    (cd "$dir" && exec "${cmd[@]}" > "$dir/prosody.out" 2>&1 < /dev/null) &
    local launcher=$!
    # taskset and the script's #!/usr/bin/env lua5.4 exec in place, so this is the Lua process;
    # the pid file (written by mod_posix) confirms it.
    if ! wait_port "$ready_port" "$launcher" 60; then
        kill "$launcher" 2>/dev/null || true
        tail -20 "$dir/prosody.out" "$dir/prosody.log" >&2 2>/dev/null || true
        die "prosody did not start listening on $port (see $dir/prosody.out, $dir/prosody.log)"
    fi
    local i
    for ((i = 0; i < 50; i++)); do [ -s "$dir/prosody.pid" ] && break; sleep 0.1; done
    local pid
    pid=$(cat "$dir/prosody.pid" 2>/dev/null || echo "$launcher")
    echo "$pid" > "$dir/server.pid"
    echo "PID $pid"
}

server_pid() { # DIR -> pid of a live instance or nothing
    local f p
    for f in "$1/prosody.pid" "$1/server.pid"; do
        if [ -s "$f" ]; then
            p=$(cat "$f")
            if kill -0 "$p" 2>/dev/null; then echo "$p"; return; fi
        fi
    done
}

cmd_stop() {
    [ $# -eq 1 ] || usage
    local dir pid
    dir=$(abs_dir "$1")
    pid=$(server_pid "$dir")
    [ -n "$pid" ] || { echo "not running"; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    await_exit "$pid" 30
    rm -f "$dir/server.pid"
}

cmd_pid() {
    [ $# -eq 1 ] || usage
    local pid
    pid=$(server_pid "$(abs_dir "$1")")
    [ -n "$pid" ] || die "not running"
    echo "PID $pid"
}

cmd_provision() {
    [ $# -eq 5 ] || usage
    local dir
    dir=$(abs_dir "$1")
    mkdir -p "$dir/data"
    local t0
    t0=$(date +%s.%N)
    "$PYTHON" "$HERE/gen_users.py" prosody "$dir/data" localhost "$2" "$3" "$4" "$5"
    echo "provisioned $3 users (ring $4) in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
}

[ $# -ge 1 ] || usage
sub=$1; shift
cmd_archive_count() { # DIR: items in every archive file (one "item(...);" line each)
    [ $# -eq 1 ] || usage
    local dir
    dir=$(abs_dir "$1")
    find "$dir/data" -path '*/archive/*.list' -exec cat {} + 2>/dev/null | grep -c '^item(' || true
}

cmd_archive_reset() {
    [ $# -eq 1 ] || usage
    local dir
    dir=$(abs_dir "$1")
    [ -z "$(server_pid "$dir")" ] || die "archive-reset: stop the instance first"
    find "$dir/data" -mindepth 2 -maxdepth 2 -type d -name archive -exec rm -rf {} + 2>/dev/null || true
}

case $sub in
    install) cmd_install "$@";;
    start) cmd_start "$@";;
    stop) cmd_stop "$@";;
    provision) cmd_provision "$@";;
    pid) cmd_pid "$@";;
    archive-count) cmd_archive_count "$@";;
    archive-reset) cmd_archive_reset "$@";;
    *) usage;;
esac
