#!/usr/bin/env bash
# Profanity across a forced TCP drop: Profanity (Debian's package) runs in tmux and connects
# through cutproxy.py; after a first exchange with a slixmpp peer, the proxy freezes then resets
# the connection while messages are on the way both ways, and the peer sends more while Profanity
# is disconnected. Profanity reconnects by itself (/reconnect 2) and must resume its session
# (XEP-0198) and show each message exactly once; the peer must get Profanity's messages once.
# Not run in CI; see README.md.
#
#   apt-get install -y profanity tmux python3-venv
#   tests/interop/profanity_resume.sh   # exit 0 and "profanity_resume: ok" when all was seen
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=${INTEROP_BUILD_DIR:-$ROOT/target/interop}
mkdir -p "$BUILD"
for tool in profanity tmux; do
    command -v "$tool" > /dev/null || { echo "$tool is not installed: apt-get install -y profanity tmux" >&2; exit 2; }
done

source tests/interop/lib.sh
interop_build
interop_venv

SESSION=starling-profanity-resume-$$
PROF_HOME=$(mktemp -d)
PEER_OUT=$BUILD/profanity_resume_peer.txt
PEER_CMD=$BUILD/profanity_resume_peer.cmd
PROXY_PORT_FILE=$BUILD/profanity_resume_proxy.port
PEER_PID= PROXY_PID=
: > "$PEER_OUT"
: > "$PEER_CMD"
rm -f "$PROXY_PORT_FILE"
finish() {
    tmux kill-session -t "$SESSION" 2>/dev/null || true
    if [ -n "$PEER_PID" ]; then kill "$PEER_PID" 2>/dev/null || true; fi
    if [ -n "$PROXY_PID" ]; then kill "$PROXY_PID" 2>/dev/null || true; fi
    interop_stop_server
    # Profanity's own log (with the XML it sent and received), kept for reading.
    cp "$PROF_HOME/.local/share/profanity/logs/profanity.log" "$BUILD/profanity_resume_client.log" 2>/dev/null || true
    rm -rf "$PROF_HOME"
}
trap finish EXIT
# Profanity tries again 2 seconds after the loss (and a TLS handshake): far less than 60.
INTEROP_RESUME_TIMEOUT=${INTEROP_RESUME_TIMEOUT:-60} interop_start_server prof1 prof2

screen() { tmux capture-pane -p -t "$SESSION"; }
# wait_for TEXT [SECONDS]: until the screen shows TEXT (a fixed string).
wait_for() {
    local text=$1 limit=${2:-15}
    for _ in $(seq $((limit * 10))); do
        if screen | grep -qF -- "$text"; then echo "seen: $text"; return 0; fi
        sleep 0.1
    done
    echo "profanity: never saw '$text'; the screen was:" >&2
    screen >&2
    exit 1
}
type_line() { tmux send-keys -t "$SESSION" -l -- "$1"; tmux send-keys -t "$SESSION" Enter; }
peer_sends() { echo "prof1@localhost $1" >> "$PEER_CMD"; }
# peer_got BODY: until the peer received BODY (one line of its output).
peer_got() {
    for _ in $(seq 150); do grep -qx -- "$1" "$PEER_OUT" && { echo "peer received: $1"; return 0; }; sleep 0.1; done
    echo "the peer never received '$1'" >&2
    screen >&2
    exit 1
}
# once TEXT: the screen (the chat window) shows TEXT exactly once.
once() {
    local n
    n=$(screen | grep -cF -- "$1" || true)
    if [ "$n" != 1 ]; then
        echo "profanity: '$1' shown $n times; the screen was:" >&2
        screen >&2
        exit 1
    fi
}

echo "== proxy"
"$PY" tests/interop/cutproxy.py 127.0.0.1 "$P1" --port-file "$PROXY_PORT_FILE" > "$BUILD/cutproxy.log" 2>&1 &
PROXY_PID=$!
for _ in $(seq 50); do [ -s "$PROXY_PORT_FILE" ] && break; sleep 0.1; done
PROXY_PORT=$(cat "$PROXY_PORT_FILE")

echo "== peer"
"$PY" tests/interop/profanity_peer.py 127.0.0.1 "$P1" prof2@localhost/peer "$PEER_OUT" "$PEER_CMD" \
    > "$BUILD/profanity_resume_peer.log" 2>&1 &
