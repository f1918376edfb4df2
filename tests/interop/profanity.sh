#!/usr/bin/env bash
# A real terminal client against Starling: Profanity (Debian's package) runs inside tmux, logs in
# over STARTTLS, adds a contact, sends it a message, blocks it (XEP-0191 `/blocked add`: the
# contact's message is refused and never shown) and unblocks it, then shows the carbon (XEP-0280)
# of a message the contact sent to the account's other device; the screen is read with
# `tmux capture-pane` and the other end is a slixmpp peer. Not run in CI; see README.md.
#
#   apt-get install -y profanity tmux python3-venv
#   tests/interop/profanity.sh        # exit 0 and "profanity: ok" when every step was seen
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

SESSION=starling-profanity-$$
PROF_HOME=$(mktemp -d)
PEER_OUT=$BUILD/profanity_peer.txt
PEER_CMD=$BUILD/profanity_peer_cmd.txt
PEER_PID=
LAPTOP_OUT=$BUILD/profanity_laptop.txt
LAPTOP_PID=
: > "$PEER_OUT"
: > "$LAPTOP_OUT"
: > "$PEER_CMD"
finish() {
    tmux kill-session -t "$SESSION" 2>/dev/null || true
    if [ -n "$PEER_PID" ]; then kill "$PEER_PID" 2>/dev/null || true; fi
    if [ -n "$LAPTOP_PID" ]; then kill "$LAPTOP_PID" 2>/dev/null || true; fi
    interop_stop_server
    rm -rf "$PROF_HOME"
}
trap finish EXIT
interop_start_server prof1 prof2

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

echo "== peer"
"$PY" tests/interop/profanity_peer.py 127.0.0.1 "$P1" prof2@localhost/peer "$PEER_OUT" "$PEER_CMD" \
    > "$BUILD/profanity_peer.log" 2>&1 &
PEER_PID=$!
for _ in $(seq 100); do grep -qx online "$PEER_OUT" && break; sleep 0.1; done
grep -qx online "$PEER_OUT" || { echo "the slixmpp peer did not log in" >&2; exit 1; }

echo "== profanity"
# A fresh HOME: no accounts, no trusted certificates, no history.
tmux new-session -d -s "$SESSION" -x 160 -y 45 "env HOME=$PROF_HOME TERM=xterm-256color profanity"
wait_for "/help"
type_line "/connect prof1@localhost server 127.0.0.1 port $P1 tls force"
wait_for "Enter password"
type_line "pw"
# The certificate is Starling's self-signed one, made at first start.
wait_for "/tls allow"
type_line "/tls allow"
wait_for "logged in successfully"

type_line "/roster add prof2@localhost Peer"
type_line "/sub request prof2@localhost"
# The peer approves and asks back; Profanity shows the request and we accept it.
wait_for "Received authorization request from prof2@localhost"
type_line "/sub allow prof2@localhost"
type_line "/roster"
wait_for "prof2@localhost (Peer) - both"

type_line "/msg prof2@localhost hello from profanity"
for _ in $(seq 100); do grep -qx "hello from profanity" "$PEER_OUT" && break; sleep 0.1; done
grep -qx "hello from profanity" "$PEER_OUT" || { echo "the peer never received the message" >&2; screen >&2; exit 1; }
echo "peer received: hello from profanity"

# XEP-0191 with Profanity's /blocked: while the peer is blocked its message never shows; after
# /blocked remove, the next one does.
type_line "/blocked add prof2@localhost"
sleep 1
echo "prof1@localhost while blocked" >> "$PEER_CMD"
# XEP-0191 §3.3: the peer's message is answered with <service-unavailable/>.
for _ in $(seq 100); do grep -qx "error service-unavailable" "$PEER_OUT" && break; sleep 0.1; done
grep -qx "error service-unavailable" "$PEER_OUT" || { echo "the blocked peer got no error" >&2; exit 1; }
echo "peer received: error service-unavailable"
sleep 1
if screen | grep -qF "while blocked"; then
    echo "profanity showed a message from a blocked contact" >&2; screen >&2; exit 1
fi
echo "not shown: a message from the blocked contact"
type_line "/blocked remove prof2@localhost"
sleep 1
echo "prof1@localhost after unblock" >> "$PEER_CMD"
wait_for "after unblock"

# XEP-0280: prof1 has a second device (a slixmpp "laptop"); the peer writes to the laptop, and
# Profanity, which enables carbons at login, shows the <received/> copy in the conversation.
"$PY" tests/interop/profanity_peer.py 127.0.0.1 "$P1" prof1@localhost/laptop "$LAPTOP_OUT" \
    > "$BUILD/profanity_laptop.log" 2>&1 &
LAPTOP_PID=$!
for _ in $(seq 100); do grep -qx online "$LAPTOP_OUT" && break; sleep 0.1; done
grep -qx online "$LAPTOP_OUT" || { echo "the laptop did not log in" >&2; exit 1; }
echo "prof1@localhost/laptop carbon for the laptop" >> "$PEER_CMD"
for _ in $(seq 100); do grep -qx "carbon for the laptop" "$LAPTOP_OUT" && break; sleep 0.1; done
grep -qx "carbon for the laptop" "$LAPTOP_OUT" || { echo "the laptop never got the message" >&2; exit 1; }
echo "laptop received: carbon for the laptop"
wait_for "carbon for the laptop"

screen > "$BUILD/profanity_screen.txt"
type_line "/quit"
echo "profanity: ok (last screen in $BUILD/profanity_screen.txt)"
