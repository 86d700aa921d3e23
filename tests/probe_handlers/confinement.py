"""Reports the confinement the handler runs under, as the kernel sees it: seccomp mode, no_new_privs,
effective capabilities, uid, the options of the /dev/shm and /tmp mounts and whether a program copied
there runs, the open-files limit and the kernel release (gVisor's user-space kernel reports its own)."""

import ctypes
import os
import resource
import shutil
import subprocess

from handlers import Request


def try_exec(folder: str) -> str:
    """Copy a program into `folder` and run it: `refused` on a noexec mount."""
    program = shutil.copy("/bin/true", f"{folder}/probe-true")
    os.chmod(program, 0o755)
    try:
        subprocess.run([program], check=True)
    except PermissionError:
        return "refused"
    finally:
        os.unlink(program)
    return "ran"


def handle(request: Request) -> dict[str, object]:
    status = dict(
        line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line
    )
    mounts = {
        fields[1]: fields[3].split(",") for fields in (line.split() for line in open("/proc/self/mounts"))
    }
    libc = ctypes.CDLL(None, use_errno=True)
    return {
        # Asked with prctl, not read from /proc/self/status: gVisor's /proc does not show these two.
        "seccomp": libc.prctl(21, 0, 0, 0, 0),  # PR_GET_SECCOMP: 2 = a filter is installed
        "no_new_privs": libc.prctl(39, 0, 0, 0, 0),  # PR_GET_NO_NEW_PRIVS
        "cap_eff": status["CapEff"].strip(),
        "uid": status["Uid"].split()[0],
        "shm": mounts.get("/dev/shm", []),
        "tmp": mounts.get("/tmp", []),
        "exec_shm": try_exec("/dev/shm"),
        "exec_tmp": try_exec("/tmp"),
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "kernel": os.uname().release,
    }