PEER_PID=$!
for _ in $(seq 100); do grep -qx online "$PEER_OUT" && break; sleep 0.1; done
grep -qx online "$PEER_OUT" || { echo "the slixmpp peer did not log in" >&2; exit 1; }

echo "== profanity"
# -l DEBUG: Profanity's log (kept as profanity_resume_client.log) shows libstrophe's XML.
tmux new-session -d -s "$SESSION" -x 160 -y 45 "env HOME=$PROF_HOME TERM=xterm-256color profanity -l DEBUG"
wait_for "/help"
type_line "/connect prof1@localhost server 127.0.0.1 port $PROXY_PORT tls force"
wait_for "Enter password"
type_line "pw"
# "always", not "allow": the reconnection must not stop at the certificate question again.
wait_for "/tls always"
type_line "/tls always"
wait_for "logged in successfully"
# Profanity 0.13 reconnects by itself after this many seconds (no "/reconnect now" there).
type_line "/reconnect 2"
wait_for "Reconnect interval set to 2 seconds"

peer_sends "before the cut"
wait_for "chat message: prof2@localhost/peer"
type_line "/win 2"
wait_for "prof2@localhost/peer: before the cut"
type_line "reply before the cut"
peer_got "reply before the cut"

echo "== freeze, then cut"
kill -USR2 "$PROXY_PID"
peer_sends "in flight 1"
# Typed into the chat window: Profanity sends it into the dead path.
type_line "sent into the freeze"
for _ in $(seq 50); do grep -qx "sent in flight 1" "$PEER_OUT" && break; sleep 0.1; done
sleep 1
kill -USR1 "$PROXY_PID"
wait_for "Lost connection"
peer_sends "during the cut 1"
peer_sends "during the cut 2"

echo "== reconnection"
wait_for "Connection re-established" 30
wait_for "prof2@localhost/peer: during the cut 2"
type_line "reply after the cut"
peer_got "reply after the cut"
sleep 1  # anything repeated would show by now
for body in "before the cut" "in flight 1" "during the cut 1" "during the cut 2"; do
    once "prof2@localhost/peer: $body"
done
for body in "reply before the cut" "sent into the freeze" "reply after the cut"; do
    once "me: $body"
done
for body in "reply before the cut" "reply after the cut"; do
    n=$(grep -cx -- "$body" "$PEER_OUT" || true)
    [ "$n" = 1 ] || { echo "the peer received '$body' $n times" >&2; exit 1; }
done
# What Profanity sent into the dead path is its own to send again after <resumed h/>: the
# server's h says it never arrived. libstrophe 0.12.2 (Debian 12) does not, so this is reported
# rather than failed when its log shows it was written once and the server's h left it out.
CLIENT_LOG=$PROF_HOME/.local/share/profanity/logs/profanity.log
n=$(grep -cx -- "sent into the freeze" "$PEER_OUT" || true)
written=$(grep -c "SENT: <message[^>]*><body>sent into the freeze</body>" "$CLIENT_LOG" || true)
# The server's <a h/> last received before the cut, and the h of its <resumed/>.
acked=$(sed '/RECV: <resumed /q' "$CLIENT_LOG" | grep -o 'RECV: <a h="[0-9]*"' | tail -1 | grep -o '[0-9][0-9]*' || true)
resumed=$(grep -o 'RECV: <resumed [^>]*>' "$CLIENT_LOG" | head -1 | grep -o ' h="[0-9]*"' | grep -o '[0-9][0-9]*' || true)
echo "the peer received 'sent into the freeze' $n time(s); Profanity wrote it $written time(s);" \
    "the server's last <a h/> before the cut: $acked; its <resumed h/>: $resumed"
if [ "$n" = 0 ] && [ "$written" = 1 ] && [ -n "$acked" ] && [ "$acked" = "$resumed" ]; then
    echo "NOTE: Profanity did not send again the stanza the server's <resumed h/> did not count (a client limitation)"
elif [ "$n" != 1 ]; then
    echo "the peer received 'sent into the freeze' $n times" >&2
    exit 1
fi
if grep -q "session resumed id=" "$BUILD/server.log"; then
    echo "server: $(grep "session resumed id=" "$BUILD/server.log" | tail -1)"
else
    echo "profanity: reconnected without resuming (no 'session resumed' in $BUILD/server.log)" >&2
    exit 1
fi

screen > "$BUILD/profanity_resume_screen.txt"
type_line "/quit"
echo "profanity_resume: ok (last screen in $BUILD/profanity_resume_screen.txt)"
