#!/usr/bin/env bash
# Group chat with a real terminal client: Profanity (Debian's package) runs inside tmux, creates
# a room at conference.localhost by joining it (/join) and accepts the default configuration
# (/room accept); a slixmpp peer (profanity_muc_peer.py, slixmpp's xep_0045) enters; each sends
# a message to all and sees the other's; Profanity kicks the peer (/kick), which gets its own
# unavailable presence with 110 and 307 (XEP-0045 §8.2). The screen is read with
# `tmux capture-pane`. Not run in CI; see README.md.
#
#   apt-get install -y profanity tmux python3-venv
#   tests/interop/profanity_muc.sh    # exit 0 and "profanity_muc: ok" when every step was seen
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

ROOM=midsummer@conference.localhost
SESSION=starling-profanity-muc-$$
PROF_HOME=$(mktemp -d)
PEER_OUT=$BUILD/profanity_muc_peer.txt
PEER_CMD=$BUILD/profanity_muc_peer_cmd.txt
PEER_PID=
: > "$PEER_OUT"
: > "$PEER_CMD"
finish() {
    tmux kill-session -t "$SESSION" 2>/dev/null || true
    if [ -n "$PEER_PID" ]; then kill "$PEER_PID" 2>/dev/null || true; fi
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
    echo "profanity_muc: never saw '$text'; the screen was:" >&2
    screen >&2
    exit 1
}
# peer_noted LINE: until the peer has noted exactly LINE.
peer_noted() {
    for _ in $(seq 150); do
        if grep -qxF -- "$1" "$PEER_OUT"; then echo "peer: $1"; return 0; fi
        sleep 0.1
    done
    echo "profanity_muc: the peer never noted '$1'; it noted:" >&2
    cat "$PEER_OUT" >&2
    screen >&2
    exit 1
}
type_line() { tmux send-keys -t "$SESSION" -l -- "$1"; tmux send-keys -t "$SESSION" Enter; }

echo "== peer"
"$PY" tests/interop/profanity_muc_peer.py 127.0.0.1 "$P1" prof2@localhost/peer "$PEER_OUT" "$PEER_CMD" \
    > "$BUILD/profanity_muc_peer.log" 2>&1 &
PEER_PID=$!
peer_noted online

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

# XEP-0045 §10.1.1: entering a new room creates it, locked (201), with Profanity's user as its
# owner; /room accept submits the empty form of an instant room (§10.1.2).
type_line "/join $ROOM nick prof"
wait_for "You have joined the room as prof, role: moderator, affiliation: owner"
wait_for "Room locked, requires configuration."
type_line "/room accept"
wait_for "Room unlocked."

echo "join $ROOM peer" >> "$PEER_CMD"
peer_noted "joined $ROOM"
peer_noted "presence prof available - - -"
peer_noted "presence peer available 110,170 - -"

# Messages to all, both ways (§7.4); each side also sees its own reflected.
echo "say $ROOM hello from the peer" >> "$PEER_CMD"
wait_for "peer: hello from the peer"
type_line "hello from profanity"
peer_noted "groupchat prof: hello from profanity"
wait_for "prof: hello from profanity"

# §8.2: the moderator kicks the peer; the peer gets its own unavailable presence with 110 and
# 307, the actor and the reason; Profanity shows the kick.
type_line "/kick peer Lord, what fools these mortals be"
peer_noted "presence peer unavailable 110,307 prof Lord, what fools these mortals be"
wait_for "peer has been kicked from the room by prof"

screen > "$BUILD/profanity_muc_screen.txt"
# Profanity reports a refused request (its room configuration, its disco#info) as an error line.
if grep -qi "error" "$BUILD/profanity_muc_screen.txt"; then
    echo "profanity_muc: Profanity showed an error:" >&2; cat "$BUILD/profanity_muc_screen.txt" >&2; exit 1
fi
type_line "/quit"
echo "profanity_muc: ok (last screen in $BUILD/profanity_muc_screen.txt)"
