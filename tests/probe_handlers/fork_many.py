"""Tries to start `?n=` processes (a fork bomb, bounded): stops at the first refusal."""

import os
import time

from handlers import Request


def handle(request: Request) -> dict[str, object]:
    wanted, children, error = int(request.arg("n", "1000") or 1000), [], None
    try:
        for _ in range(wanted):
            pid = os.fork()
            if pid == 0:
                time.sleep(2)
                os._exit(0)
            children.append(pid)
    except OSError as exc:
        error = type(exc).__name__
    for pid in children:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    return {"started": len(children), "wanted": wanted, "error": error}
