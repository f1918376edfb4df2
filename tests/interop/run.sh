#!/usr/bin/env bash
# Interop suite: builds Starling, starts `starling serve` with a fresh data directory on free
# loopback ports, and drives it with client implementations that share no code with it. Each
# case's verdict is compared with tests/interop/baseline.txt; any difference fails the run.
#
#   tests/interop/run.sh            # everything
#   INTEROP_UPDATE_BASELINE=1 tests/interop/run.sh   # rewrite the baseline after a fix
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=${INTEROP_BUILD_DIR:-$ROOT/target/interop}
mkdir -p "$BUILD"

echo "== build"
cargo build -q -p starling
BIN=$ROOT/target/debug/starling

echo "== slixmpp"
if [ ! -x "$BUILD/venv/bin/python" ]; then
    python3 -m venv "$BUILD/venv"
fi
"$BUILD/venv/bin/pip" install -q --disable-pip-version-check "slixmpp==1.17.0"

echo "== @xmpp/client"
mkdir -p "$BUILD/node"
if [ ! -d "$BUILD/node/node_modules/@xmpp/client" ]; then
    # 0.13.x sends an empty SCRAM response (its SCRAM library turned asynchronous); 0.14.0 works.
    (cd "$BUILD/node" && npm install --silent --no-audit --no-fund "@xmpp/client@0.14.0")
fi
cp tests/interop/xmppjs_suite.mjs "$BUILD/node/"

DATA=$(mktemp -d)
RESULTS=$BUILD/results.txt
: > "$RESULTS"
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$DATA"
}
trap cleanup EXIT

read -r P1 P2 < <("$BUILD/venv/bin/python" - <<'PY'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
PY
)
cat > "$DATA/starling.toml" <<TOML
data_dir = "$DATA"
[c2s]
listen = ["127.0.0.1:$P1"]
direct_tls_listen = ["127.0.0.1:$P2"]
rate = 0
TOML
for u in $("$BUILD/venv/bin/python" tests/interop/slixmpp_suite.py --users) \
         $(node "$BUILD/node/xmppjs_suite.mjs" --users); do
    "$BIN" user add "$u@localhost" --password pw --config "$DATA/starling.toml" > /dev/null
done
"$BIN" serve --config "$DATA/starling.toml" > "$BUILD/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$P1") 2>/dev/null && break
    sleep 0.1
done
timeout 300 "$BUILD/venv/bin/python" tests/interop/slixmpp_suite.py 127.0.0.1 "$P1" "$P2" "$RESULTS" \
    > "$BUILD/slixmpp.log" 2>&1 || echo "slixmpp suite ended abnormally (see $BUILD/slixmpp.log)"

timeout 120 node "$BUILD/node/xmppjs_suite.mjs" "$P1" "$RESULTS" \
    > "$BUILD/xmppjs.log" 2>&1 || echo "@xmpp/client suite ended abnormally (see $BUILD/xmppjs.log)"

echo "== results"
sort "$RESULTS" -o "$RESULTS"
cat "$RESULTS"
if [ "${INTEROP_UPDATE_BASELINE:-}" = 1 ]; then
    cp "$RESULTS" tests/interop/baseline.txt
    echo "baseline updated"
fi
if ! diff -u tests/interop/baseline.txt "$RESULTS"; then
    echo "interop: results differ from tests/interop/baseline.txt (logs in $BUILD)"
    exit 1
fi
echo "interop: as the baseline"
