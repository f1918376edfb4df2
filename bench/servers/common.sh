# shellcheck shell=bash
# Helpers shared by prosody.sh, ejabberd.sh and starling.sh (sourced). Each script sets NAME
# (its file name, for messages) before sourcing.

die() { echo "$NAME: $*" >&2; exit 1; }

abs_dir() {
    [ -d "$1" ] || die "no such directory: $1"
    (cd "$1" && pwd)
}

# wait_port PORT PID SECONDS: until 127.0.0.1:PORT accepts; fails if PID exits or time runs out.
wait_port() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# await_exit PID SECONDS: waits for PID to exit (after it was asked to), then SIGKILL.
await_exit() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        kill -0 "$1" 2>/dev/null || { echo "stopped"; return 0; }
        sleep 0.1
    done
    echo "$NAME: pid $1 still alive after $2 s, sending SIGKILL" >&2
    kill -KILL "$1" 2>/dev/null || true
    # The kill is asynchronous: a start right after must not find the old process still there.
    for ((i = 0; i < 50; i++)); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    echo "$NAME: pid $1 survived SIGKILL for 5 s" >&2
}
