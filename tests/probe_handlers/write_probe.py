"""Tries to write to the root filesystem and to /tmp, and reports the root mount's options."""

from handlers import Request


def _try(path: str) -> str:
    try:
        with open(path, "w") as handle:
            handle.write("probe")
        return "written"
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror}"


def handle(request: Request) -> dict[str, str]:
    mounts = (line.split() for line in open("/proc/self/mounts"))
    root = next(fields[3] for fields in mounts if fields[1] == "/")
    return {
        "root": _try("/isogate-probe"),
        "app": _try("/app/probe"),
        "tmp": _try("/tmp/probe"),
        "root_mount": root,
    }
