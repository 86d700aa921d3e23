"""Live policy: re-read config.yaml (and its list files) when they change, on SIGHUP, or on
`POST /admin/reload`; validate off the event loop; swap the whole config in one step. A reload also
notices changed handler or app code (Gateway.refresh_code): re-imported, and the container pool rolled.

A bad edit changes nothing: the running config keeps serving and `/stats` shows the error until a good
edit clears it. The watcher reads a changed file only once it has stopped changing (`server.watch_settle_ms`),
and refuses on its own a config that would drop all or most routes (policy.changes.watch_refusal): a file cut
short validates. An explicit reload (SIGHUP, the admin endpoint) applies it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from policy.changes import watch_refusal
from policy.errors import ConfigError
from proxy.gateway import Gateway
from proxy.loader import ConfigSource, Loaded, load, load_factors

log = logging.getLogger("isogate.reload")
POLL_S = 0.1  # how often the watched files are stat-ed (a few stat calls): a change applies well within 1 s
CODE_POLL_TICKS = 10  # the code (a stat per .py file, maybe hundreds) every 10th poll: within about 1 s


@dataclass(frozen=True)
class Outcome:
    status: str  # applied | unchanged | invalid | refused
    generation: int
    detail: dict[str, Any] | str | None = None


Stamps = dict[Path, tuple[int, int] | None]


def _stamps(files: tuple[Path, ...]) -> Stamps:
    """(mtime, size) of each watched file, None for a missing one."""
    stamps: Stamps = {}
    for path in files:
        try:
            info = os.stat(path)
        except OSError:
            stamps[path] = None
            continue
        stamps[path] = (info.st_mtime_ns, info.st_size)
    return stamps


class Reloader:
    def __init__(self, gateway: Gateway, source: ConfigSource, loaded: Loaded) -> None:
        """`loaded` is what the running config was built from."""
        self._gateway = gateway
        self._source = source
        self._files = loaded.files
        self._lock = asyncio.Lock()
        gateway.live.source_sha256 = loaded.sha256

    async def reload(self, trigger: str, *, guarded: bool = False) -> Outcome:
        """Load, validate and apply; an invalid source is recorded and changes nothing. `guarded` (the
        watcher) also refuses a config that drops most routes."""
        outcome = await self._reload(trigger, guarded)
        self._gateway.metrics.reloads.labels(outcome.status).inc()
        return outcome

    async def _reload(self, trigger: str, guarded: bool) -> Outcome:
        gw = self._gateway
        live = gw.live
        async with self._lock:
            try:
                loaded = await asyncio.to_thread(load, self._source)  # parsing large lists stays off the loop
                self._files = loaded.files
                if loaded.sha256 == live.source_sha256:
                    code = gw.refresh_code()  # the config is the same: is the code?
                    live.error(None)
                    if code is None:
                        return Outcome("unchanged", live.generation)
                    return Outcome("applied", live.generation, live.code_changed(code, trigger))
                plugins = load_factors(loaded)
                gw.code.check(loaded.config)
            except ConfigError as exc:
                live.error(str(exc))
                return Outcome("invalid", live.generation, str(exc))
            if guarded and (refusal := watch_refusal(live.config, loaded.config)) is not None:
                live.error(f"{self._source.path.name} ({loaded.sha256[:12]}) not applied: {refusal}")
                return Outcome("refused", live.generation, refusal)
            changes = gw.apply(loaded.config, plugins, loaded.sha256, trigger)
            gw.learning.update(loaded)
            try:
                if (code := gw.refresh_code()) is not None:
                    changes["code_version"] = code
            except ConfigError as exc:
                live.error(str(exc))
                return Outcome("invalid", live.generation, str(exc))
            return Outcome("applied", live.generation, changes)

    async def watch(self, config: bool = True, code: bool = False) -> None:
        """Poll the config's files (`config`) and the handlers' and apps' code (`code`, every CODE_POLL_S;
        stat calls in a worker thread). Stamps are taken before reading, so a write during a read is not
        lost; code that failed to import is tried again only once it changes again."""
        seen, version = _stamps(self._files), self._gateway.code.version
        registry = self._gateway.code.registry
        for tick in itertools.count(1):
            await asyncio.sleep(POLL_S)
            now = _stamps(self._files) if config else seen
            if now != seen:
                seen = await self._settled(now)
                await self.reload("file changed", guarded=True)
            elif code and tick % CODE_POLL_TICKS == 0:
                now_version = await asyncio.to_thread(registry.code_version)
                if now_version not in (version, self._gateway.code.version):
                    version = now_version
                    await self.reload("code changed")

    async def _settled(self, stamps: Stamps) -> Stamps:
        """The stamps once they have stayed the same for `server.watch_settle_ms`: a file still being
        written (an editor that truncates and writes, a slow copy, `cat >`) is read once, when done."""
        settle_s = self._gateway.config.server.watch_settle_ms / 1000
        while True:
            await asyncio.sleep(settle_s)
            now = _stamps(self._files)
            if now == stamps:
                return now
            stamps = now


SOURCE = web.AppKey("source", Loaded)
RELOADER = web.AppKey("reloader", Reloader)
