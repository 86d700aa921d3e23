"""Whoami: where this handler runs (pid, uid, hostname, pid namespace, container or not)."""

import os
import socket

from handlers import Request


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return "unknown"


def _in_container() -> bool:
    if os.path.exists("/.dockerenv"):
        return True
    try:
        with open("/proc/1/cgroup", encoding="utf-8") as cgroup:
            return any(word in cgroup.read() for word in ("docker", "containerd", "kubepods"))
    except OSError:
        return False


def handle(request: Request) -> dict[str, object]:
    return {
        "pid": os.getpid(),
        "uid": os.getuid(),
        "gid": os.getgid(),
        "hostname": socket.gethostname(),
        "pid_namespace": _pid_namespace(),
        "in_container": _in_container(),
        "entity": request.entity_id,
    }
