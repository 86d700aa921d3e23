"""Reports what an earlier request could have left behind for this one: files in /tmp and /dev/shm, the
leaky handler's module global, and processes other than PID 1, the agent and this one."""

import os
import time

from handlers import Request


def handle(request: Request) -> dict[str, object]:
    time.sleep(float(request.arg("wait", "0") or 0))  # give a lingering daemon time to act
    from probe_handlers import leaky  # the module the agent imported for the earlier request

    me, parent = os.getpid(), os.getppid()
    others = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, me, parent)]
    return {
        "tmp": sorted(os.listdir("/tmp")),
        "shm": sorted(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else [],
        "global": leaky.state.get("marker"),
        "processes": others,
        "hostname": os.uname().nodename,
    }
