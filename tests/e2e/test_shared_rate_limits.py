"""Rate limits shared by real gateway processes through a real redis-server on 127.0.0.1: exact under
concurrency, local counts (never a refusal, never a wait) while redis is down, shared again once back."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import aiohttp
from storeenv import Process, RedisServer

from conftest import bearer

LIMIT = {"name": "per-caller", "rate": "50/minute", "window": "moving"}


async def get(session: aiohttp.ClientSession, gateway: Process, who: str) -> int:
    async with session.get(f"{gateway.url}/echo", headers=bearer(who)) as response:
        await response.read()
        return response.status


async def health(session: aiohttp.ClientSession, gateway: Process) -> dict[str, object]:
    async with session.get(f"{gateway.url}/healthz") as response:
        assert response.status == 200  # degraded or not, the gateway stays in rotation
        found: dict[str, object] = await response.json()
        return found


async def test_two_gateways_count_one_limit_exactly_through_redis_and_fall_back_to_local_counts(
    tmp_path: Path,
) -> None:
    server = RedisServer()
    server.start()
    state = {"backend": "redis", "url": server.url}
    first, second = (Process(tmp_path, state, rate_limits=[LIMIT]) for _ in range(2))
    await asyncio.gather(first.start(), second.start())
    try:
        connector = aiohttp.TCPConnector(limit=100)
        async with aiohttp.ClientSession(connector=connector) as session:
            # 100 at once, half to each gateway, for one caller with 50 a minute: exactly 50 pass.
            answers = await asyncio.gather(
                *(get(session, (first, second)[i % 2], "ivan") for i in range(100))
            )
            assert Counter(answers) == {200: 50, 429: 50}
            assert (await get(session, first, "judy")) == 200  # another caller: its own count
            server.stop()  # the store goes away: limits count in each process, nothing is refused for it
            answers = [await get(session, first, "ivan") for _ in range(3)]
            assert answers == [200, 200, 200]  # this process's own count of ivan starts at nothing
            problems = (await health(session, first))["problems"]
            assert "rate-limit store unavailable: limits count in this process" in problems  # type: ignore[operator]
            server.start()  # back (empty: no persistence)
            for _ in range(60):  # bounded: redis is tried again after RETRY_S (5 s)
                if "problems" not in await health(session, first):
                    break
                await get(session, first, "kim")
                await asyncio.sleep(0.1)
            assert "problems" not in await health(session, first)
            answers = await asyncio.gather(*(get(session, (first, second)[i % 2], "leo") for i in range(60)))
            assert Counter(answers) == {200: 50, 429: 10}  # shared again
    finally:
        first.stop()
        second.stop()
        server.stop()


async def test_with_sqlite_each_worker_counts_its_own(tmp_path: Path) -> None:
    """What docs/operations.md says of `state.backend: sqlite`: no shared count, so two workers let a
    caller through up to twice the rate (the kernel spreads new connections between them)."""
    state = {"backend": "sqlite", "path": str(tmp_path / "state.db")}
    gateway = Process(tmp_path, state, rate_limits=[{**LIMIT, "rate": "10/minute"}], server={"workers": 2})
    await gateway.start()
    try:
        workers: set[int] = set()
        stats, admin = f"{gateway.url}/stats", bearer("ops", role="admin")
        for _ in range(200):  # bounded: /healthz answered as soon as one worker was up; wait for both
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
                async with session.get(stats, headers=admin) as response:
                    workers.add((await response.json())["worker"]["index"])
            if workers == {0, 1}:
                break
            await asyncio.sleep(0.05)
        assert workers == {0, 1}
        answers = []
        for _ in range(40):  # a new connection each: each may go to either worker
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
                answers.append(await get(session, gateway, "mia"))
        assert 10 < answers.count(200) <= 20 and answers.count(429) == 40 - answers.count(200)
    finally:
        gateway.stop()
