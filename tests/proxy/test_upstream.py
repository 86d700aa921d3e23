"""Upstream routes against real aiohttp upstreams on 127.0.0.1: what the client gets is what the upstream
made, headers are treated as a reverse proxy must, faults have their statuses, and a docker decision never
reaches production."""

from __future__ import annotations

import asyncio
import gzip
import io
import socket
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from conftest import BASE as SHARED_BASE
from conftest import Gateway, bearer
from proxy.forward import forwarded_element
from proxy.gateway import GATEWAY

BINARY = bytes(range(256)) * 64


def upstream_app(name: str, seen: Counter[str]) -> web.Application:
    async def echo(request: web.Request) -> web.StreamResponse:
        seen[name] += 1
        body = await request.read()
        response = web.Response(
            status=201 if request.method == "POST" else 200,
            body=body or BINARY,
            content_type="application/octet-stream",
        )
        response.headers.add("Set-Cookie", "a=1")
        response.headers.add("Set-Cookie", "b=2")
        response.headers["X-Upstream"] = name
        response.headers["X-Seen-Headers"] = ";".join(f"{k}={v}" for k, v in request.headers.items())
        response.headers["X-Seen-Path"] = request.raw_path
        return response

    async def stream(request: web.Request) -> web.StreamResponse:
        seen[name] += 1
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for i in range(int(request.query.get("chunks", "10"))):
            await response.write(bytes([i % 256]) * 100_000)
        await response.write_eof()
        return response

    async def broken(request: web.Request) -> web.StreamResponse:
        seen[name] += 1
        response = web.StreamResponse(headers={"Content-Length": "1000000"})
        await response.prepare(request)
        await response.write(b"x" * 1000)
        assert request.transport is not None
        request.transport.close()  # the upstream dies mid-body
        return response

    async def short(request: web.Request) -> web.StreamResponse:
        seen[name] += 1  # 10 bytes of a short body promised at 1,000, then a stall or the end
        response = web.StreamResponse(headers={"Content-Length": "1000"})
        await response.prepare(request)
        await response.write(b"x" * 10)
        if request.query.get("then") == "stall":
            await asyncio.sleep(5)
        assert request.transport is not None
        request.transport.close()
        return response

    async def slow(request: web.Request) -> web.Response:
        seen[name] += 1
        await asyncio.sleep(5)
        return web.Response(text="late")

    async def status(request: web.Request) -> web.Response:
        seen[name] += 1
        code = int(request.match_info["code"])
        headers = {"Location": "/elsewhere"} if code == 302 else {"ETag": '"v1"'}
        return web.Response(status=code, headers=headers)

    async def gzipped(request: web.Request) -> web.Response:
        seen[name] += 1
        return web.Response(body=gzip.compress(b"hello " * 100), headers={"Content-Encoding": "gzip"})

    async def websocket(request: web.Request) -> web.WebSocketResponse:
        seen[name] += 1
        ws = web.WebSocketResponse(protocols=("chat",), max_msg_size=64 << 20)
        await ws.prepare(request)
        async for message in ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                await ws.send_str(f"{name}:{message.data}")
            elif message.type is aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(message.data[::-1])
        return ws

    async def discard(request: web.Request) -> web.Response:
        seen[name] += 1
        size = 0
        async for chunk in request.content.iter_chunked(65536):
            size += len(chunk)
        return web.json_response({"read": size})

    app = web.Application(client_max_size=64 << 20)
    app.router.add_get("/api/ws", websocket)
    app.router.add_put("/api/discard", discard)
    app.router.add_route("*", "/api/stream", stream)
    app.router.add_route("*", "/api/broken", broken)
    app.router.add_route("*", "/api/short", short)
    app.router.add_route("*", "/api/slow", slow)
    app.router.add_route("*", "/api/status/{code}", status)
    app.router.add_route("*", "/api/gzip", gzipped)
    app.router.add_route("*", "/api/{tail:.*}", echo)
    return app


