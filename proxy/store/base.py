"""The store's interface: entity figures read in bulk and updates added in bulk. A store adds what it is
given to what it holds (other gateways add theirs too); it never overwrites with one gateway's view."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from proxy.stats import EntityStats


class StoreUnavailable(Exception):
    """The store cannot be reached or refused the operation; the gateway serves on from its own table."""


class Store(Protocol):
    name: str

    async def open(self) -> None: ...

    async def fetch(self, entities: Iterable[str]) -> dict[str, EntityStats]:
        """The stored figures of those of `entities` the store knows."""
        ...

    async def recent(self, limit: int) -> dict[str, EntityStats]:
        """The `limit` entities seen most recently (a restarted gateway starts with them)."""
        ...

    async def add(self, updates: dict[str, EntityStats], window: int) -> None:
        """Add each entity's `updates` (outcomes after the stored ones) to what is stored, at once."""
        ...

    async def add_counters(self, gateway: str, counts: dict[str, int]) -> None:
        """Add to the gateway-wide counters (`/stats` requests, violations) stored for `gateway`."""
        ...

    async def counters(self, gateway: str) -> dict[str, int]:
        """The gateway-wide counters stored for `gateway` (a restart continues from them)."""
        ...

    async def save_document(self, gateway: str, name: str, text: str) -> None:
        """Keep `text` (JSON) as `gateway`'s document `name` (the reload history), replacing the last."""
        ...

    async def document(self, gateway: str, name: str) -> str | None:
        """`gateway`'s document `name`, or None."""
        ...

    async def forget(self, before: float) -> int:
        """Drop the entities last seen before `before` (a time.time()); how many went."""
        ...

    async def aclose(self) -> None: ...
