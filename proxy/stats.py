"""Live figures: per-entity history (which feeds risk scoring) and gateway-wide counters and latencies."""

from __future__ import annotations

import heapq
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from policy.config import StatsConfig
from policy.risk import History
from pool.metrics import percentiles

MAX_MISSES = 10_000  # entities waiting to be read from the store (more: they are read when next asked for)
REJECTED = "rejected"  # the mode column of a request that never reached an executor
# A failure is a 5xx (timeouts and memory violations included) or a 401/403/413, when it is the caller's:
# what the handler, app or upstream answered, or the gateway's answer to what the caller sent (risk_blocked,
# payload_too_large, a timeout), never its refusals for want of a token, capacity or an isolated target.
FAILURE_STATUSES = frozenset({401, 403, 413})


def is_failure(status: int) -> bool:
    return status >= 500 or status in FAILURE_STATUSES


@dataclass(frozen=True, slots=True)
class Outcome:
    entity: str
    status: int
    mode: str
    band: str | None
    elapsed_ms: float
    exec_ms: float | None = None
    charged: bool = True  # False: the gateway's own refusal (401, 429, 503, isolation_unavailable...)


class EntityStats:
    """One entity's history, compact (~200 bytes with its table entry: 100,000 entities are ~20 MB): counts,
    and its last `window` outcomes as the bits of one int (1 = failure, newest lowest)."""

    __slots__ = ("total", "failed", "executed", "exec_ms_total", "violations", "recent_bits", "recent")

    def __init__(self) -> None:
        self.total = self.failed = self.executed = self.violations = self.recent_bits = self.recent = 0
        self.exec_ms_total = 0.0

    def add(self, outcome: Outcome, window: int) -> None:
        failed = outcome.charged and is_failure(outcome.status)
        self.total += 1
        self.failed += failed
        self.recent_bits = ((self.recent_bits << 1) | failed) & ((1 << window) - 1)
        self.recent = min(self.recent + 1, window)
        if outcome.exec_ms is not None:
            self.executed += 1
            self.exec_ms_total += outcome.exec_ms

    def merge(self, later: EntityStats, window: int) -> EntityStats:
        """Add `later`'s figures, its outcomes after ours (another gateway's, or ones not yet written)."""
        self.total += later.total
        self.failed += later.failed
        self.executed += later.executed
        self.exec_ms_total += later.exec_ms_total
        self.violations += later.violations
        shifted = (self.recent_bits << min(later.recent, window)) | later.recent_bits
        self.recent_bits = shifted & ((1 << window) - 1)
        self.recent = min(self.recent + later.recent, window)
        return self

    def history(self) -> History:
        return History(self.total, self.recent, self.recent_bits.bit_count())

    def as_api(self) -> dict[str, float | int]:
        """The product's documented `/api/stats` `stats` object."""
        return {
            "totalRequests": self.total,
            "successfulRequests": self.total - self.failed,
            "failedRequests": self.failed,
            "avgExecutionTime": round(self.exec_ms_total / self.executed, 2) if self.executed else 0.0,
            "failureRate": round(self.failed / self.total, 3) if self.total else 0.0,
            "resourceViolations": self.violations,
        }


