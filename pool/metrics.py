"""Latency samples and their percentiles, for /stats (gateway latencies and pool acquire times)."""

from __future__ import annotations

from collections.abc import Iterable


def percentiles(samples: Iterable[float]) -> dict[str, float | int]:
    """count, p50, p90, p99 and max of `samples` (milliseconds), rounded to microseconds."""
    ordered = sorted(samples)
    if not ordered:
        return {"count": 0}

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {
        "count": len(ordered),
        "p50": at(0.50),
        "p90": at(0.90),
        "p99": at(0.99),
        "max": round(ordered[-1], 3),
    }