async def start(name: str, seen: Counter[str]) -> TestServer:
    server = TestServer(upstream_app(name, seen), host="127.0.0.1")
    await server.start_server()
    return server


def url(server: TestServer) -> str:
    return f"http://127.0.0.1:{server.port}"


REFUSING: list[socket.socket] = []  # held while this module runs: a closed port could be taken meanwhile


@pytest.fixture(scope="module", autouse=True)
def _release_refusing_ports() -> Iterator[None]:
    yield
    while REFUSING:
        REFUSING.pop().close()


def closed_port() -> int:
    """A loopback port that refuses connections: bound and never listening, so nothing else can take it
    meanwhile (a port merely closed again can be: the likely cause of one 504 where a 502 was due)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    REFUSING.append(sock)
    return int(sock.getsockname()[1])


def routes(upstream: Any, **extra: Any) -> dict[str, Any]:
    return {"routes": [{"path": "/api/*", "upstream": upstream, **extra}], "server": {"debug_headers": "all"}}


@pytest.fixture
async def upstreams() -> Any:
    seen: Counter[str] = Counter()
    servers = [await start("prod", seen), await start("quarantine", seen), await start("prod2", seen)]
    yield servers, seen
    for server in servers:
        await server.close()


TRUSTED = bearer("ops", trust="trusted")


async def test_status_headers_and_body_come_back_as_the_upstream_made_them(
    gateway: Gateway, upstreams: Any
) -> None:
    (prod, *_), seen = upstreams
    client = await gateway(routes(url(prod)))
    async with aiohttp.ClientSession() as direct:
        for method, body in (("GET", None), ("POST", BINARY[:5000])):
            through = await client.request(method, "/api/x?q=1", data=body, headers=TRUSTED)
            straight = await direct.request(method, f"{url(prod)}/api/x?q=1", data=body, headers=TRUSTED)
            assert through.status == straight.status
            assert await through.read() == await straight.read()
            assert through.headers.getall("Set-Cookie") == ["a=1", "b=2"]
            assert through.headers["X-Upstream"] == "prod" and through.headers["X-Isogate-Mode"] == "thread"
            assert through.headers["X-Seen-Path"] == "/api/x?q=1"
    assert seen["prod"] == 4


async def test_hop_by_hop_headers_go_and_forwarding_headers_are_appended(
    gateway: Gateway, upstreams: Any
) -> None:
    (prod, *_), _ = upstreams
    client = await gateway(routes(url(prod), preserve_host=False))
    response = await client.get(
        "/api/x",
        headers={
            **TRUSTED,
            "Connection": "keep-alive, X-Secret-Hop",
            "X-Secret-Hop": "1",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
            "X-Forwarded-For": "198.51.100.7",
            "X-Kept": "yes",
        },
    )
    seen = dict(item.split("=", 1) for item in response.headers["X-Seen-Headers"].split(";"))
    assert "X-Secret-Hop" not in seen and "Keep-Alive" not in seen and "TE" not in seen
    assert seen["X-Kept"] == "yes"
    assert seen["X-Forwarded-For"] == "198.51.100.7, 127.0.0.1"
    assert seen["X-Forwarded-Proto"] == "http" and seen["X-Forwarded-Host"].startswith("127.0.0.1:")
    assert seen["Host"] == f"127.0.0.1:{prod.port}"  # preserve_host: false


async def test_large_bodies_stream_both_ways(gateway: Gateway, upstreams: Any) -> None:
    (prod, *_), _ = upstreams
    client = await gateway(routes(url(prod), max_body_bytes=32 << 20))
    upload = bytes(range(256)) * (10 * 4096)  # 10 MiB
    response = await client.post("/api/up", data=io.BytesIO(upload), headers=TRUSTED)
    assert response.status == 201 and await response.read() == upload
    response = await client.get("/api/stream?chunks=100", headers=TRUSTED)  # 10 MB, chunked
    body = await response.read()
    assert len(body) == 10_000_000 and body[:100_000] == b"\0" * 100_000
    assert response.headers.get("Transfer-Encoding") == "chunked"


async def test_head_204_304_redirects_and_gzip_pass_unchanged(gateway: Gateway, upstreams: Any) -> None:
    (prod, *_), _ = upstreams
    client = await gateway(routes(url(prod)))
    head = await client.head("/api/x", headers=TRUSTED)
    assert head.status == 200 and await head.read() == b""
    got = await client.get("/api/x", headers=TRUSTED)
    assert head.headers["Content-Length"] == got.headers["Content-Length"] == str(len(await got.read()))
    for code in (204, 304):
        response = await client.get(f"/api/status/{code}", headers=TRUSTED)
        assert response.status == code and await response.read() == b""
    moved = await client.get("/api/status/302", headers=TRUSTED, allow_redirects=False)
    assert moved.status == 302 and moved.headers["Location"] == "/elsewhere"  # passed, not followed
    zipped = await client.get("/api/gzip", headers=TRUSTED, auto_decompress=False)
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(await zipped.read()) == b"hello " * 100


async def test_faults_have_their_statuses(gateway: Gateway, upstreams: Any) -> None:
    (prod, *_), _ = upstreams
    refused = await gateway(routes(f"http://127.0.0.1:{closed_port()}"))
    response = await refused.get("/api/x", headers=TRUSTED)
    body = await response.json()
    assert (response.status, body["error"]) == (502, "upstream_unavailable")
    assert body["detail"].endswith("(the connection was refused)")  # words, never an exception's name
    assert "Error" not in body["detail"]
    client = await gateway(routes(url(prod), timeout_ms=300))
    response = await client.get("/api/slow", headers=TRUSTED)
    assert (response.status, (await response.json())["error"]) == (504, "upstream_timeout")
    response = await client.get("/api/broken", headers=TRUSTED)
    with pytest.raises(aiohttp.ClientPayloadError):  # never a truncated body passed as complete
        await response.read()
    assert (await client.get("/api/x", headers=TRUSTED)).status == 200  # and the gateway serves on
    # A short body is read whole before anything is sent: its break or stall is told as an error.
    response = await client.get("/api/short", headers=TRUSTED)
    body = await response.json()
    assert (response.status, body["error"]) == (502, "upstream_unavailable")
    assert body["detail"] == "the upstream failed: it closed the connection without a whole answer"
    response = await client.get("/api/short?then=stall", headers=TRUSTED)
    assert (response.status, (await response.json())["error"]) == (504, "upstream_timeout")
    stats = await (await client.get("/stats", headers=bearer("ops", role="admin"))).json()
    assert stats["upstreams"][url(prod)]["reset"] == 2 and stats["upstreams"][url(prod)]["timeout"] == 2
    assert (await client.get("/api/x", headers=TRUSTED)).status == 200


async def test_round_robin_skips_a_member_that_refuses(gateway: Gateway, upstreams: Any) -> None:
    (prod, _, prod2), seen = upstreams
    dead = f"http://127.0.0.1:{closed_port()}"
    client = await gateway(routes([url(prod), dead, url(prod2)]))
    for _ in range(6):
        assert (await client.get("/api/x", headers=TRUSTED)).status == 200
    assert seen["prod"] + seen["prod2"] == 6 and seen["prod"] >= 2 and seen["prod2"] >= 2
    stats = await (await client.get("/stats", headers=bearer("ops", role="admin"))).json()
    assert stats["upstreams"][dead]["down"] is True and stats["upstreams"][dead]["unavailable"] == 1
    assert stats["upstream_routes"]["/api/*"] == {"requests": 7, "unavailable": 1}


async def test_a_docker_decision_goes_to_isolation_and_never_to_production(
    gateway: Gateway, upstreams: Any
) -> None:
    (prod, quarantine, _), seen = upstreams
    hybrid = {"execution_mode": "hybrid"}
    isolated = await gateway({**routes(url(prod), isolated={"upstream": url(quarantine)}), **hybrid})
    attack = "/api/x?q=1%27%20UNION%20SELECT%20password%20FROM%20users--"
    response = await isolated.get(attack)  # a new, anonymous caller with an injection
    assert response.status == 200 and response.headers["X-Upstream"] == "quarantine"
    assert response.headers["X-Isogate-Mode"] == "docker"
    refusing = await gateway({**routes(url(prod)), **hybrid})
    response = await refusing.get(attack)
    assert (response.status, (await response.json())["error"]) == (403, "isolation_unavailable")
    assert seen["prod"] == 0 and seen["quarantine"] == 1


async def test_a_streamed_body_past_the_limit_is_413_and_the_gateway_serves_on(
    gateway: Gateway, upstreams: Any
) -> None:
    (prod, *_), seen = upstreams
    client = await gateway(routes(url(prod), max_body_bytes=200_000))

    async def chunked() -> Any:  # no Content-Length: the limit is found while streaming
        for _ in range(10):
            yield b"y" * 50_000

    response = await client.post("/api/up", data=chunked(), headers=TRUSTED)
    assert (response.status, (await response.json())["error"]) == (413, "payload_too_large")
    assert (await client.get("/api/x", headers=TRUSTED)).status == 200


async def test_a_new_upstream_list_applies_live_without_failing_a_request(live: Any, upstreams: Any) -> None:
    (prod, _, prod2), seen = upstreams
    from conftest import BASE

    def version(target: str) -> dict[str, Any]:
        settle = {**BASE["server"], "watch_settle_ms": 50}  # each rewrite applies before the next
        return {**BASE, "server": settle, "routes": [{"path": "/api/*", "upstream": target}]}

    client, files = await live(version(url(prod)))
    statuses: list[int] = []
    stop = asyncio.Event()

    async def load_loop() -> None:
        for _ in range(100_000):  # bounded; ends when the rewrites are done
            if stop.is_set():
                return
            response = await client.get("/api/x", headers=TRUSTED)
            await response.read()
            statuses.append(response.status)

    workers = [asyncio.create_task(load_loop()) for _ in range(4)]
    for n in range(6):
        files.write(version(url(prod2 if n % 2 == 0 else prod)))
        await asyncio.sleep(0.3)
    stop.set()
    await asyncio.gather(*workers)
    assert set(statuses) == {200} and seen["prod"] > 0 and seen["prod2"] > 0


async def test_an_absolute_form_target_cannot_pick_another_host(gateway: Gateway, upstreams: Any) -> None:
    """`GET http://other:1/api/x HTTP/1.1`: the upstream is the route's, and it gets the path alone."""
    (prod, *_), seen = upstreams
    client = await gateway(routes(url(prod)))
    assert client.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    token = TRUSTED["Authorization"]
    writer.write(
        f"GET http://127.0.0.1:1/api/x?y=1 HTTP/1.1\r\nHost: a\r\nAuthorization: {token}\r\n"
        "Connection: close\r\n\r\n".encode()
    )
    head = (await reader.read()).split(b"\r\n\r\n")[0].decode()
    writer.close()
    assert head.startswith("HTTP/1.1 200") and "X-Seen-Path: /api/x?y=1" in head and seen["prod"] == 1


