#!/usr/bin/env bash
# The set-up of `make run` and `make test`, proved on a machine that has nothing: a Debian root made now with
# debootstrap (minbase, plus what a new machine of ours comes with: python3, venv, make, git, certificates),
# the repository's committed tree copied in, and the README's set-up steps run there in their own order.
# A step that needs a package an earlier step did not install fails here, as it would on a new machine
# (CI's own machine keeps what earlier runs installed). Then the gateway starts there and answers /healthz.
# Needs root (debootstrap, chroot, mounts); the binds are undone whatever happens.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
root=$(mktemp -d /var/tmp/isogate-fresh-root.XXXXXX)
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
mounted=()

cleanup() {
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
    rm -rf --one-file-system "$root"
}
trap cleanup EXIT

started=$(date +%s)
command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
debootstrap --variant=minbase --include=python3,python3-venv,make,git,ca-certificates bookworm "$root" \
    "$mirror" >"$root.log" 2>&1 || { tail -n 20 "$root.log" >&2; exit 1; }
rm -f "$root.log"
echo "fresh-root: debootstrap in $(($(date +%s) - started)) s"

# The registries are reached as this machine reaches them: its package sources, pip's and DNS settings.
for path in /etc/apt/sources.list /etc/apt/sources.list.d /etc/pip.conf /root/.config/pip /etc/xdg/pip \
    /etc/resolv.conf /etc/ssl/certs/ca-certificates.crt; do
    if [ -e "$path" ]; then
        mkdir -p "$root$(dirname "$path")"
        cp -a "$path" "$root$(dirname "$path")/"
    fi
done
for fs in proc sys dev dev/pts; do
    mkdir -p "$root/$fs"
    mount --bind "/$fs" "$root/$fs"
    mounted+=("$root/$fs")
done
mkdir -p "$root/isogate"
git -C "$repo" archive HEAD | tar -x -C "$root/isogate"

run() { chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    DEBIAN_FRONTEND=noninteractive bash -c "cd /isogate && $1"; }

# `make test`'s and `make run`'s set-up, in the order their prerequisites run (Makefile: test: lint crs
# deps compiled; run: crs deps compiled .env .secret_key).
run "apt-get update -qq"
run "make lint crs deps compiled .env .secret_key"
echo "fresh-root: set-up of make test and make run done in $(($(date +%s) - started)) s"
# The gateway as `make run` starts it without an engine (thread mode), asked for /healthz, then stopped.
run "set -a && . ./.env && set +a && export SECRET_KEY_FILE=.secret_key EXECUTION_MODE=thread \
    DOCKER_ENABLED=false && (.venv/bin/python -m proxy --config config.yaml --port 18391 & echo \$! > /tmp/gw) \
    && for i in \$(seq 100); do sleep 0.2; .venv/bin/python -c 'import urllib.request, sys; \
    sys.exit(0 if urllib.request.urlopen(\"http://127.0.0.1:18391/healthz\").status == 200 else 1)' \
    2>/dev/null && break; done; status=\$?; kill \$(cat /tmp/gw); exit \$status"
echo "fresh-root: the gateway answered /healthz; all in $(($(date +%s) - started)) s"