class Stats:
    """Counters for the whole gateway and a bounded, least-recently-seen-evicted table of entities."""

    def __init__(self, config: StatsConfig, window: int, capacity: int | None = None) -> None:
        self._config = config
        self._window = window
        self.capacity = config.max_entities if capacity is None else capacity
        self._entities: OrderedDict[str, EntityStats] = OrderedDict()
        self.total = 0
        self.by_mode: Counter[str] = Counter()
        self.by_band: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()
        self.by_would: Counter[str] = Counter()  # report-only: what was not done (docker, block)
        self.violations = 0
        self.malformed = 0  # requests aiohttp's parser refused (counted, no entity charged)
        self._latency: dict[str, deque[float]] = {}
        # With a store (proxy/store): each entity's figures not yet written to it, and the entities asked
        # for that this table did not hold (read from the store in the background, `on_miss` says when).
        self.pending: dict[str, EntityStats] | None = None
        self.misses: set[str] = set()
        self.on_miss: Callable[[], None] | None = None

    @property
    def window(self) -> int:
        return self._window

    @property
    def tracked(self) -> int:
        return len(self._entities)

    def entity(self, entity: str) -> EntityStats | None:
        return self._entities.get(entity)

    def history(self, entity: str) -> History:
        found = self._entities.get(entity)
        if found is not None:
            return found.history()
        if self.pending is not None and len(self.misses) < MAX_MISSES:
            self.misses.add(entity)
            if self.on_miss is not None:
                self.on_miss()
        return History()

    def _touch(self, entity: str) -> EntityStats:
        found = self._entities.get(entity)
        if found is None:
            found = self._entities[entity] = EntityStats()
            while len(self._entities) > self.capacity:
                self._entities.popitem(last=False)
        else:
            self._entities.move_to_end(entity)
        return found

    def stored(self, entity: str, figures: EntityStats) -> None:
        """`figures` read from the store for `entity`: its figures from now on, with what this gateway has
        not written yet added."""
        unwritten = self.pending.get(entity) if self.pending is not None else None
        if unwritten is not None:
            figures.merge(unwritten, self._window)
        kept = self._touch(entity)  # updated in place: replacing objects by the thousand fragments the heap
        for name in EntityStats.__slots__:
            setattr(kept, name, getattr(figures, name))

    def _changed(self, entity: str) -> EntityStats | None:
        if self.pending is None:
            return None
        found = self.pending.get(entity)
        if found is None:
            found = self.pending[entity] = EntityStats()
        return found

    def record(self, outcome: Outcome) -> None:
        self._touch(outcome.entity).add(outcome, self._window)
        if (unwritten := self._changed(outcome.entity)) is not None:
            unwritten.add(outcome, self._window)
        self.total += 1
        self.by_mode[outcome.mode] += 1
        self.by_status[f"{outcome.status // 100}xx"] += 1
        if outcome.band is not None:
            self.by_band[outcome.band] += 1
        samples = self._latency.setdefault(outcome.mode, deque(maxlen=self._config.latency_samples))
        samples.append(outcome.elapsed_ms)

    def refused(self, status: int) -> None:
        """A request the HTTP parser refused: counted gateway-wide, charged to no entity."""
        self.total += 1
        self.malformed += 1
        self.by_mode[REJECTED] += 1
        self.by_status[f"{status // 100}xx"] += 1

    def would(self, action: str) -> None:
        """A report-only request that would have been isolated (docker) or refused (block)."""
        self.by_would[action] += 1

    def violation(self, entity: str) -> None:
        self._touch(entity).violations += 1
        self.violations += 1
        if (unwritten := self._changed(entity)) is not None:
            unwritten.violations += 1

    def counters(self) -> dict[str, int]:
        """The gateway-wide counts, flat (`total`, `mode:thread`, `band:low`, `status:2xx`...), as a store
        keeps them across restarts."""
        return {
            "total": self.total,
            "malformed": self.malformed,
            "violations": self.violations,
            **{f"mode:{k}": v for k, v in self.by_mode.items()},
            **{f"band:{k}": v for k, v in self.by_band.items()},
            **{f"status:{k}": v for k, v in self.by_status.items()},
            **{f"would:{k}": v for k, v in self.by_would.items()},
        }

    def restore(self, counts: dict[str, int]) -> None:
        """Add the counts an earlier run of this gateway left in the store (see `counters`)."""
        tables = {
            "mode": self.by_mode,
            "band": self.by_band,
            "status": self.by_status,
            "would": self.by_would,
        }
        for name, value in counts.items():
            kind, _, key = name.partition(":")
            if kind in tables and key:
                tables[kind][key] += value
            elif name in ("total", "malformed", "violations"):
                setattr(self, name, getattr(self, name) + value)

    def snapshot(self) -> dict[str, object]:
        top = heapq.nlargest(self._config.top_entities, self._entities.items(), key=lambda i: i[1].total)
        return {
            "requests": {
                "total": self.total,
                "by_mode": dict(self.by_mode),
                "by_risk_band": dict(self.by_band),
                "by_status": dict(self.by_status),
                "malformed": self.malformed,
                "report_only_would": dict(self.by_would),  # served, but would have been docker or block
            },
            "latency_ms": {mode: percentiles(samples) for mode, samples in self._latency.items()},
            "entities": {
                "tracked": len(self._entities),
                "capacity": self.capacity,
                "top": [{"entityId": name, **entity.as_api()} for name, entity in top],
            },
            "resource_violations": self.violations,
        }