async def test_a_websocket_is_relayed_both_ways_with_the_subprotocol(
    gateway: Gateway, upstreams: Any
) -> None:
    (prod, *_), seen = upstreams
    client = await gateway(routes(url(prod)))
    async with client.ws_connect("/api/ws", headers=TRUSTED, protocols=("chat",)) as ws:
        assert ws.protocol == "chat"
        for i in range(3):
            await ws.send_str(f"hello {i}")
            assert await ws.receive_str() == f"prod:hello {i}"
        await ws.send_bytes(b"\x00\x01\x02")
        assert await ws.receive_bytes() == b"\x02\x01\x00"
    assert seen["prod"] == 1


async def test_a_websocket_message_past_the_bound_closes_it_and_an_idle_one_is_closed(
    gateway: Gateway, upstreams: Any
) -> None:
    (prod, *_), _ = upstreams
    pool = {"ws_max_message_bytes": 1000, "ws_idle_timeout_s": 0.5}
    client = await gateway({**routes(url(prod)), "upstream_pool": pool})
    async with client.ws_connect("/api/ws", headers=TRUSTED) as ws:
        await ws.send_bytes(b"z" * 5000)
        message = await ws.receive(timeout=5)
        assert message.type is aiohttp.WSMsgType.CLOSE and message.data == 1009
    async with client.ws_connect("/api/ws", headers=TRUSTED) as ws:
        await ws.send_str("one")
        assert await ws.receive_str() == "prod:one"
        message = await ws.receive(timeout=5)  # nothing more either way for 0.5 s
        assert message.type is aiohttp.WSMsgType.CLOSE and message.data == 1001


