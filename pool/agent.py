"""The in-container agent: reads request frames on stdin, runs each handler call in a child process of its
own, writes response frames on stdout.

Started once per container (`python3 -u -m pool.agent PACKAGE MAX_RESPONSE_BYTES [APPS_JSON]`) through one
long-lived exec; APPS_JSON names the apps (pool.apps) whose sources are mounted under /srv/apps. Standard
library only. A container serves many callers, so nothing a handler does may reach the next:

- handlers run in a forked child, a session, that never holds the frame stream (stdin is /dev/null, the
  frame descriptor closed): it gets requests and answers through pipes of its own, and the agent reads each
  answer by its own lengths, bounds it and re-frames it;
- a session serves one entity: its consecutive requests reuse it (as fast as a call in the agent), and a
  request from another entity ends it first: every process below the agent is killed and reaped (the agent
  is a child subreaper, so a daemon that detached is still below it), /tmp and /dev/shm are emptied, and a
  fresh child is forked. Nothing one caller's handler did (globals, files, daemons, a patched module)
  survives into another caller's;
- the agent is not dumpable, so a child cannot ptrace it or read its memory through /proc.

Handler modules are imported in the agent on first use (operator code, run before any caller input reaches
it), so sessions fork warm. A switch of entity costs a fork (~1.5 ms here; see README, Containers).
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from handlers import Request, Response, to_response
from pool.apps import AppSpec
from pool.frames import MAX_HEADER, PREFIX, READY, decode, encode, read_frame, serve_frames, write_all
from pool.registry import Handle, HandlerRegistry, UnknownHandler

PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1
SCRATCH = (Path("/tmp"), Path("/dev/shm"))
DYING_GRACE_S = 0.5  # a session gone silent may take this long to become reapable (see Session.end)


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
        return handler_error(exc)
    return encode({"status": response.status, "headers": response.headers}, response.body)


def handler_error(exc: Exception) -> bytes:
    """The frame for a handler that raised, or whose module did not import: the type, never the text (a
    missing package's name, which is no secret of the request's, is said: the image lacks it)."""
    frame: dict[str, object] = {"error": "handler", "type": type(exc).__name__}
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        frame["module"] = exc.name
    return encode(frame)


def session_child(registry: HandlerRegistry, requests: int, answers: int, errors: int, agent: int) -> None:
    """In a forked session: keep only its own pipes (stdout and stderr go to `errors`: nothing of the exec's
    stream stays open here, so the agent's death ends it), then answer request frames until the agent
    closes the request pipe or kills the session."""
    try:
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != agent:  # the agent died before the line above took effect
            return
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(errors, 1)
        os.dup2(errors, 2)
        os.close(errors)
        low, high = sorted((requests, answers))
        os.closerange(3, low)
        os.closerange(low + 1, high)
        os.closerange(high + 1, 1 << 16)
        stream = os.fdopen(requests, "rb")
        while (frame := read_frame(stream)) is not None:
            header, body = frame
            try:
                handle = registry.get(str(header["handler"]))
            except Exception as exc:
                write_all(answers, handler_error(exc))
                continue
            write_all(answers, answer(handle, header, body))
    finally:
        os._exit(0)


class Session:
    """A child process serving one entity's consecutive requests."""

    def __init__(self, entity: str, registry: HandlerRegistry) -> None:
        request_read, self.requests = os.pipe()
        self.answers, answer_write = os.pipe()
        error_read, error_write = os.pipe()
        agent = os.getpid()
        self.pid = os.fork()
        if self.pid == 0:
            for fd in (self.requests, self.answers, error_read):
                os.close(fd)
            session_child(registry, request_read, answer_write, error_write, agent)
        for fd in (request_read, answer_write, error_write):
            os.close(fd)
        self.entity = entity
        threading.Thread(target=_relay, args=(error_read,), daemon=True).start()

    def ask(self, frame: bytes, max_body: int) -> bytes | None:
        """The session's answer frame (b"" if it died, None if it declared a body over `max_body`);
        raises BrokenPipeError when the session was gone before the request could be written, or had
        written more than its last answer (out of step: it is not asked again)."""
        if select.select([self.answers], [], [], 0)[0]:
            raise BrokenPipeError("the session wrote more than its answers")
        write_all(self.requests, frame)
        return read_answer(self.answers, max_body)

    def end(self, grace_s: float = 0.0) -> int:
        """Close the pipes, make sure the child is gone, and return its wait status (-1: killed here).
        `grace_s`: how long a child whose answer pipe closed may take to finish dying by itself (a process
        killed by the OOM killer closes its descriptors before it can be reaped)."""
        os.close(self.requests)
        os.close(self.answers)
        deadline = time.monotonic() + grace_s
        while not (ended := os.waitpid(self.pid, os.WNOHANG))[0] and time.monotonic() < deadline:
            time.sleep(0.002)
        status = ended[1]
        if not ended[0]:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            status = -1
        return status


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


class Agent:
    def __init__(self, registry: HandlerRegistry, max_response: int) -> None:
        self.registry = registry
        self.max_response = max_response
        self.session: Session | None = None

    def serve(self, header: dict[str, Any], body: bytes) -> bytes:
        """One request, in the caller's session; the frame to send back."""
        try:
            self.registry.get(str(header["handler"]))  # imported here, so later sessions fork warm
        except UnknownHandler as exc:
            return encode({"error": "unknown_handler", "detail": str(exc)})
        except Exception as exc:  # the module failed to import
            print(f"handler {header.get('handler')} failed to import: {exc!r}", file=sys.stderr)
            return handler_error(exc)
        entity, frame = str(header["entity_id"]), encode(header, body)
        for _ in range(2):  # a session found dead before the request was written is replaced once
            if self.session is None or self.session.entity != entity:
                self.end_session()
                self.session = Session(entity, self.registry)
            try:
                data = self.session.ask(frame, self.max_response)
                break
            except BrokenPipeError:
                self.end_session()
        else:
            return encode({"error": "crashed", "detail": "the handler's process could not be started"})
        if data and decodes(data):
            return data
        grace = DYING_GRACE_S if data == b"" else 0.0  # no answer at all: was the process killed?
        return failure(data, self.end_session(grace), self.max_response)

    def end_session(self, grace_s: float = 0.0) -> int:
        """End the current session, if any, and everything it left behind."""
        status = self.session.end(grace_s) if self.session is not None else 0
        self.session = None
        clean_up()
        return status


def _relay(fd: int) -> None:
    """Copy a session's stdout and stderr to the agent's stderr (the gateway logs it) until it closes."""
    with os.fdopen(fd, "rb", buffering=0) as errors:
        while chunk := errors.read(4096):
            os.write(2, chunk)


def decodes(data: bytes) -> bool:
    try:
        return decode(bytearray(data)) is not None
    except Exception:
        return False


def failure(data: bytes | None, status: int, max_response: int) -> bytes:
    """The error frame for a session that gave no whole answer: too large (None), none at all (b"", told
    apart by its wait status), or a malformed one."""
    if data is None:
        return encode({"error": "too_large", "detail": f"response over {max_response} bytes"})
    if not data:
        if status == -1:
            return encode({"error": "crashed", "detail": "the handler's process closed its answer unwritten"})
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
            return encode({"error": "memory", "type": "SIGKILL"})  # the cgroup's OOM killer
        return encode({"error": "crashed", "detail": f"the handler's process ended ({_how(status)})"})
    return encode({"error": "protocol", "detail": "the handler's process wrote a malformed answer"})


def clean_up() -> None:
    """Kill and reap every process descended from the agent, and empty the scratch filesystems."""
    for _ in range(100):  # a process forking while we kill it shows up in the next pass
        doomed = descendants(os.getpid())
        if not doomed:
            break
        for pid in doomed:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        while True:  # the agent is a subreaper: every descendant ends up its child, to be reaped here
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


def descendants(root: int) -> list[int]:
    """Live processes below `root`, from /proc (the container's PID namespace: a handful of entries)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as stat:
                    fields = stat.read().rpartition(b")")[2].split()
            except OSError:
                continue  # gone meanwhile
            if fields[0] != b"Z":
                children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


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
    named = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    apps = {name: AppSpec(**spec) for name, spec in named.items()}
    frames_out = os.dup(1)
    os.dup2(2, 1)  # print() goes to stderr, never into the frame stream
    _harden()
    registry = HandlerRegistry(package, apps)
    registry.preload()  # apps imported once, at container start, before sessions fork
    agent = Agent(registry, max_response)
    write_all(frames_out, encode({**READY, "pid": os.getpid()}))
    serve_frames(sys.stdin.buffer, frames_out, agent.serve)


if __name__ == "__main__":
    main()
