"""Keeps this gateway's entity table in step with the store, off the request path: every `state.flush_ms`
(and at once when a request asked for an entity the table did not hold) the updates since the last write are
added to the store in one batch, and the entities they concern (and those asked for) are read back, since
other gateways add to them too. Requests never wait for the store: when it is unreachable the gateway serves
from its own table, keeps the updates (bounded) and writes them when it returns."""

from __future__ import annotations

import asyncio
import json
import logging
import time

from proxy.live import LiveConfig
from proxy.stats import EntityStats, Stats
from proxy.store.base import Store, StoreUnavailable

log = logging.getLogger("isogate.state")
MIN_GAP_S = 0.05  # between two syncs, however often a miss asks for one
FORGET_EVERY_S = 60.0
STOP_WAIT_S = 5.0  # at shutdown, how long a sync under way may take to finish
HISTORY = "reloads"  # the document holding the config generation and the recent reloads


class StateSync:
    def __init__(
        self,
        store: Store,
        stats: Stats,
        flush_s: float,
        forget_after_s: float = 0.0,
        gateway: str = "isogate",
        live: LiveConfig | None = None,
    ) -> None:
        self.store, self.stats, self.flush_s = store, stats, flush_s
        self.live = live  # its reload history is kept in the store too
        self._history = ""  # the history as last written (or read at start)
        self.gateway = gateway  # whose gateway-wide counters these are (its pool name: unique per gateway)
        self._counted: dict[str, int] = {}  # the counters as last written (or read at start)
        self.forget_after_s = forget_after_s  # 0: entities are never dropped from the store
        self.forgotten = 0
        self._next_forget = 0.0
        self.available = False
        self.reason: str | None = "not opened"
        self.written = self.read = self.dropped = 0
        self.last_sync = 0.0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        """Open the store and take the most recently seen entities into the table (a restarted gateway
        knows its callers from the first request); an unreachable store is reported, not raised."""
        self.stats.pending = {}
        self.stats.on_miss = self._wake.set
        try:
            await self.store.open()
            known = await self.store.recent(self.stats.capacity)
            self.stats.restore(await self.store.counters(self.gateway))
            self._counted = self.stats.counters()  # written already: only what is added from now on
            await self._resume_history()
        except StoreUnavailable as exc:
            self._down(exc)
        else:
            for entity, figures in known.items():
                self.stats.stored(entity, figures)
            self.available, self.reason = True, None
            log.info("entity state: %s, %d entities loaded", self.store.name, len(known))
        self._task = asyncio.create_task(self._run(), name="isogate-state-sync")

    async def _run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.flush_s):
                    await self._wake.wait()
            except TimeoutError:
                pass
            if self._stopping:
                return
            self._wake.clear()
            try:
                await self.sync()
            except Exception:  # a bug here must not end syncing for the gateway's life
                log.exception("entity state sync failed")
            await asyncio.sleep(MIN_GAP_S)  # callers new by the thousand a second wake it once per gap

    async def sync(self) -> None:
        """Write the updates since the last sync, then read back the entities they concern and the ones
        asked for."""
        stats = self.stats
        assert stats.pending is not None
        batch, stats.pending = stats.pending, {}
        wanted, stats.misses = set(stats.misses) | set(batch), set()
        try:
            if not self.available:
                await self.store.open()
            if batch:
                await self.store.add(batch, stats.window)
        except StoreUnavailable as exc:
            self._keep(batch)
            self._down(exc)
            return
        try:
            await self._write_counters()
            await self._write_history()
            fresh = await self.store.fetch(wanted) if wanted else {}
        except StoreUnavailable as exc:  # written, not read back: the table goes on with its own figures
            self._down(exc)
            return
        if not self.available:
            log.warning("entity state store %s is back: %d updates written", self.store.name, len(batch))
        self.available, self.reason, self.last_sync = True, None, time.time()
        self.written += len(batch)
        self.read += len(fresh)
        for entity, figures in fresh.items():
            stats.stored(entity, figures)
        await self._forget()

    async def _resume_history(self) -> None:
        if self.live is None:
            return
        text = await self.store.document(self.gateway, HISTORY)
        try:
            stored = json.loads(text) if text else {}
        except ValueError:
            log.warning("entity state: the stored reload history is not JSON; starting a new one")
            stored = {}
        if isinstance(stored, dict):
            self.live.resume(stored)

    async def _write_history(self) -> None:
        if self.live is None:
            return
        text = json.dumps(self.live.history(), default=str)
        if text == self._history:
            return
        await self.store.save_document(self.gateway, HISTORY, text)
        self._history = text

    async def _write_counters(self) -> None:
        """Add what the gateway-wide counters gained since the last write (StoreUnavailable: kept for the
        next)."""
        now = self.stats.counters()
        gained = {name: value - self._counted.get(name, 0) for name, value in now.items()}
        gained = {name: value for name, value in gained.items() if value}
        if not gained:
            return
        await self.store.add_counters(self.gateway, gained)
        self._counted = now

    async def _forget(self) -> None:
        """Once a minute: drop the entities not seen for `state.forget_after_days` (a store that only grows
        would hold every caller ever seen)."""
        now = time.time()
        if not self.forget_after_s or now < self._next_forget:
            return
        self._next_forget = now + FORGET_EVERY_S
        try:
            self.forgotten += await self.store.forget(now - self.forget_after_s)
        except StoreUnavailable as exc:
            self._down(exc)

    def _keep(self, batch: dict[str, EntityStats]) -> None:
        """Updates that could not be written go back in front of the newer ones, up to the table's size
        (past it the oldest are dropped, and counted)."""
        stats = self.stats
        assert stats.pending is not None
        for entity, newer in stats.pending.items():
            batch[entity] = batch[entity].merge(newer, stats.window) if entity in batch else newer
        while len(batch) > stats.capacity:
            del batch[next(iter(batch))]
            self.dropped += 1
        stats.pending = batch

    def _down(self, exc: Exception) -> None:
        if self.available or self.reason == "not opened":
            log.warning(
                "entity state store %s unreachable (%s): serving from this gateway's table",
                self.store.name,
                exc,
            )
        self.available, self.reason = False, f"{self.store.name}: {exc}"[:300]

    def status(self) -> dict[str, object]:
        pending = self.stats.pending or {}
        lag = round(time.time() - self.last_sync, 1) if self.last_sync else None
        return {
            "backend": self.store.name,
            "available": self.available,
            "reason": self.reason,
            "unwritten": len(pending),
            "written": self.written,
            "read": self.read,
            "dropped": self.dropped,
            "forgotten": self.forgotten,
            "lag_s": lag,
        }

    async def aclose(self) -> None:
        """Stop, and write what is left (SIGTERM loses nothing the store accepts). A sync under way is let
        finish (cancelled, its batch would be neither written nor kept: lost, and never said)."""
        if self._task is not None:
            self._stopping = True
            self._wake.set()
            await asyncio.wait([self._task], timeout=STOP_WAIT_S)
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.stats.pending:
            try:
                await self.store.add(self.stats.pending, self.stats.window)
                self.written += len(self.stats.pending)
                self.stats.pending = {}
            except StoreUnavailable as exc:
                log.warning(
                    "entity state: %d updates not written at shutdown: %s", len(self.stats.pending), exc
                )
        if self.available:
            try:
                await self._write_counters()
                await self._write_history()
            except StoreUnavailable as exc:
                log.warning("entity state: gateway counters not written at shutdown: %s", exc)
        await self.store.aclose()
