# Shared by run.sh and profanity.sh (sourced, not run): build Starling, prepare the client
# toolchains under $BUILD, and start `starling serve` on free loopback ports with a fresh data
# directory. Expects ROOT (the checkout) and BUILD (a scratch directory) to be set.

interop_build() {
    echo "== build"
    cargo build -q -p starling
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/starling
}

# A virtual environment with slixmpp, under the build directory.
interop_venv() {
    if [ ! -x "$BUILD/venv/bin/python" ]; then
        python3 -m venv "$BUILD/venv"
    fi
    "$BUILD/venv/bin/pip" install -q --disable-pip-version-check "slixmpp==1.17.0"
    PY=$BUILD/venv/bin/python
}

# interop_start_server USER... : fresh data directory, users with password "pw", then
# `starling serve` in the background. Sets DATA, P1 (STARTTLS port), P2 (direct TLS port), P3
# (XEP-0114 component port, with one component COMPONENT_DOMAIN whose shared secret is
# COMPONENT_SECRET), P4 (HTTP: /xmpp-websocket) and SERVER_PID; interop_stop_server undoes it
# all.
# INTEROP_RESUME_TIMEOUT (default 3): [stream_management] resume_timeout, short so that
# slixmpp/sm_no_resume_offline need not wait long for a lost session to end.
# INTEROP_LOG_LEVEL (default info): [log] level, e.g. "info,starling_c2s=debug".
interop_start_server() {
    DATA=$(mktemp -d)
    COMPONENT_DOMAIN=echo.localhost
    COMPONENT_SECRET="interop component secret"
    read -r P1 P2 P3 P4 < <("$PY" - <<'PY'
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
PY
)
    cat > "$DATA/starling.toml" <<TOML
data_dir = "$DATA"
[log]
level = "${INTEROP_LOG_LEVEL:-info}"
[c2s]
listen = ["127.0.0.1:$P1"]
direct_tls_listen = ["127.0.0.1:$P2"]
rate = 0
[stream_management]
resume_timeout = ${INTEROP_RESUME_TIMEOUT:-3}
[http]
listen = ["127.0.0.1:$P4"]
[components]
listen = ["127.0.0.1:$P3"]
[components.secrets]
"$COMPONENT_DOMAIN" = "$COMPONENT_SECRET"
TOML
    local u
    for u in "$@"; do
        "$BIN" user add "$u@localhost" --password pw --config "$DATA/starling.toml" > /dev/null
    done
    "$BIN" serve --config "$DATA/starling.toml" > "$BUILD/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$P1") 2>/dev/null \
            && (exec 3<>"/dev/tcp/127.0.0.1/$P3") 2>/dev/null \
            && (exec 3<>"/dev/tcp/127.0.0.1/$P4") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "starling did not start listening on $P1, $P3 and $P4 (see $BUILD/server.log)" >&2
    return 1
}

interop_stop_server() {
    if [ -n "${SERVER_PID:-}" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
    if [ -n "${DATA:-}" ]; then rm -rf "$DATA"; DATA=; fi
}
