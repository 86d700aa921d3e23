"""Reports what an earlier request could have left behind for this one: files in /tmp and /dev/shm, the
leaky handler's module global, and processes below the agent other than this one (a daemon that detached
is still below the agent, a child subreaper)."""

import os
import time

from handlers import Request


def handle(request: Request) -> dict[str, object]:
    time.sleep(float(request.arg("wait", "0") or 0))  # give a lingering daemon time to act
    from pool.agent import descendants
    from probe_handlers import leaky  # the module the agent imported for the earlier request

    others = [pid for pid in descendants(os.getppid()) if pid != os.getpid()]
    return {
        "tmp": sorted(os.listdir("/tmp")),
        "shm": sorted(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else [],
        "global": leaky.state.get("marker"),
        "processes": others,
        "hostname": os.uname().nodename,
    }
