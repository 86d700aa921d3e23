"""WebSocket upgrades on upstream routes: scored at the handshake, then relayed both ways, each message
bounded (`upstream_pool.ws_max_message_bytes`) and the connection closed after `ws_idle_timeout_s` with no
message either way."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web

from policy.config import UpstreamPoolConfig
from proxy.forward import (
    Forwarder,
    Hop,
    Tally,
    UpstreamTimeout,
    UpstreamUnavailable,
    outgoing_headers,
    what_failed,
)

# The handshake's own fields: aiohttp makes them for each side.
HANDSHAKE = (
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Extensions",
    "Sec-WebSocket-Protocol",
)


def is_upgrade(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


async def relay_websocket(
    request: web.Request,
    forwarder: Forwarder,
    urls: tuple[str, ...],
    hop: Hop,
) -> web.WebSocketResponse:
    """Open the upstream's WebSocket first (a refusal is a 502 before the client's upgrade), then accept
    the client's with the subprotocol the upstream chose, and relay until either side closes."""
    config = forwarder.config
    offered = request.headers.get("Sec-WebSocket-Protocol", "").split(",")
    protocols = tuple(p.strip() for p in offered if p.strip())
    upstream = await connect(forwarder, request, urls, protocols, hop)
    client = web.WebSocketResponse(
        protocols=(upstream.protocol,) if upstream.protocol else (),
        max_msg_size=config.ws_max_message_bytes,
        autoclose=False,
    )
    try:
        await client.prepare(request)
        await pump_both(client, upstream, config)
    finally:
        await upstream.close()
        await client.close()
    return client


async def connect(
    forwarder: Forwarder,
    request: web.Request,
    urls: tuple[str, ...],
    protocols: tuple[str, ...],
    hop: Hop,
) -> aiohttp.ClientWebSocketResponse:
    """The upstream's WebSocket, from the first member that accepts a connection (as for requests); the
    handshake must be done within `hop.timeout_s`."""
    config, timeout_s = forwarder.config, hop.timeout_s

    async def handshake(url: str, counts: Tally) -> aiohttp.ClientWebSocketResponse:
        headers = outgoing_headers(request, url, hop, config.forwarded)
        for name in HANDSHAKE:
            headers.popall(name, None)
        try:
            async with asyncio.timeout(timeout_s):
                return await forwarder.session.ws_connect(
                    "ws" + url.removeprefix("http") + request.rel_url.raw_path_qs,
                    headers=headers,
                    protocols=protocols,
                    max_msg_size=config.ws_max_message_bytes,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=timeout_s),
                    autoclose=False,
                    autoping=True,
                )
        except aiohttp.ClientConnectorError:
            raise  # the next member is tried
        except (aiohttp.WSServerHandshakeError, aiohttp.ClientError) as exc:
            counts.add("failed")
            raise UpstreamUnavailable(f"{url} refused the WebSocket: {what_failed(exc)}") from None
        except TimeoutError:
            counts.add("timeout")
            raise UpstreamTimeout(
                f"{url} did not accept the WebSocket in {timeout_s * 1000:.0f} ms"
            ) from None

    upstream, _ = await forwarder.first_accepting(urls, hop.route, handshake)
    return upstream


async def pump_both(
    client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse, config: UpstreamPoolConfig
) -> None:
    """Relay both ways; the first side to close, fail or idle past the timeout ends both."""
    idle = Idle(config.ws_idle_timeout_s)
    tasks = [
        asyncio.create_task(pump(client, upstream, idle)),
        asyncio.create_task(pump(upstream, client, idle)),
        asyncio.create_task(idle.watch()),
    ]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        code = task.result()
        if code is not None:
            await client.close(code=code)
            await upstream.close(code=code)


class Idle:
    """The time of the last message either way; `watch` ends when none came for `limit_s`."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self.last = asyncio.get_running_loop().time()

    def touch(self) -> None:
        self.last = asyncio.get_running_loop().time()

    async def watch(self) -> int:
        loop = asyncio.get_running_loop()
        while (left := self.last + self.limit_s - loop.time()) > 0:
            await asyncio.sleep(left)
        return int(WSCloseCode.GOING_AWAY)


async def pump(
    source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    idle: Idle,
) -> int | None:
    """Copy messages until `source` closes; the close code to pass on, if any."""
    while True:
        message = await source.receive()
        idle.touch()
        if message.type is WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif message.type is WSMsgType.BINARY:
            await sink.send_bytes(message.data)
        elif message.type is WSMsgType.CLOSE:
            return int(message.data) if message.data else int(WSCloseCode.OK)
        elif message.type is WSMsgType.ERROR:  # e.g. a message past ws_max_message_bytes
            too_big = isinstance(message.data, aiohttp.WebSocketError) and message.data.code == 1009
            return int(WSCloseCode.MESSAGE_TOO_BIG if too_big else WSCloseCode.INTERNAL_ERROR)
        elif message.type in (WSMsgType.CLOSED, WSMsgType.CLOSING):
            return None
