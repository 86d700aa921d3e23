"""Length-prefixed frames between the gateway and the in-container agent (stdlib only: runs in both).

A frame is `>II` (header length, body length), a JSON header, then the raw body bytes. The container's
stdout stream does not keep write boundaries, so readers reassemble frames by these lengths.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from typing import Any, BinaryIO

PREFIX = struct.Struct(">II")
MAX_HEADER = 1 << 20  # a header is a few hundred bytes; anything larger is a corrupt stream


class FrameError(ValueError):
    pass


def encode(header: dict[str, Any], body: bytes = b"") -> bytes:
    """One frame as one bytes object, so it can be written in a single write."""
    head = json.dumps(header, separators=(",", ":")).encode()
    return PREFIX.pack(len(head), len(body)) + head + body


def decode(buffer: bytearray, max_body: int = 1 << 32) -> tuple[dict[str, Any], bytes] | None:
    """Take one complete frame off the front of `buffer`; None until one is complete. A header or body
    declared larger than allowed is refused as soon as its length is read, before any of it is buffered."""
    if len(buffer) < PREFIX.size:
        return None
    head_len, body_len = PREFIX.unpack_from(buffer)
    if head_len > MAX_HEADER:
        raise FrameError(f"frame header of {head_len} bytes")
    if body_len > max_body:
        raise FrameError(f"frame body of {body_len} bytes, over {max_body}")
    end = PREFIX.size + head_len + body_len
    if len(buffer) < end:
        return None
    header = json.loads(bytes(buffer[PREFIX.size : PREFIX.size + head_len]))
    body = bytes(buffer[PREFIX.size + head_len : end])
    del buffer[:end]
    if not isinstance(header, dict):
        raise FrameError("frame header is not an object")
    return header, body


PING = {"ping": True, "handler": ""}  # an agent too old to know it answers unknown_handler: alive too
PONG = {"pong": True}
# A request read whole, before anything runs: until then the gateway may send it elsewhere.
ACK = {"ack": True}
READY = {"ready": True, "acks": True}


def serve_frames(stream: BinaryIO, fd: int, serve: Callable[[dict[str, Any], bytes], bytes]) -> None:
    """An agent's loop: each request frame read from `stream` acknowledged, then answered, on `fd`; a ping
    answered with a pong; until EOF."""
    while (frame := read_frame(stream)) is not None:
        if frame[0].get("ping"):
            write_all(fd, encode(PONG))
            continue
        write_all(fd, encode(ACK))
        write_all(fd, serve(*frame))


def read_frame(stream: BinaryIO) -> tuple[dict[str, Any], bytes] | None:
    prefix = stream.read(PREFIX.size)
    if len(prefix) < PREFIX.size:
        return None  # the gateway closed stdin: exit cleanly
    head_len, body_len = PREFIX.unpack(prefix)
    rest = stream.read(head_len + body_len)
    return decode(bytearray(prefix + rest))


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
