"""The in-container agent: reads request frames on stdin, runs the handler, writes response frames on stdout.

Started once per container (`python3 -u -m pool.agent PACKAGE`) through one long-lived exec. Standard library
only. Handlers that print cannot corrupt the frame stream: fd 1 is pointed at stderr before any handler runs.
"""

from __future__ import annotations

import os
import sys
from typing import Any, BinaryIO

from handlers import Request, Response, to_response
from pool.frames import PREFIX, decode, encode
from pool.registry import HandlerRegistry, UnknownHandler


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


def answer(registry: HandlerRegistry, header: dict[str, Any], body: bytes) -> bytes:
    """The response frame for one request frame; errors become error frames, never exceptions."""
    try:
        handle = registry.get(str(header["handler"]))
        request = Request(
            method=header["method"],
            path=header["path"],
            query=tuple((k, v) for k, v in header["query"]),
            headers=tuple((k, v) for k, v in header["headers"]),
            body=body,
            entity_id=header["entity_id"],
        )
        response: Response = to_response(handle(request))
    except UnknownHandler as exc:
        return encode({"error": "unknown_handler", "detail": str(exc)})
    except MemoryError:
        return encode({"error": "memory", "type": "MemoryError"})
    except Exception as exc:
        print(f"handler {header.get('handler')} raised {type(exc).__name__}: {exc}", file=sys.stderr)
        return encode({"error": "handler", "type": type(exc).__name__})
    return encode({"status": response.status, "headers": response.headers}, response.body)


def main() -> None:
    package = sys.argv[1] if len(sys.argv) > 1 else "handlers"
    frames_out = os.dup(1)
    os.dup2(2, 1)  # print() in a handler goes to stderr, not into the frame stream
    registry = HandlerRegistry(package)
    write_all(frames_out, encode({"ready": True, "pid": os.getpid()}))
    stdin = sys.stdin.buffer
    while (frame := read_frame(stdin)) is not None:
        write_all(frames_out, answer(registry, *frame))


if __name__ == "__main__":
    main()
