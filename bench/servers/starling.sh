#!/usr/bin/env bash
# Starling for the benchmark comparison, with the same CLI as prosody.sh and ejabberd.sh: an
# instance that lives entirely in one directory (config, database, certificate, pid file, log).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${STARLING_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/starling}

usage() {
    cat >&2 <<'USAGE'
usage: starling.sh install
       starling.sh provision DIR PREFIX COUNT RING PASSWORD
       starling.sh start DIR PORT TLS        TLS = off | starttls | ws
       starling.sh stop DIR
       starling.sh pid DIR
       starling.sh archive-count DIR
       starling.sh archive-reset DIR

install    cargo build --release -p starling -p starling-bench; prints the version.
provision  `starling user import`: PREFIX1..PREFIX{COUNT}@localhost with PASSWORD (SCRAM keys for
           SHA-1/-256/-512, auth.scram_iterations = 4096) and, with RING>0, ring rosters of RING
           mutual `both` contacts. Run before start (DIR may be empty) or while running.
start      writes DIR/starling.toml and starts `starling serve` in the background: domain
           localhost, c2s (STARTTLS port) on 127.0.0.1:PORT, direct TLS on PORT+1, no read-rate
           limit, log level warn into DIR/starling.log. TLS=off: authentication allowed without
           TLS (require_encryption = false); TLS=starttls: TLS required before authentication
           (the default), self-signed certificate made at first start. TLS=ws: as off, plus
           the HTTP listener on 127.0.0.1:PORT+2 with XMPP over WebSocket (RFC 7395) at
           /xmpp-websocket (a loopback WebSocket counts as secure). Prints "PID <n>".
           SERVER_CPU=<cpu list> runs it under taskset -c (tokio then starts one worker per
           CPU in the list).
stop       SIGTERM, waits for the process to exit (SIGKILL after 30 s).
pid        prints "PID <n>" of the running instance.
archive-count  rows in the message archive (table archive_messages of DIR/starling.db).
archive-reset  (instance stopped) the archive as it was empty: the first call, which must find
           it empty, keeps a copy of the database (DIR/archive-empty.db, SQLite's backup API);
           later calls copy it back. Accounts, rosters and offline messages return to that
           state too.

ARCHIVE=true (give it to start) turns the message archive (XEP-0313) on for every account.

For a server-to-server pair (bench/s2s.sh), give provision and start alike:
  SERVER_DOMAIN=<domain>   the domain served instead of localhost (users are PREFIXn@SERVER_DOMAIN)
  S2S_ADDR=<ipv4>          the s2s listener on S2S_ADDR:5269 ([s2s] listen): federation on
  S2S_CERT=… S2S_KEY=…     the domain's certificate (chain) and key, for c2s and s2s alike
  S2S_CA=<pem>             the CA peers' certificates are verified against ([s2s] ca_file)
  S2S_PEERS="d1=ip1 …"     where peer domains are ([s2s.hosts] "d1" = "ip1:5269"): no DNS
USAGE
    exit 2
}

NAME=starling.sh
# shellcheck source=bench/servers/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

config() { # DIR PORT TLS
    local require http="[]"
    case "$3" in
        off) require=false ;;
        starttls) require=true ;;
        ws) require=false http="[\"127.0.0.1:$(($2 + 2))\"]" ;;
        *) die "TLS must be off, starttls or ws, not $3" ;;
    esac
    cat > "$1/starling.toml" <<TOML
data_dir = "$1"

[log]
level = "warn"

# No HTTP listener on 5280 (ejabberd's and Prosody's default too); with TLS=ws one on PORT+2
# for the WebSocket endpoint.
[http]
listen = $http

[c2s]
listen = ["127.0.0.1:$2"]
direct_tls_listen = ["127.0.0.1:$(($2 + 1))"]
require_encryption = $require
rate = 0
# The load generator opens every connection from 127.0.0.1 (or a few 127.0.0.x), up to 100,000.
max_connections_per_ip = 0
max_connections = 0

[auth]
scram_iterations = 4096
$(hosts_config)

# The message archive (XEP-0313) is on by default; the comparison scenarios run without it,
# as ejabberd and Prosody do (ARCHIVE=true turns it on for the scenarios that have it on all).
[archive]
enabled = ${ARCHIVE:-false}
TOML
    if [ "${FEATURES:-base}" = muc ]; then
        # FEATURES=muc, as ejabberd's mod_muc and Prosody's muc run: no rate limits (unless
        # MUC_LIMITS=default: the default limits), and rooms without an archive unless
        # MUC_ARCHIVE=true (neither of them archives rooms there).
        local rates="occupant_rate = 0
