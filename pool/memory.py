"""Memory monitor: reads the gateway process's resident set size with psutil against a limit."""

from __future__ import annotations

import psutil

MB = 1024 * 1024


class MemoryWatch:
    def __init__(self, limit_mb: int) -> None:
        self._process = psutil.Process()
        self.limit_mb = limit_mb
        self.rss_mb = 0.0
        self.over = False
        self.checks = 0

    def check(self) -> bool:
        """Sample RSS now; True when it is above the limit."""
        self.rss_mb = self._process.memory_info().rss / MB
        self.over = self.rss_mb > self.limit_mb
        self.checks += 1
        return self.over
