"""Memory accounting: the gateway's RSS against `limits.memory_limit_mb`, and which callers are charged a
resource violation when it is exceeded (those whose thread jobs ran while it grew)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pool.memory import MemoryWatch
from proxy import heap
from proxy.shares import Held
from proxy.stats import Stats

log = logging.getLogger("isogate.gateway")
GROWTH_MIN_MB = 8.0  # RSS growth between two memory checks that can be charged to callers...
GROWTH_SHARE = 0.1  # ...or this share of limits.memory_limit_mb, whichever is larger


@dataclass
class ThreadUse(Held):
    """Who runs thread jobs: how many each entity runs now, and who ran any since the last memory check."""

    what: str = "run in the thread pool (thread_pool.max_per_entity)"
    ran: set[str] = field(default_factory=set)

    def took(self, entity: str) -> None:
        self.ran.add(entity)

    def take_ran(self) -> set[str]:
        """Who ran since the last call; jobs still running count for the next interval too."""
        ran, self.ran = self.ran, set(self.running)
        return ran


@dataclass
class MemoryAccount:
    watch: MemoryWatch
    threads: ThreadUse
    stats: Stats

    @property
    def over(self) -> bool:
        return self.watch.over

    def check(self) -> None:
        """Sample RSS. Over the limit, a resource violation is charged only for growth this check saw (at
        least GROWTH_SHARE of the limit since the last check) and only to entities that ran thread jobs in
        that interval: memory that was already there, or that grew while no thread job ran (the gateway's
        own tables, say), is charged to no caller. Threads share one heap, so this is the best attribution
        a process can make; isolation is what containers are for."""
        watch = self.watch
        before, ran = watch.rss_mb, self.threads.take_ran()
        if not watch.check():
            return
        log.warning("Memory limit exceeded: %.0fMB / %dMB", watch.rss_mb, watch.limit_mb)
        grew = watch.rss_mb - before
        if grew < max(GROWTH_MIN_MB, GROWTH_SHARE * watch.limit_mb):
            return
        for entity in ran:
            log.warning("memory grew %.0fMB while %s ran a thread job: resource violation", grew, entity)
            self.stats.violation(entity)

    def status(self) -> dict[str, object]:
        watch = self.watch
        return {
            "rss_mb": round(watch.rss_mb, 1),
            "limit_mb": watch.limit_mb,
            "over_limit": watch.over,
            "checks": watch.checks,
            "gc": heap.status(),
        }
