#!/usr/bin/env bash
# Build the example replica app (examples/replica: busybox httpd and a shell API) from local material only:
# the runner's base image (scripts/runner-image.sh tags it isogate-base:python) and Debian's static busybox.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${EXAMPLE_IMAGE:-isogate-example-app:latest}

docker image inspect isogate-base:python >/dev/null 2>&1 || scripts/runner-image.sh
if [ ! -x /bin/busybox ]; then
    apt-get install -y -qq busybox-static >/dev/null 2>&1 \
        || { apt-get update -qq && apt-get install -y -qq busybox-static >/dev/null; }
fi
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp -a examples/replica/. "$context"/
cp /bin/busybox "$context"/busybox
docker build -q -t "$IMAGE" "$context" >/dev/null 2>/tmp/isogate-example-build.log \
    || { cat /tmp/isogate-example-build.log >&2; exit 1; }
echo "example-image: $IMAGE ready" >&2
