# shellcheck shell=bash
# Sourced by tests/federation/run.sh: test certificates, /etc/hosts entries, and one start/stop
# pair of functions per server type. Every server is a private instance living in one directory
# (config, data, logs) and listening on its own loopback address: c2s on ADDR:5222, s2s on
# ADDR:5269. Adding a server type means writing start_TYPE, stop_TYPE and adduser_TYPE, and
# teaching fed_driver.py to read its authentication log lines (auth_events in fed_driver.py).
#
# Needs FED (the scratch directory of the run) and HERE (tests/federation) to be set.

# The names every run may use, one loopback address each. Starling's own Rust tests use
# 127.0.0.2 and 127.0.0.3, so the interop servers start at 127.0.0.4.
FED_HOSTS_MARK="# starling tests/federation (removed when the run ends)"
FED_DOMAINS="prosody.fed.test ejabberd.fed.test prosody2.fed.test ejabberd2.fed.test starling.fed.test"
# Certificates are made for these and for probe.fed.test, the name fed_driver.py's wire probe
# connects as (it needs no address: nobody connects to it).
FED_CERT_DOMAINS="$FED_DOMAINS probe.fed.test"
declare -A FED_ADDR=(
    [prosody.fed.test]=127.0.0.4
    [ejabberd.fed.test]=127.0.0.5
    [prosody2.fed.test]=127.0.0.6
    [ejabberd2.fed.test]=127.0.0.7
    [starling.fed.test]=127.0.0.8
)

log() { echo "federation: $*" >&2; }

# ---------------------------------------------------------------- /etc/hosts

# Adds one marked line per test domain, unless the same line is there already (idempotent:
# a run killed with SIGKILL leaves them, and the next run neither duplicates nor trips on them).
fed_hosts_add() {
    local d line
    for d in $FED_DOMAINS; do
        line="${FED_ADDR[$d]} $d $FED_HOSTS_MARK"
        grep -qxF "$line" /etc/hosts || echo "$line" >> /etc/hosts
    done
}

# Removes exactly the marked lines. /etc/hosts may be a bind mount (containers), so it is
# rewritten in place rather than replaced.
fed_hosts_remove() {
    local kept
    [ -w /etc/hosts ] || return 0
    kept=$(grep -vF "$FED_HOSTS_MARK" /etc/hosts || true)
    printf '%s\n' "$kept" > /etc/hosts
}

# ---------------------------------------------------------------- certificates

# fed_make_certs DIR: two CAs and three certificates per test domain, all ECDSA P-256.
#   DIR/ca.crt                    the test CA every server trusts for s2s
#   DIR/good/D.{crt,key,pem}      from the test CA, EKU serverAuth + clientAuth
#   DIR/noclientauth/D.{...}      from the test CA, EKU serverAuth only (as Let's Encrypt issues
#                                 them since 2025): presented as a TLS client certificate on an
#                                 outgoing s2s stream, it is "not for client use" to a strict
#                                 verifier
#   DIR/untrusted/D.{...}         both EKUs, but from a second CA that no server trusts
# The subjectAltName is the domain as a dNSName (RFC 6125, RFC 6120 §13.7.1.2), the CN too.
# D.pem is certificate then key, the form ejabberd's certfiles takes.
fed_make_certs() {
    local dir=$1 d variant
    mkdir -p "$dir"
    make_ca() { # NAME CN
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
            -subj "/CN=$2" -keyout "$dir/$1.key" -out "$dir/$1.crt" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    }
    make_ca ca "Starling federation test CA"
    make_ca rogue "Untrusted federation test CA"
    for variant in good noclientauth untrusted; do
        mkdir -p "$dir/$variant"
        for d in $FED_CERT_DOMAINS; do
            local ca=ca eku="serverAuth,clientAuth"
            [ "$variant" = noclientauth ] && eku=serverAuth
            [ "$variant" = untrusted ] && ca=rogue
            printf '%s\n' "basicConstraints=critical,CA:FALSE" \
                "keyUsage=critical,digitalSignature" \
                "extendedKeyUsage=$eku" \
                "subjectAltName=DNS:$d" > "$dir/$variant/$d.ext"
            openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
                -subj "/CN=$d" -keyout "$dir/$variant/$d.key" -out "$dir/$variant/$d.csr" 2>/dev/null
            openssl x509 -req -in "$dir/$variant/$d.csr" -CA "$dir/$ca.crt" -CAkey "$dir/$ca.key" \
                -CAcreateserial -days 7 -extfile "$dir/$variant/$d.ext" \
                -out "$dir/$variant/$d.crt" 2>/dev/null
            cat "$dir/$variant/$d.crt" "$dir/$variant/$d.key" > "$dir/$variant/$d.pem"
            chmod 600 "$dir/$variant/$d.key" "$dir/$variant/$d.pem"
            rm -f "$dir/$variant/$d.csr" "$dir/$variant/$d.ext"
        done
    done
}

