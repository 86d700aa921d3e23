"""The entity state stores, for real: a SQLite file and a redis-server on 127.0.0.1. What one gateway adds is
added to what another added (nothing overwritten), the window keeps the newest outcomes, and the most
recently seen entities come back first."""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from storeenv import redis_server

from conftest import bearer
from proxy.stats import EntityStats, Outcome
from proxy.store.base import Store, StoreUnavailable
from proxy.store.redis import RedisStore
from proxy.store.sqlite import SqliteStore

WINDOW = 5


def figures(*statuses: int, violations: int = 0) -> EntityStats:
    made = EntityStats()
    for status in statuses:
        made.add(Outcome("e", status, "thread", "low", 1.0, 2.0), WINDOW)
    made.violations = violations
    return made


@pytest.fixture(params=["sqlite", "redis"])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Callable[[], Store]]:
    """Makes stores that share one backing store, as gateways would."""
    made: list[Store] = []
    if request.param == "sqlite":

        def make() -> Store:
            made.append(SqliteStore(tmp_path / "state.db"))
            return made[-1]

        yield make
    else:
        with redis_server() as server:

            def make() -> Store:
                made.append(RedisStore(server.url, "test:"))
                return made[-1]

            yield make
    for store in made:
        await store.aclose()


def view(found: EntityStats) -> tuple[int, int, int, int, int, int]:
    return found.total, found.failed, found.violations, found.recent, found.recent_bits, found.executed


async def test_updates_add_up_and_the_window_keeps_the_newest(stores: Callable[[], Store]) -> None:
    store = stores()
    await store.open()
    assert await store.fetch(["alice"]) == {}
    await store.add({"alice": figures(200, 500, 200), "bob": figures(403)}, WINDOW)
    await store.add({"alice": figures(500, 500, 500, violations=1)}, WINDOW)
    found = await store.fetch(["alice", "bob", "nobody"])
    # alice: 6 outcomes (200 500 200 500 500 500), the window keeps the newest 5 -> bits 10111
    assert view(found["alice"]) == (6, 4, 1, 5, 0b10111, 6)
    assert view(found["bob"]) == (1, 1, 0, 1, 0b1, 1) and "nobody" not in found
    assert found["alice"].exec_ms_total == pytest.approx(12.0)


async def test_two_gateways_adding_at_once_lose_nothing(stores: Callable[[], Store]) -> None:
    first, second = stores(), stores()
    await asyncio.gather(first.open(), second.open())
    for _ in range(20):  # bounded: 40 batches, interleaved
        await asyncio.gather(
            first.add({"carol": figures(200, 500)}, WINDOW), second.add({"carol": figures(200)}, WINDOW)
        )
    found = (await first.fetch(["carol"]))["carol"]
    assert (found.total, found.failed, found.recent) == (60, 20, WINDOW)


async def test_gateway_counters_add_up_per_gateway(stores: Callable[[], Store]) -> None:
    first, second = stores(), stores()
    await asyncio.gather(first.open(), second.open())
    assert await first.counters("gw-a") == {}
    for _ in range(10):  # bounded: two writers adding to one gateway's counters at once
        await asyncio.gather(
            first.add_counters("gw-a", {"total": 2, "mode:thread": 1}),
            second.add_counters("gw-a", {"total": 1, "status:5xx": 1}),
        )
    await first.add_counters("gw-b", {"total": 7})
    assert await second.counters("gw-a") == {"total": 30, "mode:thread": 10, "status:5xx": 10}
    assert await first.counters("gw-b") == {"total": 7}


async def test_a_document_is_replaced_whole_per_gateway(stores: Callable[[], Store]) -> None:
    store = stores()
    await store.open()
    assert await store.document("gw-a", "reloads") is None
    await store.save_document("gw-a", "reloads", '{"generation": 2}')
    await store.save_document("gw-a", "reloads", '{"generation": 3}')
    await store.save_document("gw-b", "reloads", "{}")
    assert await store.document("gw-a", "reloads") == '{"generation": 3}'


def test_a_reload_history_resumes_and_a_broken_one_is_ignored() -> None:
    from conftest import make_config
    from proxy.live import LiveConfig

    live = LiveConfig(make_config({}), {})
    live.resume({"generation": 4, "reloads": [{"generation": 4, "trigger": "SIGHUP"}, "junk"]})
    assert live.generation == 5
    assert [r["trigger"] for r in live.reloads] == ["SIGHUP", "start"]
    for broken in ({"generation": "4", "reloads": []}, {"generation": 4, "reloads": "x"}, {}):
        fresh = LiveConfig(make_config({}), {})
        fresh.resume(broken)
        assert (fresh.generation, list(fresh.reloads)) == (1, [])


def test_stats_counters_restore_into_the_same_shape() -> None:
    from policy.config import StatsConfig
    from proxy.stats import Outcome, Stats

    stats = Stats(StatsConfig(), 5)
    stats.record(Outcome("alice", 200, "thread", "low", 1.0))
    stats.record(Outcome("bob", 503, "docker", "high", 2.0))
    stats.violation("bob")
    stats.refused(400)
    again = Stats(StatsConfig(), 5)
    again.restore(stats.counters())
    assert again.counters() == stats.counters()
    assert again.snapshot()["requests"] == stats.snapshot()["requests"]


