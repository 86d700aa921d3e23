"""The entity table: compact, bounded by a share of the memory limit, exact over its failure window."""

import tracemalloc

import pytest

from conftest import make_config
from policy.config import ENTITY_BYTES
from proxy.stats import EntityStats, Outcome, Stats


def outcome(entity: str, status: int = 200) -> Outcome:
    return Outcome(entity, status, "thread", "low", 1.0, 0.5)


def test_an_entity_costs_less_than_the_budgeted_bytes() -> None:
    stats = Stats(make_config().stats, window=50, capacity=1_000_000)
    tracemalloc.start()
    try:
        for i in range(20_000):  # a JWT subject's length, each seen twice
            stats.record(outcome(f"user-{i:012d}"))
            stats.record(outcome(f"user-{i:012d}", 500))
        used, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert used / 20_000 < ENTITY_BYTES  # was ~1,030 bytes with a deque per entity


@pytest.mark.parametrize(
    ("memory_mb", "max_entities", "capacity"),
    [(120, 100_000, 49_152), (80, 100_000, 32_768), (100_000, 100_000, 100_000), (120, 500, 500)],
)
def test_the_table_takes_at_most_a_quarter_of_the_memory_limit(
    memory_mb: int, max_entities: int, capacity: int
) -> None:
    config = make_config({"limits": {"memory_limit_mb": memory_mb}, "stats": {"max_entities": max_entities}})
    assert config.entity_capacity == capacity


def test_the_least_recently_seen_entity_is_evicted_at_capacity() -> None:
    stats = Stats(make_config().stats, window=50, capacity=3)
    for name in ("a", "b", "c", "a", "d"):
        stats.record(outcome(name))
    assert stats.entity("b") is None and stats.entity("a") is not None
    assert stats.snapshot()["entities"] == {
        "tracked": 3,
        "capacity": 3,
        "top": stats.snapshot()["entities"]["top"],
    }


def test_the_failure_window_keeps_exactly_the_last_outcomes() -> None:
    stats = Stats(make_config().stats, window=5)
    for status in (500, 500, 500, 200, 200, 200, 200, 500):
        stats.record(outcome("e", status))
    history = stats.history("e")
    assert (history.requests, history.recent, history.recent_failures) == (8, 5, 1)


def history_of(*statuses: int, window: int = 4) -> EntityStats:
    figures = EntityStats()
    for status in statuses:
        figures.add(outcome("e", status), window)
    return figures


@pytest.mark.parametrize(
    ("earlier", "later", "recent", "bits"),
    [
        ((200, 500), (500,), 3, 0b011),  # later outcomes go after: newest lowest
        ((500, 500, 500), (200, 200), 4, 0b1100),  # the window (4) keeps the newest
        ((), (500, 200), 2, 0b10),
        ((500, 200, 500, 200), (), 4, 0b1010),
        ((500,), (200, 200, 200, 200, 200), 4, 0b0000),  # later alone fills the window
    ],
)
def test_merging_puts_later_outcomes_after_and_keeps_the_window(
    earlier: tuple[int, ...], later: tuple[int, ...], recent: int, bits: int
) -> None:
    merged = history_of(*earlier).merge(history_of(*later), 4)
    assert (merged.total, merged.recent, merged.recent_bits) == (len(earlier) + len(later), recent, bits)
    assert merged.failed == [*earlier, *later].count(500)


def test_figures_read_from_a_store_keep_what_is_not_written_yet() -> None:
    stats = Stats(make_config().stats, window=4)
    stats.pending = {}
    stats.record(outcome("e", 500))  # here, not yet written
    assert stats.history("new").requests == 0 and stats.misses == {"new"}  # asked for: read it next sync
    stats.stored("e", history_of(200, 200, 200))  # what the store holds (other gateways' outcomes)
    assert (stats.history("e").requests, stats.history("e").recent_failures) == (4, 1)
    assert stats.pending["e"].total == 1  # still to be written
