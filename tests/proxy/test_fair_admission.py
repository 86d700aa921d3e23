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

CALLERS, ANSWERS = 120, 4  # each untrusted caller asks until it has 4 answers; a trusted one, 8


# The turns are the admission queue's (proxy/admission.py), whatever runs the handler: under gVisor each
# request only takes longer (37 s of the gVisor pass, for the same order).
@pytest.mark.once
async def test_every_one_of_120_callers_on_a_small_pool_is_served_in_turn(
    gateway: Gateway, docker_settings: dict[str, Any]
) -> None:
    docker = {**docker_settings, "warm_pool_size": 2, "max_containers": 2, "max_waiting": 8}
    client = await gateway(
        {
            "execution_mode": "docker",
            "docker": docker,
            # A wait at the door may last half of this: longer than a round of 140 requests takes on 2
            # containers, even under gVisor on a loaded machine. No request times out; every one waits.
            "limits": {"execution": {"max_time_ms": 60_000}, "memory_check_interval_ms": 60000},
            "routes": [{"path": "/sleep", "handler": "sleep"}],
            "server": {"max_connections_per_ip": 1024},  # every caller connects from 127.0.0.1
        }
    )
    answered: dict[str, list[float]] = {f"caller-{i}": [] for i in range(CALLERS)}
    statuses: Counter[int] = Counter()
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))  # a connection each: no
    url = str(client.make_url("/sleep?s=0.01"))  # client-side queue (the test client's pool holds 100)

    async def connect() -> None:
        async with session.get(client.make_url("/healthz")) as response:
            await response.read()

    # The 140 connections are opened before the clock starts: opened at once, some wait for a SYN retry.
    await asyncio.gather(*(connect() for _ in range(CALLERS + CALLERS // 6)))
    started = time.monotonic()

    async def caller(i: int, wanted: int) -> None:
        who = f"caller-{i}"
        headers = bearer(who, trust="trusted" if i % 6 == 0 else "untrusted")  # 20 trusted, 100 not
        for _ in range(100):  # bounded
            if len(answered[who]) >= wanted or time.monotonic() - started > 120:
                return
            async with session.get(url, headers=headers) as response:
                await response.read()
                statuses[response.status] += 1
                if response.status == 200:
                    answered[who].append(time.monotonic() - started)
                else:  # an honest client waits as told
                    await asyncio.sleep(float(response.headers.get("Retry-After", "1")))

    async with session:
        # A trusted caller keeps two requests going: its line gets two turns a round (trusted_weight)
        trusted = [caller(i, 2 * ANSWERS) for i in range(0, CALLERS, 6) for _ in range(2)]
        await asyncio.gather(*(caller(i, ANSWERS) for i in range(CALLERS) if i % 6), *trusted)
    untrusted = [times for who, times in answered.items() if int(who.split("-")[1]) % 6]
    firsts = [times[0] for times in answered.values() if times]
    lasts = [times[ANSWERS - 1] for times in untrusted if len(times) >= ANSWERS]
    print(
        f"\n{CALLERS} callers, 2 containers: every first answer within {max(firsts):.1f} s, the first"
        f" {ANSWERS}th answer at {min(lasts):.1f} s, all done in {time.monotonic() - started:.1f} s;"
        f" {dict(statuses)}"
    )
    assert len(firsts) == CALLERS, "a caller went without an answer"
    assert set(statuses) == {200}, statuses  # nobody refused: they waited their turn
    assert len(lasts) == len(untrusted)
    # In turn: every caller had its first answer before any untrusted caller had its fourth.
    assert max(firsts) < min(lasts)