room_rate = 0"
        [ "${MUC_LIMITS:-off}" = default ] && rates="# default rate limits"
        cat >> "$1/starling.toml" <<TOML

[muc]
$rates
archive = ${MUC_ARCHIVE:-false}
# As ejabberd's max_users for the join flood: no occupant cap in the way.
max_occupants = 100000
TOML
    fi
}

# The [[host]] and [s2s] sections from SERVER_DOMAIN, S2S_* (see the usage); nothing without them.
hosts_config() {
    if [ -n "${SERVER_DOMAIN:-}" ]; then
        printf '\n[[host]]\ndomain = "%s"\n' "$SERVER_DOMAIN"
        if [ -n "${S2S_CERT:-}" ]; then
            printf 'certificate = "%s"\nkey = "%s"\n' "$S2S_CERT" "${S2S_KEY:?S2S_KEY must be set with S2S_CERT}"
        fi
    fi
    [ -n "${S2S_ADDR:-}" ] || return 0
    printf '\n[s2s]\nlisten = ["%s:5269"]\n' "$S2S_ADDR"
    [ -z "${S2S_CA:-}" ] || printf 'ca_file = "%s"\n' "$S2S_CA"
    printf '\n[s2s.hosts]\n'
    local peer
    for peer in ${S2S_PEERS:-}; do
        printf '"%s" = "%s:5269"\n' "${peer%%=*}" "${peer#*=}"
    done
}

# sqlite3 from Python's standard library: no sqlite3 CLI needed.
archive_count() { # DB
    python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM archive_messages").fetchone()[0])' "$1"
}

db_copy() { # FROM TO: a consistent copy (the WAL included) with SQLite's backup API
    python3 -c 'import sqlite3, sys
src = sqlite3.connect(sys.argv[1]); dst = sqlite3.connect(sys.argv[2])
src.backup(dst); dst.close(); src.close()' "$1" "$2"
}

cmd=${1:-}
case "$cmd" in
    install)
        (cd "$ROOT" && cargo build --release -q -p starling -p starling-bench)
        "$BIN" --version
        ;;
    provision)
        [ $# -eq 6 ] || usage
        dir=$(abs_dir "$2")
        [ -f "$dir/starling.toml" ] || config "$dir" 5222 off
        ring=()
        [ "$5" -gt 0 ] && ring=(--ring "$5")
        "$BIN" user import --config "$dir/starling.toml" --prefix "$3" --count "$4" \
            --password "$6" "${ring[@]}"
        ;;
    start)
        [ $# -eq 4 ] || usage
        dir=$(abs_dir "$2")
        config "$dir" "$3" "$4"
        pin=()
        [ -n "${SERVER_CPU:-}" ] && pin=(taskset -c "$SERVER_CPU")
        "${pin[@]}" "$BIN" serve --config "$dir/starling.toml" >> "$dir/starling.log" 2>&1 &
        pid=$!
        echo "$pid" > "$dir/starling.pid"
        wait_port "$3" "$pid" 30 || die "starling did not listen on $3 (see $dir/starling.log)"
        if [ "$4" = ws ]; then
            wait_port "$(($3 + 2))" "$pid" 30 || die "starling did not listen on $(($3 + 2)) (see $dir/starling.log)"
        fi
        echo "PID $pid"
        ;;
    stop)
        [ $# -eq 2 ] || usage
        dir=$(abs_dir "$2")
        [ -f "$dir/starling.pid" ] || exit 0
        pid=$(cat "$dir/starling.pid")
        if kill "$pid" 2>/dev/null; then
            await_exit "$pid" 30 > /dev/null
        fi
        rm -f "$dir/starling.pid"
        ;;
    archive-count)
        [ $# -eq 2 ] || usage
        dir=$(abs_dir "$2")
        archive_count "$dir/starling.db"
        ;;
    archive-reset)
        [ $# -eq 2 ] || usage
        dir=$(abs_dir "$2")
        if [ -f "$dir/starling.pid" ] && kill -0 "$(cat "$dir/starling.pid")" 2>/dev/null; then
            die "archive-reset: stop the instance first"
        fi
        if [ -f "$dir/archive-empty.db" ]; then
            db_copy "$dir/archive-empty.db" "$dir/starling.db"
        else
            [ "$(archive_count "$dir/starling.db")" = 0 ] ||
                die "archive-reset: the archive is not empty and no empty copy was kept"
            db_copy "$dir/starling.db" "$dir/archive-empty.db"
        fi
        ;;
    pid)
        [ $# -eq 2 ] || usage
        dir=$(abs_dir "$2")
        echo "PID $(cat "$dir/starling.pid")"
        ;;
    *) usage ;;
esac
