"""Serving: aiohttp's server with the gateway's answer to what aiohttp's own HTTP parser refuses, caps on
connections per client address and in all, and a deadline on every phase of a connection: the request line
and headers (`server.header_timeout_s`, from the connection or the request's first byte), the body
(proxy.ingress), and an idle kept-alive connection (`server.idle_timeout_s`). At a cap, an idle kept-alive
connection is closed to make room before a new one is refused, so only connections at work hold the caps.

aiohttp answers a request its parser refuses (a 100 KB request line, 10,000 headers, Content-Length with
Transfer-Encoding, bad chunking) with a plain-text 400 that echoes the input, logs an ERROR traceback each
time, and never reaches the middleware. Here those get the gateway's JSON error (400 or 431) naming the
problem without echoing it, one log line, a request id, and a count in /stats. aiohttp has no hook for the
connection class, so the runner swaps its server's class for one that makes `GatewayConnection`s.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections import Counter
from collections.abc import Callable
from typing import Any, cast

import orjson
from aiohttp import http_exceptions, web, web_protocol

from policy.errors import IsogateError
from proxy import heap
from proxy.egress import error_response
from proxy.gateway import GATEWAY, Gateway
from proxy.middleware import new_request_id
from proxy.privileges import drop_root

log = logging.getLogger("isogate.http")

# (exception type, words in aiohttp's message) -> (status, code, what the client is told). First match wins.
REFUSALS: list[tuple[type[Exception], str, int, str, str]] = [
    (http_exceptions.BadHttpMessage, "too many headers", 431, "header_fields_too_large", "too many headers"),
    (
        http_exceptions.LineTooLong,
        "",
        431,
        "header_fields_too_large",
        "the request line or a header field is longer than the gateway accepts (8190 bytes)",
    ),
    (
        http_exceptions.BadHttpMessage,
        "transfer-encoding can't be present with content-length",
        400,
        "malformed_request",
        "both Content-Length and Transfer-Encoding: ambiguous framing (request smuggling)",
    ),
    (http_exceptions.TransferEncodingError, "", 400, "malformed_request", "malformed chunked body"),
    (http_exceptions.BadHttpMessage, "chunk", 400, "malformed_request", "malformed chunked body"),
    (http_exceptions.BadStatusLine, "", 400, "malformed_request", "not an HTTP/1.x request line"),
    (http_exceptions.InvalidHeader, "", 400, "malformed_request", "a malformed header"),
]


def refusal(exc: BaseException | None) -> tuple[int, str, str]:
    """(status, code, detail) for a request aiohttp's parser refused; never echoes the input."""
    text = str(exc).lower()
    for kind, words, status, code, detail in REFUSALS:
        if isinstance(exc, kind) and words in text:
            return status, code, detail
    return 400, "malformed_request", "malformed HTTP request"


class TooManyConnections(IsogateError):
    status = 503
    code = "too_many_connections"


def raw_answer(status: str, code: str, detail: str, extra: str = "") -> bytes:
    """A whole JSON error response, written straight to a transport outside aiohttp's request cycle."""
    body = orjson.dumps({"error": code, "detail": detail})
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"{extra}Connection: close\r\n\r\n"
    ).encode() + body


class GatewayConnection(web_protocol.RequestHandler):
    """One client connection: parser refusals answered as JSON, the connection caps enforced, and a
    deadline on the request line and headers."""

    _header_timer: asyncio.TimerHandle | None = None
    _partial = False  # bytes of a request whose headers are not complete yet have arrived

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        server = self._server()
        if server.gateway is not None:  # read by aiohttp's start(), which connection_made begins
            self._keepalive_timeout = server.gateway.config.server.idle_timeout_s
        super().connection_made(transport)
        refused = server.admit(self, transport)
        if refused is not None:
            answer = raw_answer("503 Service Unavailable", refused.code, refused.detail, "Retry-After: 1\r\n")
            cast(asyncio.Transport, transport).write(answer)
            transport.close()
            return
        self._await_headers()

    def data_received(self, data: bytes) -> None:
        requests = self._request_count
        super().data_received(data)
        if self._request_count != requests:  # a request's headers are complete: its body has its own deadline
            self._stop_header_timer()
        elif self._waiter is not None and not self._waiter.done():  # part of the next request's head
            self._partial = True
            if self._header_timer is None:
                self._await_headers()

    @property
    def idle(self) -> bool:
        """Kept alive between requests, with nothing of the next one received: closing it loses nothing."""
        waiting = self._waiter is not None and not self._waiter.done()
        return waiting and self._request_count > 0 and not self._partial and not self._messages

    def _await_headers(self) -> None:
        server = self._server()
        if server.gateway is not None and self.transport is not None:
            timeout = server.gateway.config.server.header_timeout_s
            self._header_timer = self._loop.call_later(timeout, self._headers_late, timeout)

    def _stop_header_timer(self) -> None:
        self._partial = False
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self, timeout: float) -> None:
        """The request line and headers did not arrive in time: 408 (when some bytes came) and closed."""
        self._header_timer = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self._partial:
            detail = (
                f"the request line and headers did not arrive within server.header_timeout_s ({timeout} s)"
            )
            transport.write(raw_answer("408 Request Timeout", "header_timeout", detail))
            peer = transport.get_extra_info("peername")
            self._refused(408, "header_timeout", peer[0] if peer else "unknown")
        self.force_close()
        transport.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_header_timer()
        self._server().release(self)
        super().connection_lost(exc)

    def _server(self) -> GatewayServer:
        return cast(GatewayServer, self._manager)  # set until connection_lost, which calls this first

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # the answer has begun: the connection is all that can go
            raise ConnectionError("response already started") from exc
        if status == 500:  # an error past the middleware (it answers everything else): no details out
            code, detail = "internal_error", "the gateway failed to process this request"
            log.error("unhandled error outside the pipeline: %s", type(exc).__name__)
        else:
            status, code, detail = refusal(exc)
        error = IsogateError(detail)
        error.status, error.code = status, code
        response = error_response(error)
        response.force_close()
        request_id = new_request_id()
        response.headers["X-Request-Id"] = request_id
        self._refused(status, code, request.remote or "unknown", request_id)
        return response

    def _refused(self, status: int, code: str, remote: str, request_id: str | None = None) -> None:
        """A request refused before the pipeline: counted gateway-wide, and one JSON log line."""
        gateway = self._server().gateway
        if gateway is not None:
            gateway.stats.refused(status)
        line = {"request_id": request_id} if request_id else {}
        log.info(orjson.dumps({**line, "remote": remote, "status": status, "error": code}).decode())


