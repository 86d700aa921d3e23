"""The in-container agent: reads request frames on stdin, runs each handler call in a child process of its
own, writes response frames on stdout.

Started once per container (`python3 -u -m pool.agent PACKAGE MAX_RESPONSE_BYTES`) through one long-lived
exec. Standard library only. A container serves many callers, so nothing a handler does may reach the next:

- each request runs in a forked child that never holds the frame stream (stdin is /dev/null, the frame
  descriptor closed): it answers through a pipe of its own, which the agent reads, bounds and re-frames;
- the agent is not dumpable, so a child cannot ptrace it or read its memory through /proc;
- after each request every other process in the container is killed and reaped (the agent is a child
  subreaper), and /tmp and /dev/shm are emptied: no background process, file or global survives a request.

Handler modules are imported in the agent on first use (operator code, run before any caller input reaches
it), so each fork starts warm. Measured cost of the child per request: see README (Containers).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any, BinaryIO

from handlers import Request, Response, to_response
from pool.frames import MAX_HEADER, PREFIX, decode, encode
from pool.registry import Handle, HandlerRegistry, UnknownHandler

PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
SCRATCH = (Path("/tmp"), Path("/dev/shm"))


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


def answer(handle: Handle, header: dict[str, Any], body: bytes) -> bytes:
    """The response frame for one request frame; errors become error frames, never exceptions."""
    try:
        request = Request(
            method=header["method"],
            path=header["path"],
            query=tuple((k, v) for k, v in header["query"]),
            headers=tuple((k, v) for k, v in header["headers"]),
            body=body,
            entity_id=header["entity_id"],
        )
        response: Response = to_response(handle(request))
    except MemoryError:
        return encode({"error": "memory", "type": "MemoryError"})
    except Exception as exc:
        print(f"handler {header.get('handler')} raised {type(exc).__name__}: {exc!r}", file=sys.stderr)
        return encode({"error": "handler", "type": type(exc).__name__})
    return encode({"status": response.status, "headers": response.headers}, response.body)


def run_child(handle: Handle, header: dict[str, Any], body: bytes, keep: int) -> None:
    """In the forked child: drop every descriptor but stderr and `keep`, answer into `keep`, exit."""
    try:
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(2, 1)
        os.closerange(3, keep)
        os.closerange(keep + 1, 1 << 16)
        write_all(keep, answer(handle, header, body))
    finally:
        os._exit(0)


def read_exactly(fd: int, size: int) -> bytes:
    """`size` bytes, or fewer if the writers are gone."""
    chunks, left = [], size
    while left and (chunk := os.read(fd, min(left, 1 << 16))):
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_answer(fd: int, max_body: int) -> bytes | None:
    """One frame from the child's pipe, read by its own lengths (never to EOF: a daemon the handler left
    may hold the pipe open), or None when it declares a body over `max_body` (the rest is never read)."""
    prefix = read_exactly(fd, PREFIX.size)
    if len(prefix) < PREFIX.size:
        return prefix
    head_len, body_len = PREFIX.unpack(prefix)
    if body_len > max_body:
        return None
    if head_len > MAX_HEADER:
        return prefix  # incomplete: reported as a malformed answer
    return prefix + read_exactly(fd, head_len + body_len)


def serve(registry: HandlerRegistry, header: dict[str, Any], body: bytes, max_response: int) -> bytes:
    """One request in a child process; the frame to send back."""
    try:
        handle = registry.get(str(header["handler"]))
    except UnknownHandler as exc:
        return encode({"error": "unknown_handler", "detail": str(exc)})
    except Exception as exc:  # the module failed to import
        print(f"handler {header.get('handler')} failed to import: {exc!r}", file=sys.stderr)
        return encode({"error": "handler", "type": type(exc).__name__})
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        run_child(handle, header, body, write_end)
    os.close(write_end)
    try:
        data = read_answer(read_end, max_response)
    finally:
        os.close(read_end)  # whatever else is in the pipe goes with it
    ended, status = os.waitpid(pid, os.WNOHANG)
    if not ended:  # it answered and lingers, wrote too much, or closed its answer unwritten
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        status = -1
    clean_up()
    return checked(data, status, max_response)


def checked(data: bytes | None, status: int, max_response: int) -> bytes:
    """The child's frame if it is one whole, bounded frame; else an error frame saying what went wrong."""
    if data is None:
        return encode({"error": "too_large", "detail": f"response over {max_response} bytes"})
    if not data:
        if status == -1:
            return encode({"error": "crashed", "detail": "the handler's process closed its answer unwritten"})
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
            return encode({"error": "memory", "type": "SIGKILL"})  # the cgroup's OOM killer
        return encode({"error": "crashed", "detail": f"the handler's process ended ({_how(status)})"})
    try:
        frame = decode(bytearray(data))
    except Exception:
        frame = None
    if frame is None:
        return encode({"error": "protocol", "detail": "the handler's process wrote a malformed answer"})
    return data


def clean_up() -> None:
    """Kill and reap every process but this one and PID 1, and empty the scratch filesystems."""
    try:
        os.kill(-1, signal.SIGKILL)  # every process we may signal but PID 1 and us; forks in flight fail
    except ProcessLookupError:
        pass  # there was none
    while True:  # the agent is a subreaper: every descendant ends up here to be reaped
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break
    for folder in SCRATCH:
        for path in folder.iterdir() if folder.is_dir() else ():
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _how(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit {os.WEXITSTATUS(status)}"


def _harden() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # no ptrace, no /proc/<agent>/mem for the children
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # orphans of a handler come back here to be reaped


def main() -> None:
    package = sys.argv[1] if len(sys.argv) > 1 else "handlers"
    max_response = int(sys.argv[2]) if len(sys.argv) > 2 else 16 << 20
    frames_out = os.dup(1)
    os.dup2(2, 1)  # print() goes to stderr, never into the frame stream
    _harden()
    registry = HandlerRegistry(package)  # modules are imported here, on first use: each fork starts warm
    write_all(frames_out, encode({"ready": True, "pid": os.getpid()}))
    stdin = sys.stdin.buffer
    while (frame := read_frame(stdin)) is not None:
        write_all(frames_out, serve(registry, *frame, max_response))


if __name__ == "__main__":
    main()
