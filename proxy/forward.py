"""Upstream routes: a request forwarded to an existing service, both bodies streamed, headers as a reverse
proxy treats them (RFC 9110 7.6.1 hop-by-hop fields removed both ways, X-Forwarded-* appended)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import ContentLengthError
from multidict import CIMultiDict, CIMultiDictProxy

from policy.config import UpstreamPoolConfig
from policy.errors import IsogateError
from proxy import egress
from proxy.errors import PayloadTooLarge

# The hop-by-hop fields (names listed in Connection go too) and the pre-standard Proxy-Connection.
# Content-Length is kept: the other side gets the body framed as it came.
HOP_BY_HOP = egress.HOP_BY_HOP | {"proxy-connection"}
CHUNK = 64 * 1024
T = TypeVar("T")


class UpstreamUnavailable(IsogateError):
    status, code, charged = 502, "upstream_unavailable", False


class UpstreamTimeout(IsogateError):
    status, code, charged = 504, "upstream_timeout", False


class IsolationUnavailable(IsogateError):
    status, code, charged = 403, "isolation_unavailable", False


def end_to_end(headers: CIMultiDict[str] | CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """`headers` without the hop-by-hop fields, nor those the Connection field names."""
    dropped = HOP_BY_HOP
    if "Connection" in headers:
        dropped = dropped | {n.strip().lower() for v in headers.getall("Connection") for n in v.split(",")}
    return CIMultiDict([(k, v) for k, v in headers.items() if k.lower() not in dropped])


@dataclass(frozen=True, slots=True)
class Hop:
    """How one request goes on from the gateway (to an upstream, a WebSocket, an isolated replica): whose
    it is, and its route's name, deadline and forwarding settings."""

    client_ip: str
    route: str
    timeout_s: float
    preserve_host: bool = False
    authorization: tuple[bool, str | None] = (False, None)  # RouteConfig.upstream_authorization


class Tally:
    """Counters that count the same events (one upstream's and one route's)."""

    def __init__(self, *counters: Counter[str]) -> None:
        self.counters = counters

    def add(self, event: str) -> None:
        for counter in self.counters:
            counter[event] += 1


class Members:
    """One upstream list: round-robin, skipping for `fail_timeout_s` a member that refused a connection
    (passive health). When every member is down they are all tried, so a recovery is noticed."""

    def __init__(self, urls: tuple[str, ...], fail_timeout_s: float) -> None:
        self.urls, self.fail_timeout_s = urls, fail_timeout_s
        self._next = 0
        self.down_until: dict[str, float] = {}

    def order(self) -> tuple[str, ...] | list[str]:
        if len(self.urls) == 1:
            return self.urls
        start, self._next = self._next, (self._next + 1) % len(self.urls)
        turn = [*self.urls[start:], *self.urls[:start]]
        now = time.monotonic()
        return sorted(turn, key=lambda url: self.down_until.get(url, 0) > now)  # stable: up ones first

    def failed(self, url: str) -> None:
        self.down_until[url] = time.monotonic() + self.fail_timeout_s

    def ok(self, url: str) -> None:
        self.down_until.pop(url, None)