class GatewayServer(web.Server):
    """aiohttp's server, counting connections per client address (see `admit`)."""

    gateway: Gateway | None
    per_address: Counter[str]
    addresses: dict[GatewayConnection, str]

    def __call__(self) -> GatewayConnection:
        return GatewayConnection(self, loop=self._loop, **self._kwargs)

    def admit(
        self, connection: GatewayConnection, transport: asyncio.BaseTransport
    ) -> TooManyConnections | None:
        """Count a new connection; the error to answer with when it is over a cap (it is then closed)."""
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if peer else "unknown"
        self.addresses[connection] = address
        self.per_address[address] += 1
        if self.gateway is None:
            return None
        server = self.gateway.config.server
        if len(self.addresses) > server.max_connections and not self._close_idle(None):
            return TooManyConnections(f"the gateway holds server.max_connections ({server.max_connections})")
        over = address not in server.proxies and self.per_address[address] > server.max_connections_per_ip
        if over and not self._close_idle(address):
            return TooManyConnections(
                f"{address} holds server.max_connections_per_ip ({server.max_connections_per_ip}) connections"
            )
        return None

    def _close_idle(self, address: str | None) -> bool:
        """Close one idle kept-alive connection (of `address`, or any) to make room; False if none is idle.
        A scan of the open connections, only when a cap is reached."""
        for connection, held_by in self.addresses.items():
            if (address is None or held_by == address) and connection.idle:
                self.release(connection)  # now: its connection_lost comes later
                connection.force_close()
                if connection.transport is not None:
                    connection.transport.close()
                return True
        return False

    def release(self, connection: GatewayConnection) -> None:
        address = self.addresses.pop(connection, None)
        if address is not None:
            self.per_address[address] -= 1
            if not self.per_address[address]:
                del self.per_address[address]


class GatewayRunner(web.AppRunner):
    """An AppRunner whose server is a GatewayServer."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = GatewayServer  # aiohttp has no hook for its connection class
        assert isinstance(server, GatewayServer)
        server.gateway = self.app[GATEWAY]
        server.per_address, server.addresses = Counter(), {}
        return server


async def serve(
    app: web.Application,
    host: str,
    port: int,
    ready: Callable[[], Any],
    *,
    reuse_port: bool = False,
    user: str = "",
) -> None:
    """Serve `app` on host:port until SIGINT or SIGTERM, then shut down cleanly (with `reuse_port`, one of
    several worker processes listening on the same port: the kernel spreads connections between them)."""
    # Every request already gets one structured line; a handler whose client left is cancelled (a request
    # waiting for a container or a thread leaves the queue; one already running finishes, see pool/).
    runner = GatewayRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    live = app[GATEWAY].live
    settling: asyncio.Task[None] | None = None
    try:
        await web.TCPSite(runner, host, port, reuse_port=reuse_port or None).start()
        drop_root(user)  # the port, the store and the key are held: root is not needed any more
        ready()
        # A reload (a config generation, or new code: a record in live.reloads) is settled after twice
        # the longest deadline a request of the old config could run to.
        config = live.config
        longest_ms = max([config.limits.execution.max_time_ms, *(r.timeout_ms or 0 for r in config.routes)])

        def version() -> tuple[int, object]:
            return live.generation, live.reloads[-1]["at"] if live.reloads else None

        settling = asyncio.create_task(heap.keep_settled(version, 2 * longest_ms / 1000), name="isogate-heap")
        await stop.wait()
    finally:
        if settling is not None:
            settling.cancel()
        await runner.cleanup()
