"""What each caller holds of a pool now, bounded by its share (`max_per_entity`): past it 429."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from pool.base import RETRY_AFTER_S, EntityBusy


@dataclass
class Held:
    what: str  # how the refusal says it: "wait for or run in containers (docker.max_per_entity)"
    running: Counter[str] = field(default_factory=Counter)

    @contextmanager
    def hold(self, entity: str, share: int | None) -> Iterator[None]:
        """One more for `entity`, or 429 when it holds `share` already (None: no bound)."""
        if share is not None and self.running[entity] >= share:
            raise EntityBusy(f"{share} of your requests already {self.what}", retry_after=RETRY_AFTER_S)
        self.running[entity] += 1
        self.took(entity)
        try:
            yield
        finally:
            self.running[entity] -= 1
            if not self.running[entity]:
                del self.running[entity]

    def took(self, entity: str) -> None:
        """Called as `entity` takes one (for a subclass that remembers who did)."""