class Forwarder:
    """The client side: one session, one keep-alive pool per upstream host, counts per upstream."""

    def __init__(self, config: UpstreamPoolConfig) -> None:
        self.config = config
        self._session: aiohttp.ClientSession | None = None
        self._members: dict[tuple[str, ...], Members] = {}
        self._timeouts: dict[tuple[float, float], aiohttp.ClientTimeout] = {}  # (connect, read) seconds
        self.counts: dict[str, Counter[str]] = {}  # per upstream URL
        self.by_route: dict[str, Counter[str]] = {}  # per route path

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self.config.max_connections,
            limit_per_host=self.config.max_per_host,
            keepalive_timeout=self.config.keepalive_s,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,  # gzip passes through as the upstream made it
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.config.connect_timeout_ms / 1000),
            read_bufsize=CHUNK,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            cookie_jar=aiohttp.DummyCookieJar(),  # never keeps one caller's cookies for another
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "Forwarder.start() first"
        return self._session

    def count(self, url: str, route: str) -> Tally:
        """A new request to `url` for `route`: what befalls it is counted for both."""
        tally = Tally(self.counts.setdefault(url, Counter()), self.by_route.setdefault(route, Counter()))
        tally.add("requests")
        return tally

    def members(self, urls: tuple[str, ...]) -> Members:
        """The same object for the same list across reloads (its rotation and health are kept)."""
        if urls not in self._members:
            self._members[urls] = Members(urls, self.config.fail_timeout_s)
        return self._members[urls]

    def status(self) -> dict[str, object]:
        now = time.monotonic()
        down = {url for m in self._members.values() for url, until in m.down_until.items() if until > now}
        return {url: {**counts, "down": url in down} for url, counts in self.counts.items()}

    def route_status(self) -> dict[str, dict[str, int]]:
        return {route: dict(counts) for route, counts in self.by_route.items()}

    async def forward(
        self,
        request: web.Request,
        body: AsyncIterator[bytes],
        urls: tuple[str, ...],
        hop: Hop,
    ) -> web.StreamResponse:
        """Send `request` (its body from `body`) to the first member that accepts a connection, and stream
        the answer back. A refused connection tries the next member (nothing was sent); no answer within
        `hop.timeout_s` is a 504; an upstream that breaks off mid-body ends the client's connection too."""
        timeout_s = hop.timeout_s
        seconds = (self.config.connect_timeout_ms / 1000, timeout_s)
        timeout = self._timeouts.get(seconds)
        if timeout is None:  # one per route deadline, made once
            # sock_read bounds the wait between body chunks too: a stalled upstream ends
            timeout = self._timeouts[seconds] = aiohttp.ClientTimeout(
                total=None, sock_connect=seconds[0], sock_read=timeout_s
            )

        async def send(url: str, counts: Tally) -> aiohttp.ClientResponse:
            headers = outgoing_headers(request, url, hop, self.config.forwarded)
            try:
                async with asyncio.timeout(timeout_s):
                    return await self.session.request(
                        request.method,
                        url + request.rel_url.raw_path_qs,  # origin-form, even when absolute-form came
                        headers=headers,
                        data=body if request.body_exists else None,
                        allow_redirects=False,
                        compress=None,
                        timeout=timeout,
                    )
            except aiohttp.ClientConnectorError:
                raise  # the next member is tried
            except TimeoutError:
                counts.add("timeout")
                raise UpstreamTimeout(f"{url} did not answer within {timeout_s * 1000:.0f} ms") from None
            except aiohttp.ClientError as exc:
                if isinstance(exc.__cause__, PayloadTooLarge | IsogateError):
                    raise exc.__cause__ from None
                counts.add("failed")
                raise UpstreamUnavailable(f"{url} failed: {what_failed(exc)}") from None

        upstream, counts = await self.first_accepting(urls, hop.route, send)
        return await relay(request, upstream, counts)

    async def first_accepting(
        self, urls: tuple[str, ...], route: str, connect: Callable[[str, Tally], Awaitable[T]]
    ) -> tuple[T, Tally]:
        """`connect` to the members in turn until one accepts a connection: a refusal (nothing was sent)
        marks the member down and tries the next; any other error of `connect` is its own to raise."""
        members = self.members(urls)
        last: Exception | None = None
        for url in members.order():
            counts = self.count(url, route)
            try:
                result = await connect(url, counts)
            except aiohttp.ClientConnectorError as exc:  # refused, unreachable, no such name
                counts.add("unavailable")
                members.failed(url)
                last = exc
                continue
            members.ok(url)
            return result, counts
        raise UpstreamUnavailable(f"no upstream accepted a connection ({what_failed(last)})")


