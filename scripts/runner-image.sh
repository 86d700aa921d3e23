#!/usr/bin/env bash
# Build the runner image (Dockerfile target `runner`) from local material only: no registry is needed.
# Uses PYTHON_IMAGE when it is already present; otherwise a Debian base made with debootstrap and imported once.
# Each step is skipped when its result exists; the final build is cached by Docker and takes well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${RUNNER_IMAGE:-isogate-runner:latest}
PYTHON_IMAGE=${PYTHON_IMAGE:-python:3.11-slim}
BASE=isogate-base:bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

scripts/docker-engine.sh
if ! docker image inspect "$PYTHON_IMAGE" >/dev/null 2>&1; then
    if ! docker image inspect "$BASE" >/dev/null 2>&1; then
        command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
        root=$(mktemp -d)
        trap 'rm -rf "$root"' EXIT
        echo "runner-image: building $BASE with debootstrap (about 35 s; python3-minimal alone lacks json/asyncio)" >&2
        debootstrap --variant=minbase --include=python3 bookworm "$root" "$MIRROR" >/tmp/isogate-debootstrap.log 2>&1 \
            || { tail -n 20 /tmp/isogate-debootstrap.log >&2; exit 1; }
        tar -C "$root" -c . | docker import - "$BASE" >/dev/null
    fi
    PYTHON_IMAGE=$BASE
fi
# The packages handlers and apps import: the file config.yaml's docker.requirements names (CONFIG: another
# config; RUNNER_REQUIREMENTS: another file, into a directory of its own).
python=.venv/bin/python
[ -x "$python" ] || python=python3
if [ -n "${RUNNER_REQUIREMENTS:-}" ]; then
    REQUIREMENTS=$RUNNER_REQUIREMENTS DEPS=.build/deps-$(basename "$RUNNER_REQUIREMENTS" .txt)
else
    REQUIREMENTS=$("$python" -m proxy.requirements --config "${CONFIG:-config.yaml}") DEPS=.build/deps
fi
scripts/deps-dir.sh "$REQUIREMENTS" "$DEPS"
docker build -q --target runner --build-arg PYTHON_IMAGE="$PYTHON_IMAGE" --build-arg DEPS="$DEPS" -t "$IMAGE" . >/dev/null 2>/tmp/isogate-build.log \
    || { cat /tmp/isogate-build.log >&2; exit 1; }
docker tag "$PYTHON_IMAGE" isogate-base:python  # what images for isolated replicas build FROM
echo "runner-image: $IMAGE ready (base $PYTHON_IMAGE)" >&2
