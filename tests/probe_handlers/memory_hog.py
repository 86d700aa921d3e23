"""Allocates and touches `?mb=` megabytes (past the container's memory limit, the kernel OOM-kills it)."""

from handlers import Request


def handle(request: Request) -> dict[str, int]:
    size = int(request.arg("mb", "1") or 1) << 20
    block = b"\x01" * size  # filled, so every page is really used
    return {"allocated": len(block)}
