"""Terminate step: read an aiohttp request once, body bounded, into the frozen `Incoming` value."""

from __future__ import annotations

from aiohttp import web

from handlers import Request
from policy.identity import Identity
from policy.incoming import CREDENTIAL_HEADERS, Incoming
from proxy.errors import PayloadTooLarge

CHUNK = 64 * 1024


async def read_body(request: web.Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed `limit` (never read past it)."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds the limit of {limit} bytes")
    body = bytearray()
    async for chunk in request.content.iter_chunked(CHUNK):
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes")
    return bytes(body)


async def read_incoming(request: web.Request, client_ip: str, max_body: int) -> Incoming:
    return Incoming(
        method=request.method,
        path=request.path,
        target=request.raw_path,
        query=tuple(request.query.items()),
        headers=tuple((name.lower(), value) for name, value in request.headers.items()),
        body=await read_body(request, max_body),
        client_ip=client_ip,
    )


def handler_request(incoming: Incoming, identity: Identity) -> Request:
    """The handler's view of the request: credentials withheld, the entity named."""
    return Request(
        method=incoming.method,
        path=incoming.path,
        query=incoming.query,
        headers=tuple((n, v) for n, v in incoming.headers if n not in CREDENTIAL_HEADERS),
        body=incoming.body,
        entity_id=identity.entity_id,
    )
