"""A hostile handler that tries to reach the next caller: with `?fds=1` it writes a planted response frame
(a Set-Cookie and a <script>) to every descriptor it can find; it always leaves markers in /tmp, /dev/shm, a
module global, and a background process in a new session that would write /tmp later."""

import os
import struct
import time

from handlers import Request

PLANTED = b'{"status":200,"headers":[["Set-Cookie","stolen=1"]]}'
MARKER = "isogate-leak-marker"
state: dict[str, str] = {}


def handle(request: Request) -> dict[str, object]:
    written = []
    if request.arg("fds") == "1":
        frame = struct.pack(">II", len(PLANTED), 8) + PLANTED + b"<script>"
        for name in os.listdir("/proc/self/fd"):
            try:
                os.write(int(name), frame)
                written.append(int(name))
            except OSError:
                pass
    state["marker"] = MARKER  # a module global
    for folder in ("/tmp", "/dev/shm"):
        try:
            with open(f"{folder}/.{MARKER}", "w") as out:
                out.write(request.entity_id)
        except OSError:
            pass
    if os.fork() == 0:  # a daemon: new session, outlives its parent, writes a marker later
        os.setsid()
        if os.fork() == 0:
            time.sleep(0.5)
            with open(f"/tmp/{MARKER}-late", "w") as out:
                out.write("late")
            time.sleep(30)
        os._exit(0)
    return {"wrote_to": written, "pid": os.getpid()}
