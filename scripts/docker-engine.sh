#!/usr/bin/env bash
# Make sure a Docker engine answers: install Debian's docker.io if dockerd is missing, then start dockerd.
# Idempotent: does nothing when `docker info` already succeeds. Needs root to install or start the engine.
set -euo pipefail

LOG=${DOCKERD_LOG:-/var/log/isogate-dockerd.log}
PIDFILE=/var/run/docker.pid

engine_up() { docker info >/dev/null 2>&1; }
# A dockerd that is alive: pgrep also lists zombies, which answer `kill -0` but serve nothing.
live_dockerd() {
    local pid
    for pid in $(pgrep -x dockerd); do
        [[ "$(ps -o stat= -p "$pid" 2>/dev/null)" == Z* ]] || return 0
    done
    return 1
}

engine_up && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "docker-engine: no Docker engine answers and only root can start one (run as root, or start dockerd)" >&2
    exit 1
fi
if ! command -v dockerd >/dev/null 2>&1; then
    echo "docker-engine: installing Debian's docker.io" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq docker.io >/dev/null
fi
# A killed engine leaves its pid file behind and the next dockerd refuses to start: remove it when the pid
# in it is not a live dockerd (gone, reused by another program, or a zombie).
if [ -f "$PIDFILE" ]; then
    pid=$(cat "$PIDFILE" 2>/dev/null || true)
    state=$(ps -o stat= -p "${pid:-0}" 2>/dev/null || true)
    comm=$(ps -o comm= -p "${pid:-0}" 2>/dev/null || true)
    if [ -z "$state" ] || [[ "$state" == Z* ]] || [ "$comm" != dockerd ]; then
        rm -f "$PIDFILE"
    fi
fi
if ! live_dockerd; then
    echo "docker-engine: starting dockerd (log: $LOG)" >&2
    setsid dockerd >"$LOG" 2>&1 </dev/null &
fi
for _ in $(seq 1 120); do
    engine_up && exit 0
    sleep 0.5
done
echo "docker-engine: dockerd did not answer within 60 s; last lines of $LOG:" >&2
tail -n 20 "$LOG" >&2 || true
exit 1
