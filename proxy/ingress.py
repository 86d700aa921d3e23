"""Terminate step: read an aiohttp request once, body bounded, into the frozen `Incoming` value."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from handlers import Request
from policy.config import ServerConfig
from policy.identity import Identity
from policy.incoming import CREDENTIAL_HEADERS, Incoming
from proxy.errors import BodyTimeout, ClientClosedRequest, PayloadTooLarge


async def body_chunks(request: web.Request, limit: int, server: ServerConfig) -> AsyncIterator[bytes]:
    """The body as it arrives, refused with 413 as soon as it is known to exceed `limit` (never read past
    it), with 408 when it takes longer than `server.body_timeout_s` or, after `body_grace_s`, arrives slower
    than `server.min_body_rate` bytes a second (a slow-upload client holds a connection and memory)."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds the limit of {limit} bytes")
    loop = asyncio.get_running_loop()
    started, received = loop.time(), 0
    while True:
        rate_deadline = started + server.body_grace_s + received / server.min_body_rate
        try:
            async with asyncio.timeout_at(min(started + server.body_timeout_s, rate_deadline)):
                chunk = await request.content.readany()
        except TimeoutError:
            raise BodyTimeout(
                f"body not received in time: {received} bytes after {loop.time() - started:.1f} s"
                f" (server.body_timeout_s {server.body_timeout_s}, min_body_rate {server.min_body_rate} B/s)"
            ) from None
        except ConnectionError:
            raise ClientClosedRequest("the client closed the connection while sending the body") from None
        if not chunk:
            return
        received += len(chunk)
        if received > limit:
            raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes")
        yield chunk


async def read_body(request: web.Request, limit: int, server: ServerConfig) -> bytes:
    """The whole body (see body_chunks for its limits)."""
    if not request.body_exists:  # no Content-Length, no chunks: nothing to wait for
        return b""
    body = bytearray()
    async for chunk in body_chunks(request, limit, server):
        body += chunk
    return bytes(body)


async def read_incoming(
    request: web.Request, client_ip: str, max_body: int, server: ServerConfig
) -> Incoming:
    return incoming_of(request, client_ip, await read_body(request, max_body, server))


def incoming_of(request: web.Request, client_ip: str, body: bytes, body_size: int | None = None) -> Incoming:
    """`request` as scored, with `body` (the whole body, or the prefix read of a longer `body_size`)."""
    return Incoming(
        method=request.method,
        path=request.path,
        target=request.raw_path,
        query=tuple(request.query.items()),
        headers=tuple((name.lower(), value) for name, value in request.headers.items()),
        body=body,
        client_ip=client_ip,
        body_size=body_size,
    )


def handler_request(incoming: Incoming, identity: Identity, *, target: bool = False) -> Request:
    """The handler's view of the request: credentials withheld, the entity named. For an app (`target`),
    `path` is the raw request-target, path and query as received, which the app's bridge decodes itself."""
    return Request(
        method=incoming.method,
        path=incoming.target if target else incoming.path,
        query=incoming.query,
        headers=tuple((n, v) for n, v in incoming.headers if n not in CREDENTIAL_HEADERS),
        body=incoming.body,
        entity_id=identity.entity_id,
    )
