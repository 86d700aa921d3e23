"""Slow and vanishing clients, for real over loopback sockets: a body has a deadline and a minimum rate,
and a client that disconnects mid-body is recorded as 499 with no traceback and no failure charged."""

import asyncio
import logging

import pytest

from conftest import Client, Gateway, bearer

SLOW = {"server": {"body_timeout_s": 1.5, "body_grace_s": 0.3, "min_body_rate": 200}}


async def raw(client: Client, head: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    writer.write(head)
    await writer.drain()
    return reader, writer


def post(length: int, token: str = "") -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return f"POST /echo HTTP/1.1\r\nHost: t\r\n{auth}Content-Length: {length}\r\n\r\n".encode()


async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, piece: bytes) -> bytes:
    """Send `piece` every 0.1 s (at most 5 s) until the gateway answers; the answer's head and body."""
    try:
        for _ in range(50):
            try:
                return await asyncio.wait_for(reader.read(4096), 0.1)
            except TimeoutError:
                writer.write(piece)
                await writer.drain()
        raise AssertionError("the gateway never answered the slow body")
    finally:
        writer.close()


async def test_a_body_trickling_below_the_minimum_rate_gets_408(gateway: Gateway) -> None:
    client = await gateway(SLOW)
    reader, writer = await raw(client, post(10_000))
    answer = await trickle(reader, writer, b"x")  # 1 byte every 0.1 s: 10 B/s against a 200 B/s minimum
    assert answer.startswith(b"HTTP/1.1 408") and b'"body_timeout"' in answer


async def test_a_body_at_a_fair_rate_but_past_the_total_deadline_gets_408(gateway: Gateway) -> None:
    client = await gateway(SLOW)
    reader, writer = await raw(client, post(100_000))
    answer = await trickle(reader, writer, b"y" * 50)  # 500 B/s: above the rate, but 100 KB takes 200 s
    assert answer.startswith(b"HTTP/1.1 408") and b"body_timeout_s" in answer


async def test_a_body_that_arrives_in_time_is_served(gateway: Gateway) -> None:
    client = await gateway(SLOW)
    reader, writer = await raw(client, post(600))
    for _ in range(3):
        writer.write(b"z" * 200)
        await writer.drain()
        await asyncio.sleep(0.1)
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200")


async def test_a_client_gone_mid_body_is_a_499_without_traceback_or_failure(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    client = await gateway({})
    caller = bearer("leaver")["Authorization"].split()[1]
    for _ in range(3):
        _, writer = await raw(client, post(1000, caller) + b"partial")
        await asyncio.sleep(0.1)
        writer.close()
    with caplog.at_level(logging.INFO):
        for _ in range(50):
            stats = await (await client.get("/api/stats", headers=bearer("leaver"))).json()
            if stats["stats"]["totalRequests"] >= 3:
                break
            await asyncio.sleep(0.05)
    assert stats["stats"]["totalRequests"] == 3 and stats["stats"]["failedRequests"] == 0
    admin = await (await client.get("/stats", headers=bearer("ops", role="admin"))).json()
    assert admin["requests"]["by_status"].get("4xx") == 3
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
