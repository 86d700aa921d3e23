"""The queue of requests waiting for a sandbox: oldest first, and a freed sandbox is handed to the oldest
waiter directly, so a newer arrival can never take it (with a shared wake-up event, woken waiters lost to
new arrivals: some waited 29 s while others passed)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class WaitQueue(Generic[T]):
    """Each waiter is a future: its result is the item handed to it, or None for "capacity freed, try
    again" (it then keeps its place at the front)."""

    def __init__(self, on_returned: Callable[[T], None]) -> None:
        self._waiters: deque[asyncio.Future[T | None]] = deque()
        self._on_returned = on_returned  # an item handed to a waiter that gave up goes back through this

    def __len__(self) -> int:
        return len(self._waiters)

    async def wait(self, *, front: bool = False) -> T | None:
        """Wait for a handed item (or None: try again). A waiter that gives up (timeout, client gone)
        passes on what it was handed, so nothing handed is ever lost."""
        waiter: asyncio.Future[T | None] = asyncio.get_running_loop().create_future()
        (self._waiters.appendleft if front else self._waiters.append)(waiter)
        try:
            return await waiter
        except BaseException:
            self._abandon(waiter)
            raise

    def hand(self, item: T) -> bool:
        """Give `item` to the oldest live waiter; False when nobody waits."""
        if (waiter := self._next()) is None:
            return False
        waiter.set_result(item)
        return True

    def wake_one(self) -> None:
        """Capacity freed: the oldest waiter tries again."""
        if (waiter := self._next()) is not None:
            waiter.set_result(None)

    def fail_all(self, error: Exception) -> None:
        while (waiter := self._next()) is not None:
            waiter.set_exception(error)

    def _next(self) -> asyncio.Future[T | None] | None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                return waiter
        return None

    def _abandon(self, waiter: asyncio.Future[T | None]) -> None:
        if waiter in self._waiters:
            self._waiters.remove(waiter)
        if not waiter.done() or waiter.cancelled() or waiter.exception() is not None:
            return
        if (item := waiter.result()) is not None:
            self._on_returned(item)
        else:
            self.wake_one()
