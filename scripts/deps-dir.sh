#!/usr/bin/env bash
# Install the packages a requirements file names into a directory the runner image copies (`pip --target`),
# with the host's Python 3.11 (the image's is 3.11 too). Cached: an unchanged file costs nothing.
# Usage: scripts/deps-dir.sh REQUIREMENTS OUT_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
requirements=$1 out=$2
python=${PIP_PYTHON:-.venv/bin/python}
[ -x "$python" ] || python=python3

mkdir -p "$out"
if ! grep -qvE '^\s*(#|$)' "$requirements" 2>/dev/null; then  # no file, or nothing but comments
    find "$out" -mindepth 1 -delete
    exit 0
fi
stamp=$(sha256sum "$requirements" | cut -c1-64)
[ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ] && exit 0
find "$out" -mindepth 1 -delete
"$python" -m pip install -q --disable-pip-version-check --no-compile --target "$out" -r "$requirements" \
    >/tmp/isogate-deps.log 2>&1 || { tail -n 20 /tmp/isogate-deps.log >&2; exit 1; }
echo "$stamp" > "$out/.stamp"
echo "deps: $(ls "$out" | grep -c -v dist-info) packages from $requirements in $out" >&2
