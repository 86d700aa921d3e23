"""Memory watch: reads this process's real RSS."""

from pool.memory import MemoryWatch


def test_reads_real_rss_and_compares_it_with_the_limit() -> None:
    low, high = MemoryWatch(limit_mb=1), MemoryWatch(limit_mb=1_000_000)
    assert low.check() is True and low.rss_mb > 1
    assert high.check() is False and high.over is False
    assert low.checks == 1
