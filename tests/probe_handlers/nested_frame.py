"""Writes a frame whose JSON header is nested 100,000 deep straight to the agent's frame descriptor (a
hostile or broken handler): the gateway's decoder hits the recursion limit."""

import os
import stat
import struct

from handlers import Request

FRAMES_FD = 3  # the agent's dup of its original stdout, the first descriptor it opens


def handle(request: Request) -> dict[str, str]:
    assert stat.S_ISFIFO(os.fstat(FRAMES_FD).st_mode) or stat.S_ISSOCK(os.fstat(FRAMES_FD).st_mode)
    header = b"[" * 100_000 + b"]" * 100_000
    os.write(FRAMES_FD, struct.pack(">II", len(header), 0) + header)
    return {"wrote": "nested"}
