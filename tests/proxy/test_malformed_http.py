"""What aiohttp's HTTP parser refuses, and connection floods, against the gateway's real server
(`proxy.server.GatewayRunner` on loopback): JSON errors that echo nothing, one log line each, counted."""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
from aiohttp import web

from conftest import bearer, make_config, token
from proxy.app import create_app
from proxy.server import GatewayRunner

Served = Callable[..., Awaitable[int]]


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    """`port = await served({...overrides})`: the gateway behind its own runner on 127.0.0.1."""
    runners: list[GatewayRunner] = []

    async def start(overrides: dict[str, Any] | None = None) -> int:
        runner = GatewayRunner(create_app(make_config(overrides)), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return int(runner.addresses[0][1])

    yield start
    for runner in runners:
        await runner.cleanup()


async def exchange(port: int, data: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
    """Send raw bytes; (status, headers, JSON body) of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, orjson.loads(body)


SECRET_TOKEN = token("victim")
CASES = {
    "100 KB request line": (b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 431),
    "10,000 headers": (
        b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(10_000)) + b"\r\n",
        431,
    ),
    "a 50 KB bearer token": (
        b"GET / HTTP/1.1\r\nAuthorization: Bearer " + SECRET_TOKEN.encode() * 200 + b"\r\n\r\n",
        431,
    ),
    "Content-Length with Transfer-Encoding": (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    "bad chunk size": (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        400,
    ),
    "bad method": (b"G@T / HTTP/1.1\r\n\r\n", 400),
    "TLS on the HTTP port": (b"\x16\x03\x01\x00\xa5\x01\x00\x00", 400),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_a_request_the_parser_refuses_gets_a_json_error_that_echoes_nothing(
    served: Served, case: str
) -> None:
    data, status = CASES[case]
    port = await served()
    answer, headers, body = await exchange(port, data)
    assert answer == status and body["error"] in ("malformed_request", "header_fields_too_large")
    assert headers["Content-Type"].startswith("application/json") and headers["X-Request-Id"]
    text = orjson.dumps(body).decode()
    assert "aaaa" not in text and SECRET_TOKEN[:20] not in text and "G@T" not in text and len(text) < 300


async def test_malformed_requests_are_counted_and_logged_in_one_line_without_traceback(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    port = await served()
    with caplog.at_level(logging.DEBUG):
        for _ in range(50):
            await exchange(port, CASES["a 50 KB bearer token"][0])
    lines = [r for r in caplog.records if r.name.startswith(("isogate", "aiohttp"))]
    assert len(lines) == 50
    assert not [r for r in lines if r.exc_info or r.levelno >= logging.ERROR]
    assert orjson.loads(lines[0].getMessage())["status"] == 431  # a line of text, not a bytes repr
    assert SECRET_TOKEN[:20] not in caplog.text
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    admin = bearer("ops", role="admin")["Authorization"]
    writer.write(
        f"GET /stats HTTP/1.1\r\nHost: x\r\nAuthorization: {admin}\r\nConnection: close\r\n\r\n".encode()
    )
    raw = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    requests = orjson.loads(raw.partition(b"\r\n\r\n")[2])["requests"]
    assert requests["malformed"] == 50 and requests["by_status"]["4xx"] == 50


async def test_connections_per_address_are_capped_and_freed_on_close(served: Served) -> None:
    port = await served({"server": {"max_connections_per_ip": 3}})
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
    status, headers, body = await exchange(port, b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (status, body["error"], headers["Retry-After"]) == (503, "too_many_connections", "1")
    assert "max_connections_per_ip (3)" in body["detail"]
    _, writer = held.pop()
    writer.close()
    await writer.wait_closed()
    await asyncio.sleep(0.1)
    status, _, _ = await exchange(port, b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 200
    for _, writer in held:
        writer.close()


HEAD = b"GET /echo HTTP/1.1\r\nHost: x\r\n"
QUICK = {"header_timeout_s": 1.0}


async def trickling(port: int, source: str = "127.0.0.1") -> tuple[asyncio.Task[bytes], asyncio.StreamWriter]:
    """A connection that sends a request line, then a header line every 0.2 s (for at most 20 s) and never
    ends its headers: the task's result is what the gateway answered before closing it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    writer.write(HEAD)

    async def drip() -> bytes:
        for i in range(100):
            try:
                return await asyncio.wait_for(reader.read(), 0.2)
            except TimeoutError:
                writer.write(b"X-Drip-%d: 1\r\n" % i)
        return b"never closed"

    return asyncio.create_task(drip()), writer


async def test_slow_headers_hold_an_address_cap_no_longer_than_the_header_deadline(served: Served) -> None:
    port = await served({"server": {**QUICK, "max_connections_per_ip": 8}})
    drips = [await trickling(port) for _ in range(8)]
    status, _, body = await exchange(port, HEAD + b"\r\n")
    assert (status, body["error"]) == (503, "too_many_connections")  # held, for now
    answers = await asyncio.wait_for(asyncio.gather(*(task for task, _ in drips)), 5)
    for answer in answers:  # each closed at its deadline with a 408 naming it
        assert answer.startswith(b"HTTP/1.1 408") and b'"header_timeout"' in answer, answer[:80]
        assert b"server.header_timeout_s (1.0 s)" in answer
    status, _, _ = await exchange(port, HEAD + b"Connection: close\r\n\r\n")
    assert status == 200
    for _, writer in drips:
        writer.close()


async def test_slow_headers_from_many_addresses_hold_the_total_cap_no_longer(served: Served) -> None:
    port = await served({"server": {**QUICK, "max_connections": 16}})
    drips = [await trickling(port, f"127.0.0.{i}") for i in range(2, 18)]  # loopback source addresses
    status, _, body = await exchange(port, HEAD + b"\r\n")
    assert (status, body["error"]) == (503, "too_many_connections")
    assert "server.max_connections (16)" in body["detail"]
    await asyncio.wait_for(asyncio.gather(*(task for task, _ in drips)), 5)
    status, _, _ = await exchange(port, HEAD + b"Connection: close\r\n\r\n")
    assert status == 200
    for _, writer in drips:
        writer.close()


async def test_a_silent_connection_is_closed_at_the_header_deadline_without_an_answer(served: Served) -> None:
    port = await served({"server": QUICK})
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


async def test_headers_sent_slowly_but_within_the_deadline_are_served(served: Served) -> None:
    port = await served({"server": QUICK})
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for piece in (b"GET /echo HT", b"TP/1.1\r\nHost: x\r\n", b"Connection: close\r\n\r\n"):
        writer.write(piece)
        await asyncio.sleep(0.25)
    assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 200")
    writer.close()


async def keep_alive(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection that made one request, read its answer, and stays open for the next."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(HEAD + b"\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = int(
        next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")).split(b":")[
            1
        ]
    )
    await reader.readexactly(length)
    return reader, writer


async def test_an_idle_kept_alive_connection_makes_room_at_the_cap(served: Served) -> None:
    port = await served({"server": {"max_connections_per_ip": 3}})
    idle = [await keep_alive(port) for _ in range(3)]
    status, _, _ = await exchange(port, HEAD + b"Connection: close\r\n\r\n")
    assert status == 200  # one idle connection was closed for it: closing one loses nothing
    closed = [await asyncio.wait_for(reader.read(), 0.5) == b"" for reader, _ in idle[:1]]
    assert closed == [True]  # the oldest idle one went
    for _, writer in idle:
        writer.close()


async def test_a_kept_alive_connection_is_closed_after_the_idle_timeout(served: Served) -> None:
    port = await served({"server": {"idle_timeout_s": 0.5}})
    reader, writer = await keep_alive(port)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


@pytest.mark.parametrize(
    "request_head",
    [
        b"GET /echo?q=%uD800%27+union+select+1 HTTP/1.1\r\n",  # decodes to a lone surrogate
        b"GET /echo/%25uD800 HTTP/1.1\r\n",  # the path, escaped twice
        b"GET /echo HTTP/1.1\r\nX-Note: caf\xe9 \xff union select 1\r\n",  # not UTF-8: surrogateescape
        b"GET /echo HTTP/1.1\r\nCookie: c=\\uD800%27\r\n",
    ],
)
async def test_bytes_that_are_no_characters_are_scored_not_a_500(served: Served, request_head: bytes) -> None:
    port = await served({"routes": [{"path": "/*", "handler": "echo"}]})
    user = bearer("u")["Authorization"].encode()
    status, _, body = await exchange(
        port, request_head + b"Host: x\r\nAuthorization: " + user + b"\r\nConnection: close\r\n\r\n"
    )
    assert status in (200, 403), body  # scored and answered: never internal_error
