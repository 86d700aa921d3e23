"""The replica agent (pool.relay) run as the container runs it, `python3 -c BOOTSTRAP ...`, in front of a real
aiohttp app on 127.0.0.1: frames in, the app's answer out as it made it; stale keep-alive connections,
over-large answers and a dead app handled."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from ports import free_port

from pool import relay
from pool.frames import PING, PREFIX, decode, encode

MAX_RESPONSE = 64 * 1024


def app(seen: list[web.Request]) -> web.Application:
    async def echo(request: web.Request) -> web.StreamResponse:
        seen.append(request)
        body = await request.read()
        response = web.Response(body=body or b"empty", content_type="application/octet-stream", status=201)
        response.headers.add("Set-Cookie", "a=1")
        response.headers.add("Set-Cookie", "b=2")
        response.headers["X-Target"] = request.raw_path
        response.headers["X-Name"] = request.headers.get("X-Name", "")
        return response

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for i in range(5):
            await response.write(bytes([i]) * 1000)
        await response.write_eof()
        return response

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * (MAX_RESPONSE + 1))

    application = web.Application()
    application.router.add_get("/chunked", chunked)
    application.router.add_get("/big", big)
    application.router.add_route("*", "/{tail:.*}", echo)
    return application


class Agent:
    """The relay as a child process: frames written to its stdin, read back from its stdout."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def frame(self) -> tuple[dict[str, Any], bytes]:
        assert self.process.stdout is not None
        prefix = await self.process.stdout.readexactly(PREFIX.size)
        head, body = PREFIX.unpack(prefix)
        frame = decode(bytearray(prefix + await self.process.stdout.readexactly(head + body)))
        assert frame is not None
        return frame

    async def ask(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes = b""
    ) -> tuple[dict[str, Any], bytes]:
        assert self.process.stdin is not None
        header = {"method": method, "path": target, "query": [], "headers": headers, "entity_id": "e"}
        self.process.stdin.write(encode(header, body))
        ack, _ = await asyncio.wait_for(self.frame(), 10)  # read whole, before the app is asked
        assert ack == {"ack": True}
        return await asyncio.wait_for(self.frame(), 10)

    async def ping(self) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(encode(PING))
        header, _ = await asyncio.wait_for(self.frame(), 10)
        return header


@pytest.fixture
async def served() -> AsyncIterator[tuple[Agent, list[web.Request], web.AppRunner]]:
    """The relay started before its app listens (it must wait), then the app on that port."""
    port, seen = free_port(), []
    command = relay.command(port, MAX_RESPONSE)
    process = await asyncio.create_subprocess_exec(
        sys.executable, *command[1:], stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    runner = web.AppRunner(app(seen), keepalive_timeout=0.2)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    agent = Agent(process)
    ready, _ = await asyncio.wait_for(agent.frame(), 10)
    assert ready["ready"] is True
    yield agent, seen, runner
    assert process.stdin is not None
    process.stdin.close()
    await asyncio.wait_for(process.wait(), 10)  # stdin closed: the relay exits by itself
    await runner.cleanup()


async def test_the_apps_answer_comes_back_as_it_made_it(served: Any) -> None:
    agent, seen, _ = served
    headers = [("Host", "api.example"), ("X-Forwarded-For", "203.0.113.9"), ("Content-Length", "4")]
    headers.append(("X-Name", "café"))  # UTF-8 both ways, as aiohttp reads and writes it
    header, body = await agent.ask("POST", "/a/b%2Fc?x=1&x=2", headers, b"\x00\xffok")
    assert (header["status"], body) == (201, b"\x00\xffok")
    assert [v for k, v in header["headers"] if k == "Set-Cookie"] == ["a=1", "b=2"]
    assert dict(header["headers"])["X-Target"] == "/a/b%2Fc?x=1&x=2"
    assert dict(header["headers"])["X-Name"] == "café" and seen[-1].headers["X-Name"] == "café"
    assert seen[-1].headers["Host"] == "api.example" and seen[-1].headers["X-Forwarded-For"] == "203.0.113.9"
    header, body = await agent.ask("GET", "/chunked", [("Host", "h")])
    assert body == b"".join(bytes([i]) * 1000 for i in range(5))
    header, body = await agent.ask("HEAD", "/x", [("Host", "h")])
    assert (header["status"], body, dict(header["headers"])["Content-Length"]) == (201, b"", "5")


async def test_a_ping_is_answered_without_asking_the_app(served: Any) -> None:
    agent, seen, _ = served
    assert await agent.ping() == {"pong": True}
    assert seen == []


async def test_a_connection_the_app_closed_while_idle_is_replaced(served: Any) -> None:
    agent, seen, _ = served
    assert (await agent.ask("GET", "/one", [("Host", "h")]))[0]["status"] == 201
    await asyncio.sleep(0.5)  # past the app's keep-alive timeout: it closes the idle connection
    assert (await agent.ask("GET", "/two", [("Host", "h")]))[0]["status"] == 201
    assert [r.path for r in seen] == ["/one", "/two"]


async def test_an_answer_over_the_limit_and_a_dead_app_are_error_frames(served: Any) -> None:
    agent, _, runner = served
    header, body = await agent.ask("GET", "/big", [("Host", "h")])
    assert header["error"] == "too_large" and body == b""
    assert (await agent.ask("GET", "/after", [("Host", "h")]))[0]["status"] == 201  # a new connection
    await runner.cleanup()  # the app is gone
    header, _ = await agent.ask("GET", "/gone", [("Host", "h")])
    assert header["error"] == "crashed"
