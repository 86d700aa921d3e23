"""The gateway's live state: the current config snapshot, executors, stats and the memory watch."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from handlers import Response
from policy.changes import describe, keep_running_values
from policy.config import Config, Mode, RouteConfig
from policy.decision import Decision
from policy.errors import ConfigError
from policy.identity import Trust
from policy.profile import ProfileBuilder, observe
from policy.risk import Factor, RiskInput, RiskScore
from pool.apps import AppSpec
from pool.base import RETRY_AFTER_S, EntityBusy, Executor, Job, MemoryLimitExceeded
from pool.containers import ContainerPool
from pool.memory import MemoryWatch
from pool.registry import HandlerRegistry, UnknownHandler, app_handler
from pool.replicas import Replicas
from pool.sandbox import Workload
from pool.thread import ThreadExecutor
from proxy.forward import Forwarder
from proxy.loader import Loaded
from proxy.stats import Stats

log = logging.getLogger("isogate.gateway")
GROWTH_MIN_MB = 8.0  # RSS growth between two memory checks that can be charged to callers...
GROWTH_SHARE = 0.1  # ...or this share of limits.memory_limit_mb, whichever is larger


@dataclass
class Gateway:
    config: Config
    registry: HandlerRegistry
    plugins: dict[str, Factor]
    stats: Stats
    memory: MemoryWatch
    forwarder: Forwarder
    base_dir: Path = field(default_factory=Path.cwd)  # apps' sources are relative to it (config.yaml's)
    code_version: str = ""  # of the handlers' and apps' code being served (HandlerRegistry.code_version)
    executors: dict[Mode, Executor] = field(default_factory=dict)  # what runs each decision (see execute)
    thread: ThreadExecutor | None = None  # the two executors the lifecycles made, for resizing on reload
    containers: ContainerPool | None = None
    replicas: Replicas | None = None  # the isolated replicas' pools (None: docker.enabled is false)
    generation: int = 1
    started: float = field(default_factory=time.time)
    loaded_at: float = field(default_factory=time.time)
    source_sha256: str | None = None
    last_error: str | None = None
    reloads: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=20))
    learner: ProfileBuilder | None = None  # learning a profile from live traffic, see learn_profile
    learn_into: Path | None = None
    _writes: set[asyncio.Task[None]] = field(default_factory=set)
    inflight_threads: Counter[str] = field(default_factory=Counter)  # entity -> thread jobs running
    _ran: set[str] = field(default_factory=set)  # entities with thread jobs since the last memory check

    @property
    def memory_pressure(self) -> bool:
        return self.memory.over

    async def execute(self, mode: Mode, job: Job, entity: str, untrusted: bool = True) -> Response:
        """Run `job` on the executor for `mode`, tracking thread jobs per entity for the memory monitor.
        An untrusted caller holds at most `thread_pool.max_per_entity` workers; trusted tokens are vouched
        for by the operator and bounded only by the pool's queue."""
        if mode is not Mode.THREAD:
            return await self.contained(self.executors[mode], job, entity)
        share = self.config.thread_pool.max_per_entity
        if untrusted and self.inflight_threads[entity] >= share:
            raise EntityBusy(
                f"{share} of your requests already run in the thread pool (thread_pool.max_per_entity)",
                retry_after=RETRY_AFTER_S,
            )
        self.inflight_threads[entity] += 1
        self._ran.add(entity)
        try:
            return await self.executors[mode].run(job)
        finally:
            self.inflight_threads[entity] -= 1
            if not self.inflight_threads[entity]:
                del self.inflight_threads[entity]

    async def contained(self, executor: Executor, job: Job, entity: str) -> Response:
        """Run `job` in a container (a handler's, or an isolated replica's): a memory-limit kill there is
        the entity's resource violation."""
        try:
            return await executor.run(job)
        except MemoryLimitExceeded:
            self.stats.violation(entity)
            raise

    def workload(self, config: Config) -> Workload:
        """What the handler containers run: the handler package and the apps, at this code version."""
        apps = tuple(sorted(app_specs(config, self.base_dir).items()))
        handlers_dir = str(self.registry.package_dir)
        return Workload(config.handlers_package, apps=apps, handlers_dir=handlers_dir, code=self.code_version)

    def refresh_code(self) -> str | None:
        """After a reload: when the handlers' or apps' code changed, threads import it again on their next
        request and the container pool rolls to it (new containers warm before the old ones go). Returns
        the new version, or None when nothing changed; ConfigError when the new code does not import
        (what was imported before keeps serving)."""
        version = self.registry.code_version()
        if version == self.code_version:
            return None
        before = self.registry.snapshot()
        self.registry.refresh()
        try:
            self.check_handlers(self.config)  # imported again now, not within a request's deadline
        except ConfigError:
            self.registry.restore(before)  # the code that imported keeps serving
            raise
        log.info("code changed (%s -> %s): re-imported, rolling containers", self.code_version, version)
        self.code_version = version
        if self.containers is not None:
            self.containers.reconfigure(self.config.docker, self.workload(self.config))
        return version

    def check_handlers(self, config: Config) -> None:
        """Every routed handler and app must be importable before a config may serve."""
        self.registry.set_apps(app_specs(config, self.base_dir))
        for i, route in enumerate(config.routes):
            if not (route.handler or route.app):
                continue  # an upstream route
            try:
                self.registry.get(handler_of(route))
            except UnknownHandler as exc:
                raise ConfigError(f"routes[{i}].{'app' if route.app else 'handler'}", str(exc)) from None
            except Exception as exc:  # the app's own import failed
                raise ConfigError(f"apps.{route.app}", f"could not import it: {exc!r}"[:300]) from None

    def apply(self, config: Config, plugins: dict[str, Factor], sha256: str, trigger: str) -> dict[str, Any]:
        """Swap in a validated config (one assignment: a request keeps the snapshot it started with)."""
        old = self.config
        config, restart = keep_running_values(old, config)
        changes = describe(old, config)
        self.config, self.plugins = config, plugins
        self.generation += 1
        self.loaded_at, self.source_sha256, self.last_error = time.time(), sha256, None
        if self.thread is not None:
            pool = config.thread_pool
            self.thread.resize(pool.min_workers, pool.max_workers, pool.max_queue)
        if self.containers is not None:
            self.containers.reconfigure(config.docker, self.workload(config))
        if self.replicas is not None:
            self.replicas.sync(config)
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

    def learn_profile(self, loaded: Loaded) -> None:
        """Learn from live traffic while the config asks for a profile file that does not exist yet."""
        wanted = loaded.config.risk.profile.learn_requests > 0 and loaded.profile is None
        if not wanted:
            self.learner, self.learn_into = None, None
        elif self.learner is None:
            self.learner, self.learn_into = ProfileBuilder(), loaded.profile_path
            log.info(
                "learning a profile from the next %d unflagged requests",
                loaded.config.risk.profile.learn_requests,
            )

    def observe(self, inp: RiskInput, risk: RiskScore) -> None:
        """Feed a request whose content no factor flagged, from an authenticated or trusted caller, to the
        profile being learned; write it when complete. Anonymous callers never teach it what is normal:
        what it learns becomes normal, and an attacker would teach it theirs."""
        config = self.config
        identity = inp.identity
        if self.learner is None or risk.suspicious_content:
            return
        if not (identity.authenticated or identity.trust is Trust.TRUSTED):
            return
        observe(self.learner, inp.incoming.method, inp.fields)
        if self.learner.requests >= config.risk.profile.learn_requests and self.learn_into is not None:
            profile, path = self.learner.build(), self.learn_into
            self.learner = None
            task = asyncio.create_task(asyncio.to_thread(_write_json, path, profile.to_json()))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)
            log.info("profile learned from %d requests: writing %s", config.risk.profile.learn_requests, path)

    def check_memory(self) -> None:
        """Sample RSS. Over the limit, a resource violation is charged only for growth this check saw (at
        least GROWTH_SHARE of the limit since the last check) and only to entities that ran thread jobs in
        that interval: memory that was already there, or that grew while no thread job ran (the gateway's
        own tables, say), is charged to no caller. Threads share one heap, so this is the best attribution
        a process can make; isolation is what containers are for."""
        before, ran = self.memory.rss_mb, self._ran
        over = self.memory.check()
        self._ran = set(self.inflight_threads)  # jobs still running count for the next interval too
        if not over:
            return
        log.warning("Memory limit exceeded: %.0fMB / %dMB", self.memory.rss_mb, self.memory.limit_mb)
        grew = self.memory.rss_mb - before
        if grew < max(GROWTH_MIN_MB, GROWTH_SHARE * self.memory.limit_mb):
            return
        for entity in ran:
            log.warning("memory grew %.0fMB while %s ran a thread job: resource violation", grew, entity)
            self.stats.violation(entity)


@dataclass(slots=True)
class Trace:
    """What one request's pass through the pipeline decided, for stats, logs and debug headers."""

    request_id: str
    started: float
    counted: bool = False
    entity: str | None = None
    admin: bool = False  # the caller's token has role: admin (debug headers may be shown)
    route: str | None = None
    risk: RiskScore | None = None
    decision: Decision | None = None
    exec_ms: float | None = None
    target: str | None = None  # an upstream route's: upstream (production), quarantine or replica


GATEWAY = web.AppKey("gateway", Gateway)

TRACE = web.RequestKey("trace", Trace)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically: the config watcher must never read half a profile."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(partial, path)


def handler_of(route: RouteConfig) -> str:
    """The registry name a handler or app route runs."""
    return app_handler(route.app, route.mount) if route.app else route.handler


def app_specs(config: Config, base: Path) -> dict[str, AppSpec]:
    """The config's apps with their sources resolved against `base` (config.yaml's directory)."""
    return {
        name: AppSpec(str((base / app.source).resolve()), app.target, app.interface)
        for name, app in config.apps.items()
    }
