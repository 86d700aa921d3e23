"""Sleeps `?s=` seconds (a handler that runs past the execution limit); says when it started and ended
(time.monotonic, comparable within one process: tests prove overlap with it, not with a wall-clock bound)."""

import time

from handlers import Request


def handle(request: Request) -> dict[str, float]:
    seconds = float(request.arg("s", "0") or 0)
    started = time.monotonic()
    time.sleep(seconds)
    return {"slept": seconds, "started": started, "ended": time.monotonic()}
