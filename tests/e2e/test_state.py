"""Entity history that survives the gateway and is shared between gateways: real gateway processes, a real
SQLite file, a real redis-server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import aiohttp
from storeenv import Process, RedisServer, redis_server

from conftest import bearer
from proxy.store.redis import RedisStore

BIG = b"x" * 2048  # over server.max_body_bytes: a 413, which is charged to the caller as a failure


async def send(session: aiohttp.ClientSession, gateway: Process, who: str, body: bytes = b"") -> str:
    """One request as `who`; the risk factors it was scored with."""
    async with session.post(f"{gateway.url}/echo", data=body, headers=bearer(who)) as response:
        assert response.status in (200, 413), await response.text()
        return response.headers.get("X-Isogate-Factors", "")


async def figures(session: aiohttp.ClientSession, gateway: Process, who: str) -> tuple[int, int]:
    async with session.get(f"{gateway.url}/api/stats", headers=bearer(who)) as response:
        stats = (await response.json())["stats"]
        return stats["totalRequests"], stats["failedRequests"]


async def admin_stats(session: aiohttp.ClientSession, gateway: Process) -> dict[str, Any]:
    async with session.get(f"{gateway.url}/stats", headers=bearer("ops", role="admin")) as response:
        assert response.status == 200
        found: dict[str, Any] = await response.json()
        return found


async def totals(session: aiohttp.ClientSession, gateway: Process) -> dict[str, Any]:
    requests: dict[str, Any] = (await admin_stats(session, gateway))["requests"]
    return requests


async def test_history_survives_sigterm_and_kill_9_within_the_flush_window(tmp_path: Path) -> None:
    gateway = Process(tmp_path, {"backend": "sqlite", "flush_ms": 200})
    await gateway.start()
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(9):
                await send(session, gateway, "alice")
            for _ in range(4):
                await send(session, gateway, "alice", BIG)
            assert "failure_rate" in await send(session, gateway, "alice")  # 4 of 13 failed
            before = await totals(session, gateway)
            gateway.stop(signal.SIGTERM)  # drains: nothing is lost
            await gateway.start()
            assert await figures(session, gateway, "alice") == (14, 4)
            after = await totals(session, gateway)  # the gateway-wide counters continue too
            assert after["total"] == before["total"] >= 14 and after["by_mode"] == before["by_mode"]
            factors = await send(session, gateway, "alice")  # known from the first request after a restart
            assert "new_entity" not in factors and "failure_rate" in factors
            await asyncio.sleep(1.0)  # past state.flush_ms: written
            gateway.stop(signal.SIGKILL)  # no goodbye
            await gateway.start()
            assert await figures(session, gateway, "alice") == (15, 4)
            config = (await admin_stats(session, gateway))["config"]  # generations go on across restarts
            assert config["generation"] == 3
            assert [(r["generation"], r["trigger"]) for r in config["reloads"]] == [
                (2, "start"),
                (3, "start"),
            ]
    finally:
        gateway.stop()
    assert (tmp_path / "isogate-state.db").exists()  # beside the config


async def test_two_gateways_share_history_through_redis_and_survive_its_outage(tmp_path: Path) -> None:
    server = RedisServer()
    server.start()
    state = {"backend": "redis", "url": server.url, "flush_ms": 100}
    first, second = Process(tmp_path, state), Process(tmp_path, state)
    await asyncio.gather(first.start(), second.start())
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(12):
                await send(session, first, "mallory", BIG)  # failures seen by the first gateway...
            await asyncio.sleep(0.5)
            factors = ""
            for _ in range(30):  # ...raise mallory's score on the second (read once it is asked for)
                factors = await send(session, second, "mallory")
                if "failure_rate" in factors:
                    break
                await asyncio.sleep(0.1)
            assert "failure_rate" in factors and "new_entity" not in factors
            server.stop()  # the store goes away mid-traffic: every request is still served
            for _ in range(20):
                await send(session, first, "trudy")
            for _ in range(50):  # bounded: the next sync (every 100 ms) finds it gone
                async with session.get(f"{first.url}/healthz") as response:
                    health = await response.json()
                if not health["state"]["available"]:
                    break
                await asyncio.sleep(0.1)
            assert response.status == 200 and health["state"] == {"backend": "redis", "available": False}
            server.start()  # back (empty: no persistence): what was kept meanwhile is written
            store = RedisStore(server.url, "isogate:")
            await store.open()
            try:
                for _ in range(50):  # bounded: caught up within 5 s
                    held = await store.fetch(["trudy"])
                    if held and held["trudy"].total == 20:
                        break
                    await asyncio.sleep(0.1)
                assert held["trudy"].total == 20
            finally:
                await store.aclose()
    finally:
        first.stop()
        second.stop()
        server.stop()


async def test_a_gateway_starts_and_serves_when_its_store_is_down(tmp_path: Path) -> None:
    with redis_server() as gone:
        url = gone.url
    gateway = Process(tmp_path, {"backend": "redis", "url": url, "flush_ms": 100})
    await gateway.start()
    try:
        async with aiohttp.ClientSession() as session:
            await send(session, gateway, "eve")
            async with session.get(f"{gateway.url}/healthz") as response:
                assert response.status == 200 and (await response.json())["state"]["available"] is False
    finally:
        gateway.stop()
