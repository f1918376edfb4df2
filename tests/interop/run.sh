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

source tests/interop/lib.sh
interop_build
echo "== slixmpp"
interop_venv

echo "== @xmpp/client"
mkdir -p "$BUILD/node"
if [ ! -d "$BUILD/node/node_modules/@xmpp/client" ]; then
    # 0.13.x sends an empty SCRAM response (its SCRAM library turned asynchronous); 0.14.0 works.
    (cd "$BUILD/node" && npm install --silent --no-audit --no-fund "@xmpp/client@0.14.0")
fi
cp tests/interop/xmppjs_suite.mjs "$BUILD/node/"

RESULTS=$BUILD/results.txt
: > "$RESULTS"
trap interop_stop_server EXIT
interop_start_server $("$PY" tests/interop/slixmpp_suite.py --users) \
    $(node "$BUILD/node/xmppjs_suite.mjs" --users)

# XEP-0401/XEP-0445: an invitation for slixmpp/register_with_invite, made as an operator would.
INTEROP_INVITE_URI=$("$BIN" invite create --contact inv1@localhost --config "$DATA/starling.toml" 2>/dev/null)
export INTEROP_INVITE_URI

timeout 300 "$PY" tests/interop/slixmpp_suite.py 127.0.0.1 "$P1" "$P2" "$RESULTS" \
    "$P3" "$COMPONENT_DOMAIN" "$COMPONENT_SECRET" \
    > "$BUILD/slixmpp.log" 2>&1 || echo "slixmpp suite ended abnormally (see $BUILD/slixmpp.log)"

timeout 180 node --experimental-websocket "$BUILD/node/xmppjs_suite.mjs" "$P1" "$RESULTS" "$P4" \
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
