"""The gateway's live state, one object per concern: the config being served (live), the handlers' and
apps' code, dispatch to the executors, memory accounting, profile learning, stats (kept in step with a
store when one is configured) and the upstream client.
A reload fans out to them from here."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aiohttp import web

from policy.config import Config
from policy.decision import Decision
from policy.risk import Factor, RiskScore
from pool.memory import MemoryWatch
from pool.registry import HandlerRegistry
from pool.settings import Settings
from proxy.admission import Gate
from proxy.auth import TokenCache
from proxy.code import Code
from proxy.decisions import DecisionLog
from proxy.deps import DependencyLayer
from proxy.dispatch import Dispatch, settings_of
from proxy.forward import Forwarder
from proxy.jwks import Jwks
from proxy.learning import ProfileLearning
from proxy.live import LiveConfig
from proxy.memory import MemoryAccount, ThreadUse
from proxy.metrics import Metrics
from proxy.ratelimit import Limiter
from proxy.stats import Stats
from proxy.store.sync import StateSync
from proxy.watch import Watch


@dataclass
class Gateway:
    live: LiveConfig
    code: Code
    dispatch: Dispatch
    memory: MemoryAccount
    learning: ProfileLearning
    stats: Stats
    forwarder: Forwarder
    limiter: Limiter  # counts for rate_limits (shared when the state store is redis)
    base_dir: Path = field(default_factory=Path.cwd)  # config.yaml's folder: relative paths start there
    state: StateSync | None = None  # entity history kept in a store (None: this process's table only)
    tokens: TokenCache = field(default_factory=TokenCache)  # verified bearer tokens, until their exp
    jwks: Jwks = field(default_factory=Jwks)  # the identity provider's keys (auth.jwks_url)
    deps: DependencyLayer = field(default_factory=DependencyLayer)  # the runner image's, after an edit
    metrics: Metrics = field(default_factory=Metrics)
    decisions: DecisionLog = field(default_factory=DecisionLog)  # one line per request, written off the loop
    admission: Gate = field(default_factory=Gate)  # the door in front of handler routes
    watch: Watch = field(default_factory=Watch)  # the dashboard's figures (proxy/watch.py)
    viewers: set[asyncio.Task[Any]] = field(default_factory=set)  # open dashboards' event streams
    # dashboard logins' key when auth has no secret to derive one from (public keys): see proxy/dashboard.py
    dashboard_key: str = field(default_factory=lambda: secrets.token_hex(32), repr=False)
    started: float = field(default_factory=time.time)

    @classmethod
    def create(cls, config: Config, plugins: dict[str, Factor], base_dir: Path) -> Gateway:
        """The gateway for `config`, its handlers and apps imported (ConfigError when one does not)."""
        stats = Stats(config.stats, config.risk.history_window, config.entity_capacity)
        threads = ThreadUse()
        code = Code(HandlerRegistry(config.handlers_package), base_dir)
        code.check(config)
        code.version = code.registry.code_version()
        return cls(
            live=LiveConfig(config, plugins),
            code=code,
            dispatch=Dispatch(stats, threads),
            memory=MemoryAccount(MemoryWatch(config.limits.memory_limit_mb), threads, stats),
            learning=ProfileLearning(),
            stats=stats,
            forwarder=Forwarder(config.upstream_pool),
            limiter=Limiter(config.state),
            base_dir=base_dir,
        )

    @property
    def config(self) -> Config:
        """The config being served now: a request takes it once, as it enters."""
        return self.live.config

    def settings(self) -> Settings:
        """What the executors run with, for the config and code being served (and the runner image a
        requirements edit built since the start, when there is one)."""
        settings = settings_of(self.config, self.code.workload(self.config))
        if self.deps.image is None:
            return settings
        return replace(settings, docker=replace(self.config.docker, image=self.deps.image))

    def apply(self, config: Config, plugins: dict[str, Factor], sha256: str, trigger: str) -> dict[str, Any]:
        """Serve a validated config: swapped in one step, then every executor and the memory limit follow."""
        record = self.live.swap(config, plugins, sha256, trigger)
        self.dispatch.reconfigure(self.settings())
        self.memory.watch.limit_mb = self.config.limits.memory_limit_mb
        self.follow_requirements()
        return record

    def follow_requirements(self) -> None:
        """A changed docker.requirements: its layer built, then the pool rolled to it (proxy/deps.py)."""
        self.deps.follow(
            self.config.docker, self.base_dir, lambda: self.dispatch.reconfigure(self.settings())
        )

    def refresh_code(self) -> str | None:
        """When the handlers' or apps' code changed: threads import it again on their next request and the
        container pool rolls to it (new containers warm before the old ones go). The new version, or None;
        ConfigError when the new code does not import (what was imported before keeps serving)."""
        version = self.code.refresh(self.config)
        if version is not None:
            self.dispatch.reconfigure(self.settings())
        return version


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
    charged: bool = True  # a failure status counts against the caller (not the gateway's own refusals)
    headers: dict[str, str] | None = None  # sent with the answer (RateLimit-Policy and RateLimit)


GATEWAY = web.AppKey("gateway", Gateway)

TRACE = web.RequestKey("trace", Trace)
