"""The gateway's live state: the current config snapshot, executors, stats and the memory watch."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web

from handlers import Response
from policy.config import Config, Mode
from policy.decision import Decision
from policy.risk import Factor, RiskScore
from pool.base import Executor, Job, MemoryLimitExceeded
from pool.containers import ContainerPool
from pool.memory import MemoryWatch
from pool.registry import HandlerRegistry
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
