"""The gateway's live state: the current config snapshot, executors, stats and the memory watch."""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from handlers import Response
from policy.changes import describe, keep_running_values
from policy.config import Config, Mode
from policy.decision import Decision
from policy.errors import ConfigError
from policy.risk import Factor, RiskScore
from pool.base import Executor, Job, MemoryLimitExceeded
from pool.containers import ContainerPool
from pool.memory import MemoryWatch
from pool.registry import HandlerRegistry, UnknownHandler
from pool.thread import ThreadExecutor
from proxy.stats import Stats

log = logging.getLogger("isogate.gateway")


@dataclass
class Gateway:
    config: Config
    registry: HandlerRegistry
    plugins: dict[str, Factor]
    stats: Stats
    memory: MemoryWatch
    executors: dict[Mode, Executor] = field(default_factory=dict)
    generation: int = 1
    started: float = field(default_factory=time.time)
    loaded_at: float = field(default_factory=time.time)
    source_sha256: str | None = None
    last_error: str | None = None
    reloads: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=20))
    inflight_threads: Counter[str] = field(default_factory=Counter)  # entity -> thread jobs running

    @property
    def thread(self) -> ThreadExecutor | None:
        executor = self.executors.get(Mode.THREAD)
        return executor if isinstance(executor, ThreadExecutor) else None

    @property
    def containers(self) -> ContainerPool | None:
        executor = self.executors.get(Mode.DOCKER)
        return executor if isinstance(executor, ContainerPool) else None

    @property
    def memory_pressure(self) -> bool:
        return self.memory.over

    async def execute(self, mode: Mode, job: Job, entity: str) -> Response:
        """Run `job` on the executor for `mode`, tracking thread jobs per entity for the memory monitor."""
        if mode is not Mode.THREAD:
            try:
                return await self.executors[mode].run(job)
            except MemoryLimitExceeded:
                self.stats.violation(entity)
                raise
        self.inflight_threads[entity] += 1
        try:
            return await self.executors[mode].run(job)
        finally:
            self.inflight_threads[entity] -= 1
            if not self.inflight_threads[entity]:
                del self.inflight_threads[entity]

    def check_handlers(self, config: Config) -> None:
        """Every routed handler must be importable before a config may serve."""
        for i, route in enumerate(config.routes):
            try:
                self.registry.get(route.handler)
            except UnknownHandler as exc:
                raise ConfigError(f"routes[{i}].handler", str(exc)) from None

    def apply(self, config: Config, plugins: dict[str, Factor], sha256: str, trigger: str) -> dict[str, Any]:
        """Swap in a validated config (one assignment: a request keeps the snapshot it started with)."""
        old = self.config
        config, restart = keep_running_values(old, config)
        changes = describe(old, config)
        self.config, self.plugins = config, plugins
        self.generation += 1
        self.loaded_at, self.source_sha256, self.last_error = time.time(), sha256, None
        if self.thread is not None:
            self.thread.resize(config.thread_pool.min_workers, config.thread_pool.max_workers)
        if self.containers is not None:
            self.containers.reconfigure(config.docker)
        self.memory.limit_mb = config.limits.memory_limit_mb
        record = {"generation": self.generation, "at": self.loaded_at, "trigger": trigger, **changes}
        if restart:
            record["restart_needed"] = restart
            log.warning("config changes %s need a restart; running values kept", ", ".join(restart))
        self.reloads.append(record)
        log.info("config generation %d applied (%s): %s", self.generation, trigger, changes)
        return record

    def config_error(self, error: str | None) -> None:
        """Record a reload's error (logged once, not on every poll), or clear it."""
        if error is not None and error != self.last_error:
            log.error("config not applied, generation %d keeps serving: %s", self.generation, error)
        self.last_error = error

    def check_memory(self) -> None:
        """Sample RSS; over the limit, charge a violation to every entity with a thread job running."""
        if not self.memory.check():
            return
        log.warning("Memory limit exceeded: %.0fMB / %dMB", self.memory.rss_mb, self.memory.limit_mb)
        for entity in list(self.inflight_threads):
            self.stats.violation(entity)


@dataclass(slots=True)
class Trace:
    """What one request's pass through the pipeline decided, for stats, logs and debug headers."""

    request_id: str
    started: float
    counted: bool = False
    entity: str | None = None
    route: str | None = None
    risk: RiskScore | None = None
    decision: Decision | None = None
    exec_ms: float | None = None


GATEWAY = web.AppKey("gateway", Gateway)

TRACE = web.RequestKey("trace", Trace)
