"""Sleeps `?s=` seconds (a handler that runs past the execution limit)."""

import time

from handlers import Request


def handle(request: Request) -> dict[str, float]:
    seconds = float(request.arg("s", "0") or 0)
    time.sleep(seconds)
    return {"slept": seconds}
