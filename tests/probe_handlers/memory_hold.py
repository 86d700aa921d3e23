"""Allocates and touches `?mb=` megabytes and holds them `?s=` seconds (a thread job that grows the
gateway's memory)."""

import time

from handlers import Request


def handle(request: Request) -> dict[str, int]:
    block = b"\x01" * (int(request.arg("mb", "1") or 1) << 20)
    time.sleep(float(request.arg("s", "0") or 0))
    return {"held": len(block)}
