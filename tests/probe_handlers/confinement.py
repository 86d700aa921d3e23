"""Reports the confinement the handler runs under, as the kernel sees it: seccomp mode, no_new_privs,
effective capabilities, uid, the options of the /dev/shm and /tmp mounts, the open-files limit and the
kernel release (gVisor's user-space kernel reports its own)."""

import os
import resource

from handlers import Request


def handle(request: Request) -> dict[str, object]:
    status = dict(
        line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line
    )
    mounts = {
        fields[1]: fields[3].split(",") for fields in (line.split() for line in open("/proc/self/mounts"))
    }
    return {
        "seccomp": status.get("Seccomp", "?").strip(),  # gVisor's /proc does not show these two
        "no_new_privs": status.get("NoNewPrivs", "?").strip(),
        "cap_eff": status["CapEff"].strip(),
        "uid": status["Uid"].split()[0],
        "shm": mounts.get("/dev/shm", []),
        "tmp": mounts.get("/tmp", []),
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "kernel": os.uname().release,
    }
