#!/usr/bin/env bash
# Migration test (issue 14, item 6): real Prosody and ejabberd data into Starling.
#
# For each source server installed (Debian's `prosody`, `ejabberd`): a throwaway instance in a
# temporary directory (its own config and data, loopback ports, no TLS), three accounts with
# their passwords (alice's is not ASCII), rosters, vCards, private XML and an offline message set
# over XMPP with slixmpp (tests/migration/xmpp.py populate, which also reads everything back
# from the source); the server stopped; its own export tool (prosody-migrator to
# mod_storage_xep0227, ejabberdctl export_piefxis); `starling import xep0227` into a fresh data
# directory; `starling serve`; every account logs in with its ORIGINAL password over SCRAM and
# its roster, vCard and private XML are compared with what the source said (xmpp.py check).
#
# Cases: Prosody internal_hashed with SCRAM-SHA-1 keys and with SCRAM-SHA-256 keys,
# internal_plain (the password converted at import); ejabberd with SCRAM-SHA-1 keys, SCRAM-SHA-256
# keys and plain passwords. A source whose package is absent is skipped with a message.
#
#   tests/migration/run.sh                 # build starling (debug), run every case
#   STARLING_BIN=path/to/starling tests/migration/run.sh
#   MIGRATION_CASES="prosody-sha1 ejabberd-plain" tests/migration/run.sh
#   MIGRATION_KEEP=1 tests/migration/run.sh   # keep the temporary directories (printed)
#
# Exits non-zero on any mismatch or failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
CASES=${MIGRATION_CASES:-"prosody-sha1 prosody-sha256 prosody-plain ejabberd-sha1 ejabberd-sha256 ejabberd-plain"}

if [ -n "${STARLING_BIN:-}" ]; then
    BIN=$STARLING_BIN
else
    echo "== build"
    cargo build -q -p starling
    BIN=$TARGET/debug/starling