async def test_the_sqlite_file_is_its_owners_only(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    await store.open()
    await store.aclose()
    assert (tmp_path / "state.db").stat().st_mode & 0o777 == 0o600  # the callers' ids and histories


async def test_the_most_recently_seen_come_back_oldest_first(stores: Callable[[], Store]) -> None:
    store = stores()
    await store.open()
    for name in ("a", "b", "c", "d"):
        await store.add({name: figures(200)}, WINDOW)
        await asyncio.sleep(0.01)
    await store.add({"b": figures(200)}, WINDOW)
    assert list(await store.recent(3)) == ["c", "d", "b"]


async def test_an_unreachable_store_says_so() -> None:
    with redis_server() as server:
        url = server.url
    store = RedisStore(url, "test:")  # its server is gone
    with pytest.raises(StoreUnavailable, match="redis"):
        await store.open()
    locked = SqliteStore(Path("/proc/isogate-cannot-be-here.db"))
    with pytest.raises(StoreUnavailable):
        await locked.open()
    await locked.aclose()


async def test_entities_not_seen_for_long_are_forgotten(stores: Callable[[], Store]) -> None:
    store = stores()
    await store.open()
    await store.add({"old": figures(200)}, WINDOW)
    await asyncio.sleep(0.05)
    cutoff = time.time()
    await store.add({"new": figures(200)}, WINDOW)
    assert await store.forget(cutoff) == 1 and await store.forget(cutoff) == 0
    assert list(await store.recent(10)) == ["new"]


async def test_redis_hashes_expire_after_the_configured_time() -> None:
    with redis_server() as server:
        store = RedisStore(server.url, "ttl:", keep_s=3600)
        await store.open()
        try:
            await store.add({"zed": figures(500)}, WINDOW)
            client = store._connected()
            assert 3500 < await client.ttl("ttl:e:zed") <= 3600
        finally:
            await store.aclose()


async def test_workers_opening_a_new_sqlite_file_together_all_succeed(tmp_path: Path) -> None:
    """Switching a new file to WAL does not wait on a busy file (seen once in CI as 'database is locked')."""
    for attempt in range(20):  # bounded: 20 new files, 4 openers each
        stores = [SqliteStore(tmp_path / f"race-{attempt}.db") for _ in range(4)]
        try:
            await asyncio.gather(*(store.open() for store in stores))
        finally:
            for store in stores:
                await store.aclose()


async def test_the_wal_stays_bounded_under_steady_writes(tmp_path: Path) -> None:
    """SQLite's own checkpoint (at 1,000 pages) leaves the WAL at its largest size: 4 MB and more, which
    filled a 1 MiB filesystem in 2 s. Here it is checkpointed and truncated past WAL_LIMIT_BYTES."""
    from proxy.store.sqlite import WAL_LIMIT_BYTES

    store = SqliteStore(tmp_path / "state.db")
    await store.open()
    wal = tmp_path / "state.db-wal"
    largest = 0
    try:
        for batch in range(120):  # 120 batches of 200 callers with 200-character names: ~10 MB written
            await store.add({f"{batch}-{i}-".ljust(200, "x"): figures(200) for i in range(200)}, WINDOW)
            largest = max(largest, wal.stat().st_size if wal.exists() else 0)
    finally:
        await store.aclose()
    assert 0 < largest <= WAL_LIMIT_BYTES * 1.5, largest


DISK_FULL = re.compile(r"database or disk is full|disk I/O error")


@pytest.fixture
def tiny_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A 160 KiB tmpfs (root: make test runs as root), unmounted after."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


async def test_a_full_disk_is_named_reported_degraded_and_the_loss_logged(
    gateway: Any, tiny_filesystem: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = {"backend": "sqlite", "path": str(tiny_filesystem / "state.db"), "flush_ms": 20}
    client = await gateway({"state": state, "routes": [{"path": "/echo", "handler": "echo"}]})
    admin = bearer("ops", role="admin")
    for i in range(2000):  # bounded: long names fill 160 KiB within a few hundred callers
        response = await client.get("/echo", headers=bearer(f"caller-{i}-".ljust(250, "x")))
        assert response.status == 200  # requests never wait for, or fail with, the store
        if i % 50 == 49:
            await asyncio.sleep(0.1)  # a few syncs
            if not (await (await client.get("/stats", headers=admin)).json())["state"]["available"]:
                break
    stats = (await (await client.get("/stats", headers=admin)).json())["state"]
    # SQLite's own words: "database or disk is full" (or "disk I/O error" when the WAL could not grow),
    # never the failed ROLLBACK's "cannot rollback - no transaction is active" that hid them.
    assert stats["available"] is False and DISK_FULL.search(stats["reason"]), stats
    assert "cannot rollback" not in stats["reason"]
    health = await client.get("/healthz")
    body = await health.json()
    assert health.status == 200 and body["status"] == "degraded"  # it serves on from its own table
    assert "entity state store sqlite unavailable (details in /stats)" in body["problems"]
    assert "disk" not in str(body)  # anyone may ask: what, not why
    with caplog.at_level(logging.WARNING, logger="isogate.state"):
        await client.close()  # shutdown: what could not be written is said
    lost = [r.getMessage() for r in caplog.records if "not written at shutdown" in r.getMessage()]
    assert lost and DISK_FULL.search(lost[0]), caplog.text