# ---------------------------------------------------------------- helpers

# wait_listen ADDR PORT PID SECONDS: until ADDR:PORT accepts; fails if PID dies or time runs out.
wait_listen() {
    local i
    for ((i = 0; i < $4 * 10; i++)); do
        if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# stop_pid PID SECONDS: SIGTERM, then SIGKILL if it is still there after SECONDS.
stop_pid() {
    local i
    kill -TERM "$1" 2>/dev/null || return 0
    for ((i = 0; i < $2 * 10; i++)); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    log "pid $1 still alive after $2 s, SIGKILL"
    kill -KILL "$1" 2>/dev/null || true
}

# ---------------------------------------------------------------- Prosody

# start_prosody DIR DOMAIN ADDR CERTDIR
# Prosody 0.12 (Debian's package): one VirtualHost, c2s and s2s on ADDR only, STARTTLS required
# on both (s2s_require_encryption), certificate verification against the test CA only
# (ssl.cafile) but not required (s2s_secure_auth = false, the default: an unverifiable peer is
# authenticated with dialback instead, XEP-0220), XEP-0288 bidi on (mod_s2s_bidi ships with
# 0.12 but is off by default). DNS goes through libunbound, told to read /etc/hosts (Prosody
# turns that off by default). mod_fedtest_log (in this directory) logs one line per
# authenticated s2s stream with its mechanism; the log is at debug level, where Prosody writes
# each stream's features and, with mod_stanza_debug, every stanza sent and received.
start_prosody() {
    local dir=$1 domain=$2 addr=$3 certs=$4
    mkdir -p "$dir/data" "$dir/certs"
    cp "$certs/$domain.crt" "$certs/$domain.key" "$dir/certs/"
    cat > "$dir/prosody.cfg.lua" <<EOF
-- Written by tests/federation/servers.sh: a private test instance, not a production config.
run_as_root = true
daemonize = false
pidfile = "$dir/prosody.pid"
data_path = "$dir/data"
plugin_paths = { "$HERE/prosody-plugins" }
log = { { levels = { min = "debug" }; to = "file"; filename = "$dir/prosody.log"; } }
certificates = "$dir/certs"
ssl = { cafile = "$FED_CERTS/ca.crt" } -- the test CA (besides the system store, which has nothing for *.fed.test)
unbound = { hoststxt = true }
modules_enabled = {
    "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping"; "presence";
    "s2s_bidi"; "fedtest_log"; "stanza_debug";
}
allow_registration = false
c2s_require_encryption = true
s2s_require_encryption = true
s2s_secure_auth = false
c2s_ports = { 5222 }
c2s_interfaces = { "$addr" }
s2s_ports = { 5269 }
s2s_interfaces = { "$addr" }
c2s_direct_tls_ports = { }
s2s_direct_tls_ports = { }
legacy_ssl_ports = { }
http_ports = { }
https_ports = { }
authentication = "internal_hashed"
storage = "internal"

VirtualHost "$domain"
EOF
    (cd "$dir" && exec prosody -F --config "$dir/prosody.cfg.lua" > "$dir/prosody.out" 2>&1 < /dev/null) &
    echo $! > "$dir/launcher.pid"
    if ! wait_listen "$addr" 5222 "$!" 60 || ! wait_listen "$addr" 5269 "$!" 10; then
        tail -20 "$dir/prosody.out" "$dir/prosody.log" >&2 2>/dev/null || true
        log "prosody for $domain did not start (see $dir)"
        return 1
    fi
    echo "$dir/prosody.log" > "$dir/auth.log.path"
}

adduser_prosody() { # DIR DOMAIN USER PASSWORD
    prosodyctl --config "$1/prosody.cfg.lua" register "$3" "$2" "$4" > /dev/null
}

stop_prosody() { # DIR
    local pid
    pid=$(cat "$1/prosody.pid" 2>/dev/null || cat "$1/launcher.pid" 2>/dev/null || true)
    [ -n "$pid" ] && stop_pid "$pid" 30
    rm -f "$1/launcher.pid"
}

# ---------------------------------------------------------------- ejabberd

ejabberd_ctl() { # DIR ARGS... : the instance's own ejabberdctl, with its own configs
    local dir=$1; shift
    env HOME="$dir" "$dir/ejabberdctl" --config-dir "$dir" --ctl-config "$dir/ejabberdctl.cfg" \
        --config "$dir/ejabberd.yml" --logs "$dir/log" --spool "$dir/database" "$@"
}

ejabberd_beam() { # DIR -> pid of the instance's beam.smp, or nothing
    [ -s "$1/node" ] || return 0
    pgrep -f -- "beam.smp .*-sname $(cat "$1/node") " | head -1 || true
}

# start_ejabberd DIR DOMAIN ADDR CERTDIR
# ejabberd 23.01 (Debian's package): one host, c2s (STARTTLS required) and ejabberd_s2s_in on
# ADDR, outgoing s2s from ADDR too (outgoing_s2s_ipv4_address), STARTTLS required on s2s
# (s2s_use_starttls: required), the test CA as s2s_cafile (the only CA), mod_s2s_dialback on
# (which also makes ejabberd accept an outgoing peer certificate it cannot verify and
# authenticate with dialback instead). Log level info: the "Accepted inbound/outbound s2s
# MECHANISM authentication" lines fed_driver.py reads; FED_EJABBERD_LOGLEVEL=debug adds every
# XML element sent and received. The node runs as the caller, with its own node name, cookie
# and Erlang distribution port (no epmd), as bench/servers/ejabberd.sh does.
start_ejabberd() {
    local dir=$1 domain=$2 addr=$3 certs=$4
    mkdir -p "$dir/log" "$dir/database" "$dir/certs"
    cp "$certs/$domain.pem" "$dir/certs/"
    sed -e 's/^INSTALLUSER=ejabberd$/INSTALLUSER=/' \
        -e '/WARNING: It is not recommended to run ejabberd as root/d' \
        /usr/sbin/ejabberdctl > "$dir/ejabberdctl"
    chmod +x "$dir/ejabberdctl"
    [ -s "$dir/node" ] ||
        echo "fed_ejabberd_$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')@localhost" > "$dir/node"
    [ -s "$dir/cookie" ] || { od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > "$dir/cookie"; }
    chmod 600 "$dir/cookie"
    local dist_port
    dist_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat > "$dir/ejabberdctl.cfg" <<EOF
# Written by tests/federation/servers.sh.
ERLANG_NODE=$(cat "$dir/node")
ERL_DIST_PORT=$dist_port
ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0 -setcookie $(cat "$dir/cookie") -kernel inet_dist_use_interface {127,0,0,1} +sbwt none +sbwtdcpu none +sbwtdio none"
EJABBERD_BYPASS_WARNINGS=true
EOF
    printf '{lookup,["file","native"]}.\n{host,{127,0,0,1}, ["localhost"]}.\n' > "$dir/inetrc"
    cat > "$dir/ejabberd.yml" <<EOF
# Written by tests/federation/servers.sh: a private test instance, not a production config.
hosts:
  - "$domain"
loglevel: ${FED_EJABBERD_LOGLEVEL:-info}
log_rotate_count: 0
log_rotate_size: infinity
certfiles:
  - "$dir/certs/$domain.pem"
ca_file: "$FED_CERTS/ca.crt"
s2s_cafile: "$FED_CERTS/ca.crt"
s2s_use_starttls: required
s2s_access: all
s2s_dns_timeout: 2
s2s_dns_retries: 1   # attempts, not retries: 0 would skip the lookup altogether
outgoing_s2s_families: [ipv4]
outgoing_s2s_ipv4_address: "$addr"
auth_method: [mnesia]
auth_password_format: scram
default_db: mnesia

listen:
  -
    port: 5222
    ip: "$addr"
    module: ejabberd_c2s
    starttls_required: true
    access: c2s
  -
    port: 5269
    ip: "$addr"
    module: ejabberd_s2s_in

access_rules:
  c2s:
    allow: all
  register:
    deny: all

modules:
  mod_roster: {}
  mod_disco: {}
  mod_ping: {}
  mod_s2s_dialback: {}
EOF
    ejabberd_ctl "$dir" start > "$dir/log/start.out" 2>&1 < /dev/null
    local i pid=""
    for ((i = 0; i < 600; i++)); do
        [ -n "$pid" ] || pid=$(ejabberd_beam "$dir")
        if [ -n "$pid" ] && (exec 3<>"/dev/tcp/$addr/5269") 2>/dev/null \
            && (exec 3<>"/dev/tcp/$addr/5222") 2>/dev/null; then
            echo "$pid" > "$dir/server.pid"
            echo "$dir/log/ejabberd.log" > "$dir/auth.log.path"
            return 0
        fi
        if [ $i -gt 100 ] && [ -z "$pid" ]; then break; fi
        sleep 0.1
    done
    tail -30 "$dir/log/start.out" "$dir/log/ejabberd.log" "$dir/log/error.log" >&2 2>/dev/null || true
    log "ejabberd for $domain did not start (see $dir/log)"
    return 1
}

adduser_ejabberd() { # DIR DOMAIN USER PASSWORD
    ejabberd_ctl "$1" register "$3" "$2" "$4" > /dev/null
}

stop_ejabberd() { # DIR
    local pid
    pid=$(ejabberd_beam "$1")
    [ -n "$pid" ] || return 0
    ejabberd_ctl "$1" stop > /dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 600; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    log "ejabberd $pid still alive after 60 s, SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------- Starling

# start_starling DIR DOMAIN ADDR CERTDIR
# Written against the configuration issue 18 specifies for federation: `[s2s] listen` (the
# s2s listener, here ADDR:5269), `[s2s] ca_file` (the CA the peers' certificates are verified
# against: only the test CA here), and `[s2s.hosts]` (a static address per remote domain, here
# every other test domain, so no DNS is needed at all). c2s on ADDR:5222 with the domain's
# certificate, no direct TLS and no HTTP listener. Pairs with Starling are skipped until
# Starling has s2s; FED_STARLING=1 runs them (`run.sh` builds the debug binary first). Until
# the s2s crate exists Starling's config parser refuses the [s2s] keys ("unknown key"), so
# start_starling then fails with that message.
start_starling() {
    local dir=$1 domain=$2 addr=$3 certs=$4 d hosts=""
    mkdir -p "$dir"
    for d in $FED_DOMAINS; do
        [ "$d" = "$domain" ] || hosts+="\"$d\" = \"${FED_ADDR[$d]}:5269\""$'\n'
    done
    cat > "$dir/starling.toml" <<EOF
# Written by tests/federation/servers.sh: a private test instance, not a production config.
data_dir = "$dir"

[log]
level = "${FED_STARLING_LOG:-info,starling_s2s=debug}"

[[host]]
domain = "$domain"
certificate = "$certs/$domain.crt"
key = "$certs/$domain.key"

[c2s]
listen = ["$addr:5222"]
direct_tls_listen = []
rate = 0

[http]
listen = []   # no HTTP listener (the default one is 127.0.0.1:5280)

[s2s]
listen = ["$addr:5269"]
ca_file = "$FED_CERTS/ca.crt"
connect_timeout = 10   # loopback: anything slower is a failure (and check-federation waits this long per step)

[s2s.hosts]
$hosts
EOF
    "$STARLING_BIN" serve --config "$dir/starling.toml" > "$dir/starling.log" 2>&1 < /dev/null &
    echo $! > "$dir/server.pid"
    if ! wait_listen "$addr" 5222 "$!" 60 || ! wait_listen "$addr" 5269 "$!" 10; then
        tail -20 "$dir/starling.log" >&2 || true
        log "starling for $domain did not start (see $dir/starling.log)"
        return 1
    fi
    echo "$dir/starling.log" > "$dir/auth.log.path"
}

adduser_starling() { # DIR DOMAIN USER PASSWORD
    "$STARLING_BIN" user add "$3@$2" --password "$4" --config "$1/starling.toml" > /dev/null
}

stop_starling() { # DIR
    local pid
    pid=$(cat "$1/server.pid" 2>/dev/null || true)
    [ -n "$pid" ] && stop_pid "$pid" 30
    rm -f "$1/server.pid"
}
