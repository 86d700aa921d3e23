#!/usr/bin/env bash
# Register gVisor's runsc as the Docker runtime `runsc` (docker.runtime: runsc). Idempotent; needs root.
# Debian's runsc (2022-12) knows the ptrace platform, not systrap; runsc must own the network setting
# (--network=none) or `docker run --runtime=runsc --network=none` fails in the root network namespace;
# --oci-seccomp loads Docker's seccomp profile inside the sandbox (for the container's first process).
set -euo pipefail

CONFIG=/etc/docker/daemon.json
WANTED='{"path": "/usr/bin/runsc", "runtimeArgs": ["--platform=ptrace", "--network=none", "--oci-seccomp"]}'

scripts_dir=$(dirname "$0")
"$scripts_dir/docker-engine.sh"
registered() { [ -x /usr/bin/runsc ] && docker info --format '{{json .Runtimes.runsc}}' 2>/dev/null | grep -q -- '--oci-seccomp'; }
registered && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "gvisor: only root can install runsc and register it with the engine" >&2
    exit 1
fi
if ! command -v runsc >/dev/null 2>&1; then
    echo "gvisor: installing Debian's runsc" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq runsc >/dev/null
fi
mkdir -p "$(dirname "$CONFIG")"
python3 - "$CONFIG" "$WANTED" <<'PY'
import json, sys
from pathlib import Path
path, wanted = Path(sys.argv[1]), json.loads(sys.argv[2])
config = json.loads(path.read_text()) if path.exists() and path.read_text().strip() else {}
config.setdefault("runtimes", {})["runsc"] = wanted
path.write_text(json.dumps(config, indent=2) + "\n")
PY
kill -HUP "$(pgrep -x dockerd | head -n 1)"  # runtimes reload without a restart
for _ in $(seq 1 20); do
    registered && exit 0
    sleep 0.5
done
echo "gvisor: the engine did not list runsc (with --oci-seccomp) after reloading $CONFIG" >&2
exit 1