def what_failed(exc: BaseException | None) -> str:
    """An upstream failure in words a client may read: never an exception's type or text."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return (
            "the connection was refused"
            if isinstance(exc.os_error, ConnectionRefusedError)
            else "unreachable"
        )
    cut_short = isinstance(exc, aiohttp.ClientPayloadError) and isinstance(exc.__cause__, ContentLengthError)
    if cut_short or isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return "it closed the connection without a whole answer"
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        return "its answer was malformed"
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return "it did not accept the WebSocket handshake"
    return "the exchange failed"


def forwarded_element(peer: str, host: str, proto: str) -> str:
    """One RFC 7239 element: an IPv6 address is bracketed, and every value quoted where it must be."""
    node = f'"[{peer}]"' if ":" in peer else peer
    return f'for={node};host="{host}";proto={proto}'


def outgoing_headers(request: web.Request, url: str, hop: Hop, forwarded: bool = False) -> CIMultiDict[str]:
    """What the upstream gets: the end-to-end headers, X-Forwarded-*, and the route's Authorization
    (`RouteConfig.upstream_authorization`: the caller's, none, or the route's own credential)."""
    headers = end_to_end(request.headers)
    headers.popall("Expect", None)  # 100-continue was the gateway's to answer, and it has
    replace, credential = hop.authorization
    if replace:
        headers.popall("Authorization", None)
        if credential is not None:
            headers["Authorization"] = credential
    peer = request.remote or hop.client_ip
    headers.popall("X-Forwarded-For", None)
    chain = ", ".join(request.headers.getall("X-Forwarded-For", ()))
    headers["X-Forwarded-For"] = f"{chain}, {peer}" if chain else peer
    headers["X-Forwarded-Proto"] = request.scheme
    headers["X-Forwarded-Host"] = request.host
    if forwarded:
        element = forwarded_element(peer, request.host.replace('"', ""), request.scheme)
        headers.popall("Forwarded", None)
        received = ", ".join(request.headers.getall("Forwarded", ()))
        headers["Forwarded"] = f"{received}, {element}" if received else element
    if not hop.preserve_host:
        headers["Host"] = netloc(url)
    return headers


@lru_cache(maxsize=256)
def netloc(url: str) -> str:
    """`url`'s host and port (a route's upstream URLs: few, parsed once)."""
    return urlsplit(url).netloc


class WholeAnswer(web.StreamResponse):
    """An answer read whole before it is sent: its head waits for its body and both go out in one write
    (aiohttp's own flag, which its `web.Response` sets; a StreamResponse otherwise sends its head apart)."""

    _send_headers_immediately = False


async def relay(request: web.Request, upstream: aiohttp.ClientResponse, counts: Tally) -> web.StreamResponse:
    """The upstream's status, headers and body, as they came (framing aside). A body of at most one chunk
    is read whole first: an upstream that breaks off or stalls before its end is then a 502 or 504, and
    the answer goes out in one write. A longer one is streamed, and once its status line is sent nothing
    can be taken back: an upstream that breaks off (or stalls past the route's timeout) mid-body, or a
    client that leaves, ends the client's connection, never a truncated body passed as complete."""
    async with upstream:
        length = upstream.content_length
        if length is not None and length <= CHUNK:
            body = await read_whole(upstream, counts)
            response: web.StreamResponse = WholeAnswer(status=upstream.status, reason=upstream.reason)
        else:
            body, response = None, web.StreamResponse(status=upstream.status, reason=upstream.reason)
        response.headers.extend(end_to_end(upstream.headers))
        await response.prepare(request)
        try:
            if body is not None:
                await response.write_eof(body)
                return response
            async for chunk in upstream.content.iter_chunked(CHUNK):
                await response.write(chunk)
            await response.write_eof()
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError):
            counts.add("reset")
            response.force_close()
            if request.transport is not None:
                request.transport.close()
        except ConnectionError:  # the client left
            response.force_close()
        return response


async def read_whole(upstream: aiohttp.ClientResponse, counts: Tally) -> bytes:
    """A short body, before anything is sent to the client: a break is a 502, a stall a 504."""
    try:
        return await upstream.read()
    except TimeoutError:
        counts.add("timeout")
        raise UpstreamTimeout("the upstream stopped sending its answer's body") from None
    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
        counts.add("reset")
        raise UpstreamUnavailable(f"the upstream failed: {what_failed(exc)}") from None
