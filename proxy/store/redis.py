"""`state.backend: redis`: history shared by gateways on several machines. An entity is one hash (counts and
its recent outcomes as a string of 0/1, oldest first); a sorted set orders entities by when they were last
seen. Updates are added by a Lua script, so two gateways' additions to one entity never interleave."""

from __future__ import annotations

import time
from collections.abc import Iterable

from redis import asyncio as aioredis
from redis.exceptions import RedisError

from proxy.stats import EntityStats
from proxy.store.base import StoreUnavailable

TIMEOUT_S = 1.0  # per command and per connection attempt: a store gone quiet stalls nothing for long
FIELDS = ("total", "failed", "executed", "exec_ms", "violations", "recent")
ADD = """
redis.call('HINCRBY', KEYS[1], 'total', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'failed', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'executed', ARGV[3])
redis.call('HINCRBYFLOAT', KEYS[1], 'exec_ms', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'violations', ARGV[5])
local recent = (redis.call('HGET', KEYS[1], 'recent') or '') .. ARGV[6]
local window = tonumber(ARGV[7])
if #recent > window then recent = string.sub(recent, -window) end
redis.call('HSET', KEYS[1], 'recent', recent)
redis.call('ZADD', KEYS[2], ARGV[8], ARGV[9])
if tonumber(ARGV[10]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[10]) end
"""


class RedisStore:
    name = "redis"

    def __init__(self, url: str, prefix: str, keep_s: int = 0) -> None:
        self.url, self.prefix = url, prefix
        self.keep_s = keep_s  # an entity's hash expires this long after its last update (0: never)
        self._client: aioredis.Redis | None = None

    def _key(self, entity: str) -> str:
        return f"{self.prefix}e:{entity}"

    @property
    def _seen(self) -> str:
        return f"{self.prefix}seen"

    def _connected(self) -> aioredis.Redis:
        if self._client is None:
            raise StoreUnavailable(f"{self.url} is not open")
        return self._client

    async def open(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        client = aioredis.Redis.from_url(
            self.url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S, decode_responses=True
        )
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            await client.aclose()
            raise StoreUnavailable(f"redis: {exc}") from exc
        self._client = client

    async def fetch(self, entities: Iterable[str]) -> dict[str, EntityStats]:
        wanted = list(entities)
        try:
            async with self._connected().pipeline(transaction=False) as pipe:
                for entity in wanted:
                    pipe.hmget(self._key(entity), FIELDS)
                rows = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        return {entity: _figures(row) for entity, row in zip(wanted, rows, strict=True) if row[0] is not None}

    async def recent(self, limit: int) -> dict[str, EntityStats]:
        try:
            newest = await self._connected().zrevrange(self._seen, 0, limit - 1)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        return await self.fetch(str(entity) for entity in reversed(newest))  # oldest first: LRU order

    async def add(self, updates: dict[str, EntityStats], window: int) -> None:
        client = self._connected()
        now = time.time()
        try:
            script = client.register_script(ADD)
            async with client.pipeline(transaction=False) as pipe:
                for entity, update in updates.items():
                    outcomes = format(update.recent_bits, f"0{update.recent}b") if update.recent else ""
                    args: list[str | int | float] = [update.total, update.failed, update.executed]
                    args += [update.exec_ms_total]
                    args += [update.violations, outcomes, window, now, entity, self.keep_s]
                    await script(keys=[self._key(entity), self._seen], args=args, client=pipe)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc

    async def add_counters(self, gateway: str, counts: dict[str, int]) -> None:
        try:
            async with self._connected().pipeline(transaction=True) as pipe:
                for name, value in counts.items():
                    pipe.hincrby(f"{self.prefix}counters:{gateway}", name, value)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc

    async def counters(self, gateway: str) -> dict[str, int]:
        try:
            found = await self._connected().hgetall(f"{self.prefix}counters:{gateway}")
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        return {str(name): int(value) for name, value in found.items()}

    async def save_document(self, gateway: str, name: str, text: str) -> None:
        try:
            await self._connected().set(f"{self.prefix}{name}:{gateway}", text)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc

    async def document(self, gateway: str, name: str) -> str | None:
        try:
            found = await self._connected().get(f"{self.prefix}{name}:{gateway}")
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        return None if found is None else str(found)

    async def forget(self, before: float) -> int:
        """The hashes expire by themselves; the last-seen index is trimmed here."""
        try:
            return int(await self._connected().zremrangebyscore(self._seen, "-inf", before))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _figures(row: list[str | None]) -> EntityStats:
    figures = EntityStats()
    total, failed, executed, exec_ms, violations = (value or "0" for value in row[:5])
    figures.total, figures.failed, figures.executed = int(total), int(failed), int(executed)
    figures.exec_ms_total, figures.violations = float(exec_ms), int(violations)
    outcomes = row[5] or ""
    figures.recent_bits, figures.recent = int(outcomes or "0", 2), len(outcomes)
    return figures
