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
