#!/usr/bin/env bash
# Real-browser test (issue 17 item 10): Debian's chromium, headless, driven by playwright-core,
# opens Starling's /web page (Converse.js served from a local `npm install converse.js`), logs in
# as alice, adds bob (an @xmpp/client TCP client) through Converse's "Add a contact" form, and
# exchanges messages both ways; then alice shares a file (XEP-0363) and bob downloads it. See tests/browser/README.md.
#
# Takes about 10 s (plus about a minute for npm the first time), under 3 minutes in any case.
#
#   tests/browser/run.sh                                  # builds Starling first
#   STARLING_BIN=/path/to/starling tests/browser/run.sh   # uses that binary, no build
#   tests/browser/run.sh profanity     # bob is Profanity in tmux instead (not in CI; needs
#                                      # Debian's profanity and tmux): contact, chat, a file
#                                      # each way (tests/browser/converse_profanity.mjs)
#
# Needs: chromium (Debian package; or CHROMIUM=/path), node and npm (it installs
# playwright-core, converse.js and @xmpp/client into $BUILD/browser when missing), bash.
# BROWSER_LOG_LEVEL: the server's [log] level (default info).
# Artifacts in $BUILD/browser: screenshots/*.png, screenshots/console.log (the page's console),
# server.log, results.txt. Prints browser/<case> pass|fail; exits non-zero on failure.
set -euo pipefail
MODE=${1:-xmppjs}
case $MODE in xmppjs|profanity) ;; *) echo "usage: $0 [profanity]" >&2; exit 2 ;; esac
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=${BROWSER_BUILD_DIR:-$ROOT/target}
DIR=$BUILD/browser
mkdir -p "$DIR"

if [ -z "${STARLING_BIN:-}" ]; then
    echo "== build"
    cargo build -q -p starling
fi
BIN=${STARLING_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/starling}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
export CHROMIUM
if [ ! -x "$CHROMIUM" ]; then
    echo "browser: no chromium at $CHROMIUM (apt-get install chromium, or set CHROMIUM)" >&2
    exit 1
fi

echo "== npm packages"
have() { [ -f "$DIR/node_modules/$1/package.json" ] \
    && grep -q "\"version\": \"$2\"" "$DIR/node_modules/$1/package.json"; }
if ! { have playwright-core 1.65.2 && have converse.js 14.0.0 && have @xmpp/client 0.14.0; }; then
    # All three at once into a fresh tree: npm 11 fails ("Cannot destructure property 'package'
    # of 'node.target'") when adding @xmpp/client to a tree that already holds converse.js.
    rm -rf "$DIR/node_modules" "$DIR/package.json" "$DIR/package-lock.json"
    (cd "$DIR" && timeout 300 npm install --silent --no-audit --no-fund \
        playwright-core@1.65.2 converse.js@14.0.0 @xmpp/client@0.14.0)
fi
cp tests/browser/common.mjs tests/browser/converse.mjs tests/browser/converse_profanity.mjs "$DIR/"
if [ "$MODE" = profanity ]; then
    for tool in profanity tmux; do
        command -v "$tool" > /dev/null || { echo "browser: $tool is missing (apt-get install -y profanity tmux)" >&2; exit 2; }
    done
fi

DATA=
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ -n "${TMUX_SESSION:-}" ]; then tmux kill-session -t "$TMUX_SESSION" 2>/dev/null || true; fi
    if [ -n "$DATA" ]; then rm -rf "$DATA"; fi
}
trap cleanup EXIT

echo "== server"
DATA=$(mktemp -d)
# Three free loopback ports (c2s STARTTLS, direct TLS, HTTP).
read -r P1 P2 P3 < <(node -e '
const net = require("node:net");
const socks = [0, 1, 2].map(() => net.createServer());
Promise.all(socks.map((s) => new Promise((r) => s.listen(0, "127.0.0.1", r)))).then(() => {
  console.log(socks.map((s) => s.address().port).join(" "));
  socks.forEach((s) => s.close());
});')
cat > "$DATA/starling.toml" <<TOML
data_dir = "$DATA"
[log]
level = "${BROWSER_LOG_LEVEL:-info}"
[c2s]
listen = ["127.0.0.1:$P1"]
direct_tls_listen = ["127.0.0.1:$P2"]
rate = 0
[http]
listen = ["127.0.0.1:$P3"]
[web]
enabled = true
converse_dir = "$DIR"
TOML
for u in alice bob; do
    "$BIN" user add "$u@localhost" --password pw --config "$DATA/starling.toml" > /dev/null
done
"$BIN" serve --config "$DATA/starling.toml" > "$DIR/server.log" 2>&1 &
SERVER_PID=$!
up=
for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$P1") 2>/dev/null \
        && (exec 3<>"/dev/tcp/127.0.0.1/$P3") 2>/dev/null; then up=1; break; fi
    sleep 0.1
done
if [ -z "$up" ]; then
    echo "browser: starling did not start listening on $P1 and $P3 (see $DIR/server.log)" >&2
    exit 1
fi

echo "== chromium + Converse.js"
rm -rf "$DIR/screenshots"
: > "$DIR/results.txt"
status=0
if [ "$MODE" = profanity ]; then
    # bob in Profanity, logged in over STARTTLS with a fresh HOME (no trusted certificates:
    # Starling's self-signed one is accepted with /tls allow, as a newcomer would).
    TMUX_SESSION=starling-browser-$$
    mkdir -p "$DATA/profanity-home"
    tmux new-session -d -s "$TMUX_SESSION" -x 200 -y 50 \
        "env HOME=$DATA/profanity-home TERM=xterm-256color profanity"
    prof_wait() {
        for _ in $(seq 150); do
            tmux capture-pane -p -t "$TMUX_SESSION" | grep -qF -- "$1" && return 0
            sleep 0.1
        done
        echo "browser: Profanity never showed '$1':" >&2
        tmux capture-pane -p -t "$TMUX_SESSION" >&2
        exit 1
    }
    prof_type() { tmux send-keys -t "$TMUX_SESSION" -l -- "$1"; tmux send-keys -t "$TMUX_SESSION" Enter; }
    prof_wait "/help"
    prof_type "/connect bob@localhost server 127.0.0.1 port $P1 tls force"
    prof_wait "Enter password"
    prof_type "pw"
    prof_wait "/tls allow"
    prof_type "/tls allow"
    prof_wait "logged in successfully"
    timeout 180 node "$DIR/converse_profanity.mjs" "$P3" "$TMUX_SESSION" "$DIR/screenshots" "$DIR/results.txt" || status=$?
else
    timeout 150 node "$DIR/converse.mjs" "$P3" "$P1" "$DIR/screenshots" "$DIR/results.txt" || status=$?
fi
# Stop the server now so that what it logs while ending the sessions is in the log, and show
# its errors (they do not change the verdicts).
kill "$SERVER_PID" 2>/dev/null || true
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=
if grep -q " ERROR " "$DIR/server.log"; then
    echo "browser: the server logged errors ($DIR/server.log):"
    grep " ERROR " "$DIR/server.log" | sort -u -k2 | sed 's/^/  /'
fi
if [ "$status" != 0 ]; then
    echo "browser: failed (screenshots and the page's console in $DIR/screenshots, server log $DIR/server.log)"
fi
exit "$status"