async def test_a_websocket_skips_a_refusing_member_and_is_502_or_504_before_the_upgrade(
    gateway: Gateway, upstreams: Any
) -> None:
    (prod, *_), _ = upstreams
    dead = f"http://127.0.0.1:{closed_port()}"
    client = await gateway(routes([dead, url(prod)]))
    async with client.ws_connect("/api/ws", headers=TRUSTED) as ws:
        await ws.send_str("hi")
        assert await ws.receive_str() == "prod:hi"
    refusing = await gateway(routes(dead))
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await refusing.ws_connect("/api/ws", headers=TRUSTED)
    assert refused.value.status == 502
    held: list[asyncio.StreamWriter] = []

    async def accept_and_say_nothing(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    silent = await asyncio.start_server(accept_and_say_nothing, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    hanging = await gateway(routes(f"http://127.0.0.1:{port}", timeout_ms=300))
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as late:
            await hanging.ws_connect("/api/ws", headers=TRUSTED)
        assert late.value.status == 504
    finally:
        silent.close()
        for writer in held:
            writer.close()
            await writer.wait_closed()
        await silent.wait_closed()


async def test_rfc_7239_forwarded_is_appended_when_configured(gateway: Gateway, upstreams: Any) -> None:
    (prod, *_), _ = upstreams
    client = await gateway({**routes(url(prod)), "upstream_pool": {"forwarded": True}})
    response = await client.get("/api/x", headers={**TRUSTED, "Forwarded": "for=198.51.100.7"})
    line = response.headers["X-Seen-Headers"]  # name=value pairs joined by ";", as the upstream saw them
    assert 'Forwarded=for=198.51.100.7, for=127.0.0.1;host="127.0.0.1:' in line and ";proto=http" in line
    assert forwarded_element("2001:db8::1", "h", "https") == 'for="[2001:db8::1]";host="h";proto=https'


async def test_streamed_bodies_are_never_held_whole(gateway: Gateway, upstreams: Any) -> None:
    """Python allocations while 10 MB flow each way stay a small fraction of the body (tracemalloc peak:
    the test's own client and the upstream run in this process too, and hold at most one chunk each)."""
    (prod, *_), _ = upstreams
    client = await gateway(routes(url(prod), max_body_bytes=32 << 20))

    async def upload() -> Any:
        for _ in range(160):
            yield b"u" * 65536  # 10 MiB, never whole in this process either

    async def sink(response: aiohttp.ClientResponse) -> int:
        size = 0
        async for chunk in response.content.iter_chunked(65536):
            size += len(chunk)
        return size

    await (await client.get("/api/stream?chunks=1", headers=TRUSTED)).read()  # imports, pools: warm
    tracemalloc.start()
    try:
        down = await sink(await client.get("/api/stream?chunks=100", headers=TRUSTED))
        _, peak_down = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        response = await client.put("/api/discard", data=upload(), headers=TRUSTED)
        _, peak_up = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert down == 10_000_000 and response.status == 200 and await response.json() == {"read": 160 * 65536}
    assert peak_down < 3 << 20 and peak_up < 3 << 20, (peak_down, peak_up)


async def test_a_public_apis_new_anonymous_caller_is_served_and_the_gateways_refusals_are_not_its_failures(
    gateway: Gateway, upstreams: Any
) -> None:
    (prod, *_), seen = upstreams
    client = await gateway({**routes(url(prod)), "execution_mode": "hybrid"})  # no isolated target
    for _ in range(20):  # new and anonymous throughout its first ten: served by production all the same
        response = await client.get("/api/items?page=2")
        assert (response.status, response.headers["X-Upstream"]) == (200, "prod")
    attack = await client.get("/api/x?q=1%27%20UNION%20SELECT%20password%20FROM%20users--")
    assert (attack.status, (await attack.json())["error"]) == (403, "isolation_unavailable")
    expired = bearer("someone", exp=int(time.time()) - 60)  # a token run out: the gateway's refusal
    for _ in range(3):
        assert (await client.get("/api/items", headers=expired)).status == 401
    entity = client.app[GATEWAY].stats.entity("127.0.0.1")
    assert entity is not None and entity.as_api()["failedRequests"] == 0
    assert entity.history().failure_rate == 0.0 and seen["prod"] == 20


@pytest.mark.parametrize(
    ("authorization", "seen"),
    [
        (None, "caller's"),  # the default: forwarded, as documented
        ("forward", "caller's"),
        ("strip", None),
        ("file:upstream.key", "Authorization=Bearer upstream-credential"),
    ],
)
async def test_the_callers_authorization_is_forwarded_stripped_or_replaced_per_route(
    live: Any, upstreams: Any, authorization: str | None, seen: str | None
) -> None:
    (prod, *_), _ = upstreams
    route: dict[str, Any] = {"path": "/api/*", "upstream": url(prod)}
    if authorization is not None:
        route["authorization"] = authorization
    config = {**SHARED_BASE, "routes": [route], "risk": {"new_entity_requests": 0}}
    client, _ = await live(config, files_first={"upstream.key": "Bearer upstream-credential\n"})
    caller = bearer("alice")
    response = await client.get("/api/x", headers=caller)
    assert response.status == 200
    headers = response.headers["X-Seen-Headers"].split(";")
    found = [h for h in headers if h.lower().startswith("authorization=")]
    expected = {"caller's": f"Authorization={caller['Authorization']}", None: None}.get(seen, seen)
    assert found == ([expected] if expected else [])


async def test_a_credential_file_is_reloaded_and_never_shown(
    live: Any, upstreams: Any, caplog: pytest.LogCaptureFixture
) -> None:
    (prod, *_), _ = upstreams
    route = {"path": "/api/*", "upstream": url(prod), "authorization": "file:upstream.key"}
    config = {**SHARED_BASE, "routes": [route], "risk": {"new_entity_requests": 0}}
    client, files = await live(config, files_first={"upstream.key": "Bearer first-secret\n"})
    files.write_file("upstream.key", "Bearer second-secret\n")
    admin = bearer("ops", role="admin")
    assert (await client.post("/admin/reload", headers=admin)).status == 200
    response = await client.get("/api/x")
    assert "Authorization=Bearer second-secret" in response.headers["X-Seen-Headers"]
    stats = await (await client.get("/stats", headers=admin)).text()
    assert "secret" not in stats and "secret" not in caplog.text
    files.write_file("upstream.key", "line one\nline two\n")
    refused = await (await client.post("/admin/reload", headers=admin)).text()
    assert "routes[0].authorization" in refused and "line one" not in refused


@pytest.mark.parametrize("size", [1, 65_535, 65_536, 65_537, 300_000])
async def test_bodies_either_side_of_one_chunk_come_back_byte_for_byte(
    gateway: Gateway, upstreams: Any, size: int
) -> None:
    """An answer of one chunk or less is written with its head at once; a longer one is streamed: the same
    bytes and headers either way."""
    (prod, *_), _ = upstreams
    client = await gateway(routes(url(prod), max_body_bytes=1 << 20))
    sent = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    response = await client.post("/api/echo", data=sent, headers=TRUSTED)
    assert response.status == 201 and await response.read() == sent
    assert response.headers["Content-Length"] == str(size)
    assert response.headers.getall("Set-Cookie") == ["a=1", "b=2"]
