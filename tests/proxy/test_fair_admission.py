"""120 callers on a docker route with 2 containers, for real: every caller is served, in turn. Entry to the
container pool's queue used to be first come: callers that were refused at the wrong moments went a whole
run without an answer (25 of 120 in 60 s)."""

import asyncio
import time
from collections import Counter
from typing import Any

import aiohttp
import pytest

from conftest import Gateway, bearer

pytestmark = pytest.mark.docker

CALLERS, RUN_S = 120, 8.0


async def test_every_one_of_120_callers_on_a_small_pool_is_served(
    gateway: Gateway, docker_settings: dict[str, Any]
) -> None:
    docker = {**docker_settings, "warm_pool_size": 2, "max_containers": 2, "max_waiting": 8}
    client = await gateway(
        {
            "execution_mode": "docker",
            "docker": docker,
            "limits": {"execution": {"max_time_ms": 10_000}, "memory_check_interval_ms": 60000},
            "routes": [{"path": "/sleep", "handler": "sleep"}],
        }
    )
    served: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    first: dict[str, float] = {}
    started = time.monotonic()
    ends = started + RUN_S

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))  # a connection each: no
    url = str(client.make_url("/sleep?s=0.01"))  # client-side queue (the test client's pool holds 100)

    async def caller(i: int) -> None:
        who = f"caller-{i}"
        headers = bearer(who, trust="trusted" if i % 6 == 0 else "untrusted")  # 20 trusted, 100 not
        for _ in range(1000):  # bounded; ends with the run
            if time.monotonic() > ends:
                return
            async with session.get(url, headers=headers) as response:
                await response.read()
                statuses[response.status] += 1
                if response.status == 200:
                    served[who] += 1
                    first.setdefault(who, time.monotonic() - started)
                else:  # an honest client waits as told
                    await asyncio.sleep(float(response.headers.get("Retry-After", "1")))

    async with session:
        # A trusted caller keeps two requests going: its line gets two turns a round (trusted_weight)
        await asyncio.gather(*(caller(i) for i in range(CALLERS)), *(caller(i) for i in range(0, CALLERS, 6)))
    counts = [served[f"caller-{i}"] for i in range(CALLERS)]
    trusted = [counts[i] for i in range(0, CALLERS, 6)]
    others = [counts[i] for i in range(CALLERS) if i % 6]
    print(
        f"\n{CALLERS} callers, 2 containers, {RUN_S:.0f} s: answers per caller"
        f" min {min(counts)} max {max(counts)};"
        f" trusted mean {sum(trusted) / len(trusted):.1f}, others {sum(others) / len(others):.1f};"
        f" slowest first answer {max(first.values()):.1f} s; statuses {dict(statuses)}"
    )
    assert min(counts) >= 1, "a caller went the whole run without an answer"
    assert set(statuses) == {200}, statuses  # nobody refused: they waited their turn
    assert sum(trusted) / len(trusted) > 1.5 * sum(others) / len(others)  # two turns a round
    assert max(others) <= 2 * min(others)  # in turn: no caller far ahead of another
