"""What the dashboard shows beyond `/stats`: the last 15 minutes, sampled every 5 seconds (requests per second
by mode, band and status, rate-limit refusals, latency per mode), the risk score histogram, the latest
flagged decisions with their evidence, and the factors each entity trips. Everything here is bounded: a
fixed number of samples, of flagged decisions and of entities' factor counts."""

from __future__ import annotations

import time
from collections import Counter, deque
from typing import TYPE_CHECKING, Any

from pool.metrics import percentiles

if TYPE_CHECKING:
    from proxy.gateway import Trace

SAMPLE_S = 5.0
WINDOW_S = 15 * 60
MAX_FLAGGED = 100  # decisions kept; the page shows the latest
MAX_ENTITIES = 1000  # entities whose factors are counted; the one seen longest ago goes first
HISTORY = frozenset({"new_entity", "failure_rate"})  # factors of the caller, not of the request
MAX_TIMINGS = 10_000  # latencies kept per mode between two samples (past it, the first ones stand for all)
RATES = ("mode:", "band:", "status:", "rate_limited")


class Watch:
    def __init__(self) -> None:
        self.scores = [0] * 11  # requests scored 0-9, 10-19, ..., 90-99, 100
        self.flagged: deque[dict[str, Any]] = deque(maxlen=MAX_FLAGGED)
        self.factors: dict[str, Counter[str]] = {}  # per entity, the factors its requests tripped
        self.samples: deque[dict[str, Any]] = deque(maxlen=int(WINDOW_S / SAMPLE_S))
        self._last: tuple[float, dict[str, int]] | None = None
        self._timings: dict[str, list[float]] = {}  # per mode, since the last sample

    def request(self, trace: Trace, method: str, status: int, mode: str, elapsed_ms: float) -> None:
        """One finished request. Every factor it tripped is counted for its entity. Flagged: a factor of
        its own fired (what it sent, where it came from), not only the caller's history (new, failing),
        or report-only would have isolated or refused it."""
        timings = self._timings.setdefault(mode, [])
        if len(timings) < MAX_TIMINGS:
            timings.append(elapsed_ms)
        risk, decision = trace.risk, trace.decision
        if risk is None or decision is None or trace.entity is None:
            return
        self.scores[min(risk.total, 100) // 10] += 1
        if risk.hits:
            factors = self.factors.pop(trace.entity, None) or Counter()  # put back last: seen most recently
            factors.update(hit.name for hit in risk.hits)
            self.factors[trace.entity] = factors
            if len(self.factors) > MAX_ENTITIES:
                del self.factors[next(iter(self.factors))]
        if decision.would is None and all(hit.name in HISTORY for hit in risk.hits):
            return
        self.flagged.append(
            {
                "at": round(time.time(), 3),
                "request_id": trace.request_id,
                "entity": trace.entity,
                "method": method,
                "route": trace.route,
                "score": risk.total,
                "band": decision.band.value,
                "mode": mode,
                "status": status,
                "would": decision.would.value if decision.would is not None else None,
                "evidence": {hit.name: hit.reason for hit in risk.hits},
            }
        )

    def sample(self, counters: dict[str, int], now: float | None = None) -> None:
        """Take the gateway's counters as they are now (`Stats.counters()` and `rate_limited`): the
        requests per second since the last sample, and each mode's latency over the same time."""
        now = time.time() if now is None else now
        latency = {mode: percentiles(timings) for mode, timings in self._timings.items() if timings}
        self._timings = {}
        if self._last is not None:
            then, before = self._last
            elapsed = max(now - then, 1e-3)
            rates = {
                name: round((count - before.get(name, 0)) / elapsed, 2)
                for name, count in counters.items()
                if name.startswith(RATES) and count != before.get(name, 0)
            }
            self.samples.append({"t": round(now, 3), "rates": rates, "latency_ms": latency})
        self._last = (now, dict(counters))

    def status(self, top: list[dict[str, Any]]) -> dict[str, Any]:
        """The page's figures: `top`, the busiest entities from /stats, each with the factors it tripped."""
        return {
            "samples": list(self.samples),
            "sample_s": SAMPLE_S,
            "scores": self.scores,
            "flagged": list(self.flagged)[-20:][::-1],  # newest first
            "top": [
                {**entity, "factors": dict(self.factors.get(entity["entityId"], Counter()).most_common(5))}
                for entity in top
            ],
        }
