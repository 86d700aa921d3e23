"""Existing Python web apps as route targets: a WSGI callable or an ASGI app, called with one Request.

Standard library only: the same code serves the app in a gateway thread and inside a container (the agent
imports it once, before sessions fork). The request reaches the app as its own server would pass it:
`SCRIPT_NAME`/`root_path` is the route's prefix (the mount), `PATH_INFO`/`path` the rest, decoded, and the
query string as received. The answer is buffered (a streamed body too): the response limit bounds it.

Why not a2wsgi or asgiref for ASGI: both run the app on an event loop thread started when the adapter is
made, which a session forked from the agent would not have (a fork keeps only the forking thread), and
neither runs the lifespan protocol in this direction. The bridge here makes its loop thread on first use in
each process and runs lifespan startup once there; it is the only hand-written part (~60 lines).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import importlib
import inspect
import io
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from handlers import Request, Response

log = logging.getLogger("isogate.apps")
INTERFACES = ("auto", "wsgi", "asgi")
ESCAPE = "surrogateescape"  # header values are UTF-8 with undecodable bytes escaped, as aiohttp reads them
CLOSE_GRACE_S = 10.0  # a retired ASGI app's running requests may finish within this (each has its deadline)
LIFESPAN_S = 5.0  # lifespan shutdown, and the loop thread's end, each get this long


@dataclass(frozen=True, slots=True)
class AppSpec:
    """Where an app is and what it is: `source` (a directory put first on sys.path), `target`
    (`module:attribute`) and `interface` (wsgi, asgi, or auto: detected from the object)."""

    source: str
    target: str
    interface: str = "auto"


def load(spec: AppSpec) -> WsgiBridge | AsgiBridge:
    """Import the app and bridge it: `bridge.call(request, mount)` serves one request."""
    if spec.source not in sys.path:
        sys.path.insert(0, spec.source)
    module_name, _, attribute = spec.target.partition(":")
    app = getattr(importlib.import_module(module_name), attribute or "app")
    interface = spec.interface if spec.interface != "auto" else detect(app)
    return AsgiBridge(app) if interface == "asgi" else WsgiBridge(app)


class AppHandle:
    """An app served under a mount, as the registry hands out handlers: called with a request from a
    thread (a worker, a session). `submit`, set for an app that runs on a loop of its own (ASGI), starts
    the request there so an event loop can await it without a worker thread (see pool.thread)."""

    def __init__(self, bridge: WsgiBridge | AsgiBridge, mount: str) -> None:
        self.bridge, self.mount = bridge, mount
        self.submit: Callable[[Request], concurrent.futures.Future[Response]] | None = None
        if isinstance(bridge, AsgiBridge):
            self.submit = functools.partial(bridge.submit, mount=mount)

    def __call__(self, request: Request) -> Response:
        return self.bridge.call(request, self.mount)


def detect(app: object) -> str:
    """asgi when calling the app makes a coroutine (an async function, or an object whose __call__ is)."""
    call = app if inspect.isfunction(app) or inspect.ismethod(app) else getattr(app, "__call__", None)  # noqa: B004
    return "asgi" if inspect.iscoroutinefunction(call) else "wsgi"


def origin(request: Request) -> tuple[str, str, str]:
    """(host, port, scheme) the client addressed: from Host and X-Forwarded-Proto ("" for no port)."""
    host, _, port = (request.header("host") or "localhost").partition(":")
    return host, port, request.header("x-forwarded-proto") or "http"


def split_target(request: Request, mount: str) -> tuple[str, str, str]:
    """(script name, path info, query string) from the request-target in `request.path` (raw, as received):
    the path is decoded as a WSGI server decodes it (bytes as Latin-1), the mount taken off its front."""
    raw_path, _, query = request.path.partition("?")
    path = unquote_to_bytes(raw_path).decode("latin-1")
    if mount and (path == mount or path.startswith(mount + "/")):
        return mount, path[len(mount) :], query
    return "", path, query


class WsgiBridge:
    def __init__(self, app: Any) -> None:
        self.app = app

    def call(self, request: Request, mount: str) -> Response:
        script_name, path_info, query = split_target(request, mount)
        host, port, scheme = origin(request)
        environ: dict[str, Any] = {
            "REQUEST_METHOD": request.method,
            "SCRIPT_NAME": script_name,
            "PATH_INFO": path_info,
            "QUERY_STRING": query,
            "SERVER_NAME": host,
            "SERVER_PORT": port or ("443" if scheme == "https" else "80"),
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": scheme,
            "wsgi.input": io.BytesIO(request.body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        for name, header in request.headers:
            value = header.encode("utf-8", ESCAPE).decode("latin-1")  # PEP 3333: the bytes, as Latin-1
            key = name.upper().replace("-", "_")
            key = key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"
            environ[key] = f"{environ[key]}, {value}" if key in environ else value
        started: list[tuple[str, list[tuple[str, str]]]] = []
        chunks: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started[:] = [(status, headers)]
            return chunks.append  # the legacy write() callable

        result: Iterable[bytes] = self.app(environ, start_response)
        try:
            chunks.extend(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status, headers = started[0]
        own = tuple((k, v.encode("latin-1").decode("utf-8", ESCAPE)) for k, v in headers)
        return Response(int(status.split(" ", 1)[0]), own, b"".join(chunks))


class AsgiBridge:
    """An ASGI app on an event loop thread of this process (made on first use, after any fork), with
    lifespan startup run once there. Callers in other threads wait for their request's coroutine."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None  # runs the loop
        self._owner = 0  # the pid the loop runs in
        self._lock = threading.Lock()
        self._closed = False
        self._lifespan: asyncio.Future[Any] | None = None  # kept running: it waits for a shutdown
        self._events: asyncio.Queue[dict[str, Any]] | None = None  # what the lifespan task receives
        self._state: dict[str, Any] = {}  # what lifespan startup put in scope["state"], for every request

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise RuntimeError("this app was replaced by a reload")
            if self._loop is None or self._owner != os.getpid():
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=loop.run_forever, daemon=True, name="isogate-asgi")
                self._thread.start()
                asyncio.run_coroutine_threadsafe(self._startup(), loop).result()
                self._loop, self._owner = loop, os.getpid()
            return self._loop

    def close(self, grace_s: float = CLOSE_GRACE_S) -> threading.Thread | None:
        """Retire the app (a reload replaced it): in the background, its running requests may finish
        (within `grace_s`), lifespan shutdown runs (within LIFESPAN_S), then its loop and thread end.
        Returns the thread doing it (None: the app never ran here)."""
        with self._lock:
            self._closed = True
            loop, thread, self._loop = self._loop, self._thread, None
            if loop is None or thread is None or self._owner != os.getpid():
                return None
        stopper = threading.Thread(target=self._stop, args=(loop, thread, grace_s), name="isogate-asgi-stop")
        stopper.daemon = True
        stopper.start()
        return stopper

    def _stop(self, loop: asyncio.AbstractEventLoop, thread: threading.Thread, grace_s: float) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(grace_s), loop).result(grace_s + LIFESPAN_S + 1)
        except Exception as exc:  # the app's shutdown failed or hung: its loop goes anyway
            log.warning("the ASGI app's shutdown failed: %r", exc)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(LIFESPAN_S)
        if not thread.is_alive():
            loop.close()

    async def _shutdown(self, grace_s: float) -> None:
        running = asyncio.all_tasks() - {asyncio.current_task(), self._lifespan}
        if running:
            await asyncio.wait(running, timeout=grace_s)
        lifespan, events = self._lifespan, self._events
        if lifespan is None or events is None or lifespan.done():
            return
        events.put_nowait({"type": "lifespan.shutdown"})
        await asyncio.wait([lifespan], timeout=LIFESPAN_S)
        lifespan.cancel()

    async def _startup(self) -> None:
        """Lifespan startup; an app that does not speak lifespan (it raises or returns) is served anyway."""
        events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        events.put_nowait({"type": "lifespan.startup"})
        answered = asyncio.get_running_loop().create_future()

        async def send(message: dict[str, Any]) -> None:
            if not answered.done():
                answered.set_result(message)

        async def receive() -> dict[str, Any]:
            return await events.get()

        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self._state}
        task = asyncio.ensure_future(self.app(scope, receive, send))
        await asyncio.wait([task, answered], return_when=asyncio.FIRST_COMPLETED)
        if answered.done() and answered.result()["type"] == "lifespan.startup.failed":
            raise RuntimeError(f"lifespan startup failed: {answered.result().get('message', '')}")
        self._lifespan, self._events = task, events

    def call(self, request: Request, mount: str) -> Response:
        """From a thread (a worker, a session): wait for the app's answer."""
        return self.submit(request, mount).result()

    def submit(self, request: Request, mount: str) -> concurrent.futures.Future[Response]:
        """Start the request on the app's loop; an event loop awaits the future without a worker thread
        (one hop instead of two), and cancelling it cancels the request's task."""
        loop = self.loop()  # first: a closed app raises before a coroutine exists
        return asyncio.run_coroutine_threadsafe(self._call(request, mount), loop)

    async def _call(self, request: Request, mount: str) -> Response:
        script_name, path_info, query = split_target(request, mount)
        host, port, scheme = origin(request)
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": scheme,
            "path": (script_name + path_info).encode("latin-1").decode("utf-8", "replace"),
            "raw_path": request.path.partition("?")[0].encode("latin-1", "replace"),
            "root_path": script_name,
            "query_string": query.encode("latin-1", "replace"),
            "headers": [(k.encode("latin-1"), v.encode("utf-8", ESCAPE)) for k, v in request.headers],
            "server": (host, int(port) if port.isdigit() else 80),
            "state": dict(self._state),
        }
        finished = asyncio.Event()
        pending = [{"type": "http.request", "body": request.body, "more_body": False}]
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            if pending:
                return pending.pop()
            await finished.wait()  # nothing more until the answer is out, then the client is gone
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(bytes(message.get("body", b"")))
                if not message.get("more_body", False):
                    finished.set()

        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            if not (start and finished.is_set()):
                raise
            # Its answer was out (Starlette sends its 500 and then re-raises for the server to log): as
            # uvicorn does, the answer stands and the error is logged.
            log.error("the ASGI app raised after answering: %r", exc)
        finally:
            finished.set()
        if not start:
            raise RuntimeError("the ASGI app returned without starting a response")
        headers = tuple((k.decode("latin-1"), v.decode("utf-8", ESCAPE)) for k, v in start["headers"])
        return Response(int(start["status"]), headers, b"".join(chunks))
