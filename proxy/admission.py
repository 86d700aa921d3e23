"""The door in front of handler routes (`admission`): a request past identity and routing takes a slot
before its body is read and scored, or waits for one. Under overload, waiting instead of a refusal the
client retries at once keeps the gateway's work for the requests it serves: each is read and scored once.

Waiting is fair between callers: each entity has its own line, and a freed slot goes to the next line in
turn (a trusted caller's line gets `trusted_weight` turns in a row), so a caller with many connections
cannot crowd out one with few. A line holds requests, not bodies: each waiter costs its connection (bounded
by the connection caps), and an untrusted caller's line is bounded too (429 past it, at the cost of a
dictionary lookup).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from pool.base import RETRY_AFTER_S, ExecutorError


class Overloaded(ExecutorError):
    """No slot freed up within the route's deadline."""

    status = 503
    code = "overloaded"
    charged = False


class TooManyWaiting(ExecutorError):
    """This caller already has `admission.max_waiting_per_caller` requests waiting."""

    status = 429
    code = "too_many_waiting"
    charged = False


@dataclass
class _Line:
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)
    weight: int = 1
    turns: int = 0  # slots handed to it in its current round


class Gate:
    def __init__(self) -> None:
        self.active = 0  # slots held
        self._lines: dict[str, _Line] = {}  # callers with waiters
        self._order: deque[str] = deque()  # their turn order: the head is served next
        self.waited = self.refused = self.timed_out = 0

    @property
    def waiting(self) -> int:
        return sum(not waiter.done() for line in self._lines.values() for waiter in line.waiters)

    @asynccontextmanager
    async def slot(
        self, entity: str, slots: int, *, weight: int, max_waiting: int | None, timeout_s: float
    ) -> AsyncIterator[float]:
        """Hold a slot while the body is read, scored and run; yields the seconds waited for it."""
        waited = 0.0
        if self.active < slots and not self._order:
            self.active += 1
        else:
            waited = await self._wait(entity, slots, weight, max_waiting, timeout_s)
        try:
            yield waited
        finally:
            self._release(slots)

    async def _wait(
        self, entity: str, slots: int, weight: int, max_waiting: int | None, timeout_s: float
    ) -> float:
        line = self._lines.get(entity)
        if line is None:
            line = self._lines[entity] = _Line(weight=weight)
            self._order.append(entity)
        if max_waiting is not None and len(line.waiters) >= max_waiting:
            self._forget_if_empty(entity)
            self.refused += 1
            raise TooManyWaiting(
                f"{len(line.waiters)} of your requests already wait for the gateway"
                f" (admission.max_waiting_per_caller)",
                retry_after=RETRY_AFTER_S,
            )
        line.weight = weight
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        line.waiters.append(waiter)
        self.waited += 1
        while self.active < slots and self._hand_next():  # slots a reload added: taken in turn
            self.active += 1
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout_s):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():  # handed a slot as it gave up: pass it on
                self._release(None)
            elif waiter in line.waiters:  # (a cancelled one may have been skipped and dropped already)
                line.waiters.remove(waiter)
                self._forget_if_empty(entity)
            if isinstance(exc, TimeoutError):
                self.timed_out += 1
                raise Overloaded(
                    f"no room to run this request within its deadline ({timeout_s * 1000:.0f} ms):"
                    " the gateway is at admission.slots",
                    retry_after=RETRY_AFTER_S,
                ) from None
            raise
        return time.monotonic() - started

    def _release(self, slots: int | None) -> None:
        """A slot is free: hand it to the next line in turn (it stays held), else give it back. `slots`
        (the live value): when it was lowered by a reload, a freed slot over it is given back."""
        if (slots is None or self.active <= slots) and self._hand_next():
            return
        self.active -= 1

    def _hand_next(self) -> bool:
        """The head line's oldest live waiter gets a slot, and the line goes to the back after its turns;
        False when nobody waits. A waiter whose task was cancelled is done already (its task removes it when
        it runs next): skipped here."""
        while self._order:
            entity = self._order[0]
            line = self._lines[entity]
            while line.waiters and line.waiters[0].done():
                line.waiters.popleft()
            if not line.waiters:
                self._order.popleft()
                del self._lines[entity]
                continue
            waiter = line.waiters.popleft()
            line.turns += 1
            if not line.waiters:
                self._order.popleft()
                del self._lines[entity]
            elif line.turns >= line.weight:
                line.turns = 0
                self._order.rotate(-1)
            waiter.set_result(None)
            return True
        return False

    def _forget_if_empty(self, entity: str) -> None:
        line = self._lines.get(entity)
        if line is not None and not any(not waiter.done() for waiter in line.waiters):
            del self._lines[entity]
            self._order.remove(entity)

    def status(self, slots: int) -> dict[str, int]:
        return {
            "slots": slots,
            "active": self.active,
            "waiting": self.waiting,
            "callers_waiting": len(self._lines),
            "waited": self.waited,
            "refused": self.refused,
            "timed_out": self.timed_out,
        }
