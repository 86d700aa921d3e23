"""Counting for `rate_limits` (policy/ratelimits.py): the `limits` library's sliding window counter and
moving window, on redis when `state.backend` is redis (gateways and workers share one count), else in this
process's memory (each worker counts its own: exact shared counts need redis).

If redis stops answering, the counts fall back to this process's memory at once, `/healthz` says so, and a
request is never refused or held for it; redis is tried again after RETRY_S.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter, RateLimiter, SlidingWindowCounterRateLimiter
from limits.errors import StorageError

from policy.config import StateBackend, StateConfig
from policy.identity import Identity
from policy.ratelimits import Rate, RateLimitConfig, Window

log = logging.getLogger("isogate")
RETRY_S = 5.0  # after a redis failure, counts stay local this long before redis is tried again
STORE_TIMEOUT_S = 0.25  # a redis operation that takes longer counts as a failure


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the limits say of a request: the tightest limit's headers, and the first one exceeded."""

    headers: dict[str, str]
    exceeded: str | None = None  # the limit's name
    retry_after: int = 0


class Limiter:
    def __init__(self, state: StateConfig) -> None:
        self._local = MemoryStorage()
        self._shared: Storage | None = None
        if state.backend is StateBackend.REDIS:
            self._shared = RedisStorage(
                f"async+{state.url}",
                implementation="redispy",
                key_prefix=f"{state.key_prefix}limits",
                wrap_exceptions=True,
                socket_timeout=STORE_TIMEOUT_S,
                socket_connect_timeout=STORE_TIMEOUT_S,
            )
        self._down_until = 0.0
        self.problem = ""  # why counts are local while they should be shared ("" when they are not)
        self.refused: Counter[tuple[str, str]] = Counter()  # (route, limit) -> 429s

    @staticmethod
    async def _count(
        storage: Storage, window: Window, item: RateLimitItem, key: str
    ) -> tuple[bool, int, float]:
        """(allowed, remaining, reset time) of one hit on `storage`."""
        strategy: RateLimiter = (
            MovingWindowRateLimiter(storage)
            if window is Window.MOVING
            else SlidingWindowCounterRateLimiter(storage)
        )
        allowed = await strategy.hit(item, key)
        stats = await strategy.get_window_stats(item, key)
        return allowed, stats.remaining, stats.reset_time

    async def check(
        self, limits: tuple[RateLimitConfig, ...], route: str, identity: Identity, address: str, band: str
    ) -> Verdict:
        """Count this request against every limit that applies (each counts it, exceeded or not)."""
        headers: dict[str, str] = {}
        exceeded, retry_after, tightest = None, 0, math.inf
        for limit in limits:
            rate = limit.rate_for(identity, band) if limit.applies(route, identity) else None
            if rate is None:
                continue
            item, key = _item(rate), limit.key_of(identity, address)
            allowed, remaining, reset = await self._hit(limit.window, item, key)
            wait = max(1, math.ceil(reset - time.time()))
            if not allowed and exceeded is None:
                exceeded, retry_after = limit.name, wait
                self.refused[(route, limit.name)] += 1
            if remaining < tightest:  # the headers of the limit closest to refusing
                tightest = remaining
                headers = {
                    "RateLimit-Policy": f'"{limit.name}";q={rate.amount};w={rate.seconds}',
                    "RateLimit": f'"{limit.name}";r={remaining};t={wait}',
                }
        return Verdict(headers, exceeded, retry_after)

    async def _hit(self, window: Window, item: RateLimitItem, key: str) -> tuple[bool, int, float]:
        """(allowed, remaining, reset time) on the shared storage, or the local one while it is down."""
        if self._shared is not None and time.monotonic() >= self._down_until:
            try:
                counted = await self._count(self._shared, window, item, key)
            except StorageError as exc:
                self._down_until = time.monotonic() + RETRY_S
                if not self.problem:
                    log.warning("rate limits: the redis store failed (%s): counting locally", _why(exc))
                self.problem = "rate-limit store unavailable: limits count in this process"
            else:
                if self.problem:
                    log.warning("rate limits: the redis store answers again: counts are shared")
                self.problem = ""
                return counted
        return await self._count(self._local, window, item, key)

    def stats(self) -> dict[str, object]:
        refused: dict[str, dict[str, int]] = {}
        for (route, name), count in sorted(self.refused.items()):
            refused.setdefault(route, {})[name] = count
        return {"shared": self._shared is not None and not self.problem, "refused": refused}


def _item(rate: Rate) -> RateLimitItem:
    return RateLimitItemPerSecond(rate.amount, rate.seconds)


def _why(exc: StorageError) -> str:
    """What failed, never a URL or a password: the storage error's class names."""
    cause = exc.storage_error
    return type(cause).__name__ if cause is not None else type(exc).__name__
