"""`GET /metrics` in Prometheus's text format (prometheus-client). Requests are counted as they finish; the
pools, faults, the entity table and the store are sampled once a second. With worker processes every
worker writes its values to PROMETHEUS_MULTIPROC_DIR (set by the supervisor) and whichever worker is asked
answers for all of them."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, Literal

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

Mode = Literal["livesum", "livemin", "livemax"]  # how a gauge adds up across worker processes
MAX_LABEL_SETS = 4096  # label sets whose child is kept at hand (routes x statuses x modes x bands)
FAULTS = ("timeouts", "oom_kills", "crashes", "died_idle", "refused", "replaced")


class Metrics:
    def __init__(self) -> None:
        self.shared = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry()  # each gateway its own: tests run many in one process
        into = None if self.shared else self.registry  # multiprocess values live in files, read at a scrape

        def gauge(name: str, text: str, labels: Iterable[str] = (), mode: Mode = "livesum") -> Gauge:
            return Gauge(name, text, list(labels), registry=into, multiprocess_mode=mode)

        self.requests = Counter(
            "isogate_requests", "Requests answered", ["mode", "route", "status", "band"], registry=into
        )
        self.latency = Histogram(
            "isogate_request_duration_seconds",
            "Time from the request's arrival to its answer",
            ["mode"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=into,
        )
        self.faults = Counter("isogate_faults", "Container faults", ["pool", "kind"], registry=into)
        self.report_only = Counter(
            "isogate_report_only_would",
            "Report-only requests served that would have been isolated (docker) or refused (block)",
            ["route", "action"],
            registry=into,
        )
        self.reloads = Counter("isogate_reloads", "Config reloads by result", ["result"], registry=into)
        self.limited = Counter(
            "isogate_rate_limited", "Requests refused by a rate limit", ["route", "limit"], registry=into
        )
        self.containers = gauge("isogate_pool_containers", "Containers by state", ["pool", "state"])
        self.engine_up = gauge("isogate_pool_available", "1 when the pool can run jobs", ["pool"], "livemin")
        self.engines_up = gauge(
            "isogate_engine_up", "1 when the engine answers", ["pool", "engine"], "livemin"
        )
        self.engine_containers = gauge(
            "isogate_engine_containers", "Containers on an engine by state", ["pool", "engine", "state"]
        )
        self.engine_faults = Counter(
            "isogate_engine_faults", "Container faults on an engine", ["pool", "engine"], registry=into
        )
        self.engine_downs = Counter(
            "isogate_engine_downs", "Times an engine stopped answering", ["pool", "engine"], registry=into
        )
        self.threads_busy = gauge("isogate_thread_pool_busy", "Thread jobs queued or running")
        self.entities = gauge("isogate_entities_tracked", "Entities in the gateway's table")
        self.store_up = gauge("isogate_state_available", "1 when the state store is reachable", (), "livemin")
        self.store_lag = gauge(
            "isogate_state_lag_seconds", "Seconds since the last sync with the store", (), "livemax"
        )
        self._counted: dict[tuple[str, ...], int] = {}  # (pool[, engine], kind): the total already counted
        # Each label set's child, found once: prometheus-client's labels() costs a lock and a lookup a call.
        self._request_counters: dict[tuple[str, str | None, int, str | None], Counter] = {}
        self._latencies: dict[str, Histogram] = {}

    def rate_limited(self, route: str, limit: str) -> None:
        self.limited.labels(route, limit).inc()  # routes and limits are the config's: a bounded set

    def request(self, mode: str, route: str | None, status: int, band: str | None, seconds: float) -> None:
        key = (mode, route, status, band)
        counter = self._request_counters.get(key)
        if counter is None:
            if len(self._request_counters) >= MAX_LABEL_SETS:
                self._request_counters.clear()
            counter = self.requests.labels(mode, route or "-", str(status), band or "-")
            self._request_counters[key] = counter
        counter.inc()
        latency = self._latencies.get(mode)
        if latency is None:
            latency = self._latencies[mode] = self.latency.labels(mode)
        latency.observe(seconds)

    def would(self, route: str | None, action: str) -> None:
        self.report_only.labels(route or "-", action).inc()

    def pool(self, name: str, status: dict[str, Any]) -> None:
        """A container pool's figures, as its status() reports them."""
        for state in ("idle", "busy", "creating"):
            self.containers.labels(name, state).set(int(status.get(state, 0)))
        self.engine_up.labels(name).set(1 if status.get("available") else 0)
        for kind in FAULTS:
            self._count(self.faults.labels(name, kind), (name, kind), int(status.get(kind, 0)))
        for engine in status.get("engines", ()):
            where = (name, engine["engine"])
            self.engines_up.labels(*where).set(1 if engine["up"] else 0)
            for state in ("idle", "busy", "creating"):
                self.engine_containers.labels(*where, state).set(int(engine[state]))
            self._count(self.engine_faults.labels(*where), (*where, "faults"), int(engine["faults"]))
            self._count(self.engine_downs.labels(*where), (*where, "downs"), int(engine["downs"]))

    def _count(self, counter: Counter, key: tuple[str, ...], total: int) -> None:
        """Move `counter` on to `total`, a figure the pool counts itself."""
        seen = self._counted.get(key, 0)
        if total > seen:
            counter.inc(total - seen)
        self._counted[key] = total

    def scrape(self) -> bytes:
        if not self.shared:
            return bytes(generate_latest(self.registry))
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return bytes(generate_latest(registry))


CONTENT_TYPE = CONTENT_TYPE_LATEST