fi
# The interop suite's slixmpp virtual environment (tests/interop/lib.sh), shared with it.
BUILD=$TARGET/interop
mkdir -p "$BUILD"
# shellcheck source=tests/interop/lib.sh
source tests/interop/lib.sh
interop_venv

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2> /dev/null || true; done
    # ejabberd instances stop through their own ejabberdctl.
    for d in "$WORK"/ejabberd-*; do [ -x "$d/ejabberdctl" ] && ejabberd_stop "$d"; done
    if [ -n "${MIGRATION_KEEP:-}" ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
AS_ROOT=false
[ "$(id -u)" = 0 ] && AS_ROOT=true

fail() { echo "MIGRATION FAILED: $*" >&2; exit 1; }

free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_port PORT PID: until 127.0.0.1:PORT accepts (60 s), or PID dies.
wait_port() {
    local i
    for ((i = 0; i < 600; i++)); do
        if (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null; then return 0; fi
        [ -z "${2:-}" ] || kill -0 "$2" 2> /dev/null || return 1
        sleep 0.1
    done
    return 1
}

# wait_gone PID
wait_gone() {
    local i
    for ((i = 0; i < 300; i++)); do
        kill -0 "$1" 2> /dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$1" 2> /dev/null || true
}

# --- Starling -----------------------------------------------------------------------------------

# starling_check CASE EXPORT_DIR MECHANISM OFFLINE: import, serve, log in and compare.
starling_check() {
    local name=$1 export=$2 mech=$3 offline=$4
    local dir=$WORK/$name/starling p1 p2
    mkdir -p "$dir"
    p1=$(free_port)
    p2=$(free_port)
    cat > "$dir/starling.toml" << TOML
data_dir = "$dir"
[log]
level = "warn"
[c2s]
listen = ["127.0.0.1:$p1"]
direct_tls_listen = ["127.0.0.1:$p2"]
rate = 0
[http]
listen = []
TOML
    echo "   starling import xep0227 $export"
    "$BIN" import xep0227 "$export" --config "$dir/starling.toml" | sed 's/^/      /' ||
        fail "$name: starling import failed"
    "$BIN" serve --config "$dir/starling.toml" > "$dir/serve.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait_port "$p1" "$pid" || fail "$name: starling did not start (see $dir/serve.log)"
    local rc=0
    timeout 120 "$PY" tests/migration/xmpp.py check 127.0.0.1 "$p1" "$WORK/$name/snapshot.json" \
        "$mech" "$offline" | sed 's/^/      /' || rc=$?
    kill "$pid" 2> /dev/null || true
    wait "$pid" 2> /dev/null || true
    [ "$rc" = 0 ] || fail "$name: Starling's data differs from the source's (above)"
}

# --- Prosody ------------------------------------------------------------------------------------

# prosody_case NAME AUTH HASH MECHANISM
prosody_case() {
    local name=$1 auth=$2 hash=$3 mech=$4
    local dir=$WORK/$name port
    mkdir -p "$dir/data" "$dir/export"
    port=$(free_port)
    cat > "$dir/prosody.cfg.lua" << EOF
-- Written by tests/migration/run.sh: a throwaway source server.
run_as_root = $AS_ROOT
daemonize = false
pidfile = "$dir/prosody.pid"
data_path = "$dir/data"
plugin_paths = { }
certificates = "$dir"
log = { { levels = { min = "warn" }; to = "file"; filename = "$dir/prosody.log"; } }
modules_enabled = { "roster"; "saslauth"; "disco"; "vcard"; "private"; "offline"; "mam"; "posix" }
default_archive_policy = true
modules_disabled = { "s2s"; }
allow_registration = false
c2s_ports = { $port }
c2s_interfaces = { "127.0.0.1" }
c2s_direct_tls_ports = { }
legacy_ssl_ports = { }
s2s_ports = { }
c2s_require_encryption = false
authentication = "$auth"
password_hash = "$hash"
storage = "internal"
VirtualHost "localhost"
EOF
    local user pw
    while IFS=$'\t' read -r user pw; do
        prosodyctl --config "$dir/prosody.cfg.lua" register "$user" localhost "$pw" \
            > /dev/null 2>> "$dir/prosodyctl.err" || fail "$name: prosodyctl register $user"
    done < <("$PY" tests/migration/xmpp.py passwords)
    (cd "$dir" && exec prosody -F --config "$dir/prosody.cfg.lua" > "$dir/prosody.out" 2>&1 < /dev/null) &
    local pid=$!
    PIDS+=("$pid")
    wait_port "$port" "$pid" || fail "$name: prosody did not start (see $dir)"
    timeout 120 "$PY" tests/migration/xmpp.py populate 127.0.0.1 "$port" "$dir/snapshot.json" yes |
        sed 's/^/      /' || fail "$name: populating Prosody failed"
    kill "$pid"
    wait_gone "$pid"

    # Export, as docs/migrating.md says: prosody-migrator from the internal store to
    # mod_storage_xep0227. Debian's migrator writes the XML files into its compiled-in data
    # directory (CFG_DATADIR, /var/lib/prosody) whatever the config says, so this throwaway run
    # uses a copy pointed at $dir/export; --root keeps it from switching to the prosody user.
    sed -e "s#^CFG_DATADIR=.*#CFG_DATADIR='$dir/export';#" \
        -e "s#^CFG_CONFIGDIR=.*#CFG_CONFIGDIR='$dir';#" /usr/bin/prosody-migrator > "$dir/prosody-migrator"
    chmod +x "$dir/prosody-migrator"
    cat > "$dir/migrator.cfg.lua" << EOF
local stores = { "accounts"; "roster"; "vcard"; "private"; "archive-archive" };
input { type = "internal"; path = "$dir/data"; hosts = { ["localhost"] = stores } }
output { type = "xep0227"; hosts = { ["localhost"] = stores } }
EOF
    local root_flag=()
    $AS_ROOT && root_flag=(--root)
    "$dir/prosody-migrator" "${root_flag[@]}" --config "$dir/migrator.cfg.lua" input output \
        > "$dir/migrator.log" 2>&1 || { cat "$dir/migrator.log" >&2; fail "$name: prosody-migrator failed"; }
    echo "   prosody-migrator wrote: $(cd "$dir/export" && echo *)"
    # Prosody 0.12's mod_storage_xep0227 has no offline store: no offline messages to check.
    starling_check "$name" "$dir/export" "$mech" no
}

# --- ejabberd -----------------------------------------------------------------------------------

ejabberd_ctl() { # DIR ARGS...
    local dir=$1
    shift
    env HOME="$dir" "$dir/ejabberdctl" --config-dir "$dir" --ctl-config "$dir/ejabberdctl.cfg" \
        --config "$dir/ejabberd.yml" --logs "$dir/log" --spool "$dir/database" "$@"
}

ejabberd_beam() { # DIR -> pid of the node's beam.smp
    pgrep -f -- "beam.smp .*-sname $(cat "$1/node") " | head -1 || true
}

ejabberd_stop() { # DIR
    local pid
    pid=$(ejabberd_beam "$1")
    [ -n "$pid" ] || return 0
    ejabberd_ctl "$1" stop > /dev/null 2>&1 || kill "$pid" 2> /dev/null || true
    wait_gone "$pid"
}

# ejabberd_case NAME FORMAT HASH MECHANISM
ejabberd_case() {
    local name=$1 format=$2 hash=$3 mech=$4
    local dir=$WORK/$name port dist
    mkdir -p "$dir/log" "$dir/database" "$dir/export"
    port=$(free_port)
    dist=$(free_port)
    # A private ejabberdctl (as bench/servers/ejabberd.sh does): Debian's switches to the
    # ejabberd user when run as root; here the node runs as the caller.
    sed -e 's/^INSTALLUSER=ejabberd$/INSTALLUSER=/' \
        -e '/WARNING: It is not recommended to run ejabberd as root/d' \
        /usr/sbin/ejabberdctl > "$dir/ejabberdctl"
    chmod +x "$dir/ejabberdctl"
    echo "migration_$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')@localhost" > "$dir/node"
    printf '{lookup,["file","native"]}.\n{host,{127,0,0,1}, ["localhost"]}.\n' > "$dir/inetrc"
    cat > "$dir/ejabberdctl.cfg" << EOF
ERLANG_NODE=$(cat "$dir/node")
ERL_DIST_PORT=$dist
ERL_OPTIONS="-setcookie $(od -An -N16 -tx1 /dev/urandom | tr -d ' \n') -kernel inet_dist_use_interface {127,0,0,1}"
EJABBERD_BYPASS_WARNINGS=true
EOF
    cat > "$dir/ejabberd.yml" << EOF
# Written by tests/migration/run.sh: a throwaway source server.
hosts:
  - localhost
loglevel: warning
auth_method: [mnesia]
auth_password_format: $format
auth_scram_hash: $hash
default_db: mnesia
listen:
  -
    port: $port
    ip: "127.0.0.1"
    module: ejabberd_c2s
s2s_access: none
access_rules:
  c2s:
    allow: all
modules:
  mod_roster: {}
  mod_offline: {}
  mod_private: {}
  mod_vcard:
    search: false
  mod_disco: {}
EOF
    ejabberd_ctl "$dir" start > "$dir/log/start.out" 2>&1 < /dev/null
    wait_port "$port" || fail "$name: ejabberd did not start (see $dir/log)"
    local user pw
    while IFS=$'\t' read -r user pw; do
        ejabberd_ctl "$dir" register "$user" localhost "$pw" > /dev/null ||
            fail "$name: ejabberdctl register $user"
    done < <("$PY" tests/migration/xmpp.py passwords)
    timeout 120 "$PY" tests/migration/xmpp.py populate 127.0.0.1 "$port" "$WORK/$name/snapshot.json" no |
        sed 's/^/      /' || fail "$name: populating ejabberd failed"
    # Export, as docs/migrating.md says (the node must run; the directory must exist).
    ejabberd_ctl "$dir" export_piefxis "$dir/export" > "$dir/export.log" 2>&1 ||
        { cat "$dir/export.log" >&2; fail "$name: ejabberdctl export_piefxis failed"; }
    ejabberd_stop "$dir"
    echo "   ejabberdctl export_piefxis wrote: $(cd "$dir/export" && echo *)"
    starling_check "$name" "$dir/export" "$mech" yes
}

# --- The cases ----------------------------------------------------------------------------------

have_prosody=true have_ejabberd=true
command -v prosody > /dev/null && [ -x /usr/bin/prosody-migrator ] || have_prosody=false
[ -x /usr/sbin/ejabberdctl ] || have_ejabberd=false
$have_prosody || echo "== SKIPPED: Prosody cases (Debian package 'prosody' not installed)"
$have_ejabberd || echo "== SKIPPED: ejabberd cases (Debian package 'ejabberd' not installed)"

ran=0
for c in $CASES; do
    start=$(date +%s)
    case $c in
        prosody-*) $have_prosody || continue ;;
        ejabberd-*) $have_ejabberd || continue ;;
    esac
    echo "== $c"
    case $c in
        prosody-sha1) prosody_case "$c" internal_hashed SHA-1 SCRAM-SHA-1 ;;
        prosody-sha256) prosody_case "$c" internal_hashed SHA-256 SCRAM-SHA-256 ;;
        prosody-plain) prosody_case "$c" internal_plain SHA-1 SCRAM-SHA-256 ;;
        ejabberd-sha1) ejabberd_case "$c" scram sha SCRAM-SHA-1 ;;
        ejabberd-sha256) ejabberd_case "$c" scram sha256 SCRAM-SHA-256 ;;
        ejabberd-plain) ejabberd_case "$c" plain sha SCRAM-SHA-256 ;;
        *) fail "unknown case $c" ;;
    esac
    echo "   $c: passed in $(($(date +%s) - start)) s"
    ran=$((ran + 1))
done
echo "migration: $ran case(s) passed"
