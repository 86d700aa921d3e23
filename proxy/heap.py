"""Python's cyclic garbage collector, set for a server that runs for weeks.

What lives as long as the gateway (modules, the config, the CRS rules and their databases, caches) is
frozen out of the collector's passes once serving starts: a full collection no longer walks it (one took
~40 ms here, every few seconds under load, a pause every request in flight felt). The young generation is
collected every 10,000 net allocations instead of 700: fifty requests in flight hold ~2,500 young objects
(coroutines, requests, header maps), and every pass walked them all. bench/stages.py measured the
collector at 14.5-16.8 us of the event loop a request before, none after.

A frozen cycle that becomes garbage is not collected while frozen: after a reload, once the requests that
held the old config are done, everything is unfrozen, collected and frozen again (`keep_settled`: one
full collection on the event loop, tens of milliseconds, once a reload). A request that outlives that
grace keeps the old config's cycles until the next reload's settling.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Hashable

YOUNG_THRESHOLD = 10_000  # CPython's default: 700
CHECK_S = 5.0


def settle() -> None:
    """Collect everything (what an earlier settle froze included), then freeze what is left."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


async def keep_settled(version: Callable[[], Hashable], grace_s: float) -> None:
    """Tune the collector and settle now; settle again `grace_s` after `version()` changes (a reload)."""
    gc.set_threshold(YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    settle()
    settled = version()
    while True:
        await asyncio.sleep(CHECK_S)
        current = version()
        if current != settled:
            await asyncio.sleep(grace_s)  # the old config's requests are done by then
            settle()
            settled = current


def status() -> dict[str, object]:
    """The collector's figures for /stats: objects frozen, collections per generation so far."""
    return {
        "frozen_objects": gc.get_freeze_count(),
        "collections": [generation["collections"] for generation in gc.get_stats()],
        "young_threshold": gc.get_threshold()[0],
    }
