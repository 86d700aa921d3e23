"""Entity state beyond one process: where each caller's history is kept (`state.backend`) and how this
gateway's table is kept in step with it (sync.StateSync)."""

from __future__ import annotations

from pathlib import Path

from policy.config import StateBackend, StateConfig
from proxy.store.base import Store
from proxy.store.sqlite import SqliteStore


def store_for(state: StateConfig, base: Path) -> Store | None:
    """The store `state.backend` names (None: memory, this process's table only); paths are relative to
    `base`, config.yaml's folder."""
    if state.backend is StateBackend.SQLITE:
        return SqliteStore(base / state.path)
    if state.backend is StateBackend.REDIS:
        from proxy.store.redis import RedisStore  # the client is imported only by those who use it

        return RedisStore(state.url, state.key_prefix, state.forget_after_days * 86400)
    return None
