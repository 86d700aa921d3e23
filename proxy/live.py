"""The config being served, and how it came to be: its generation, source digest, last error and the
recent reloads (what /stats shows under `config`). A swap is one assignment: each request keeps the
snapshot it started with."""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from policy.changes import describe, keep_running_values
from policy.config import Config
from policy.risk import Factor

log = logging.getLogger("isogate.gateway")


@dataclass
class LiveConfig:
    config: Config
    plugins: dict[str, Factor]
    generation: int = 1
    loaded_at: float = field(default_factory=time.time)
    source_sha256: str | None = None
    last_error: str | None = None
    reloads: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=20))

    def swap(self, config: Config, plugins: dict[str, Factor], sha256: str, trigger: str) -> dict[str, Any]:
        """Serve a validated config from now on (values that need a restart keep running); the reload's
        record, as /stats lists it."""
        old = self.config
        config, restart = keep_running_values(old, config)
        changes = describe(old, config)
        self.config, self.plugins = config, plugins
        self.generation += 1
        self.loaded_at, self.source_sha256, self.last_error = time.time(), sha256, None
        record = {"generation": self.generation, "at": self.loaded_at, "trigger": trigger, **changes}
        if restart:
            record["restart_needed"] = restart
            log.warning("config changes %s need a restart; running values kept", ", ".join(restart))
        self.reloads.append(record)
        log.info("config generation %d applied (%s): %s", self.generation, trigger, changes)
        return record

    def code_changed(self, version: str, trigger: str) -> dict[str, Any]:
        """Record new handler or app code served under the same config (same generation)."""
        record = {
            "generation": self.generation,
            "at": time.time(),
            "trigger": trigger,
            "code_version": version,
        }
        self.reloads.append(record)
        self.last_error = None
        return record

    def history(self) -> dict[str, Any]:
        """What a restart continues from (kept in the state store)."""
        return {"generation": self.generation, "reloads": list(self.reloads)}

    def resume(self, stored: dict[str, Any]) -> None:
        """Continue an earlier run's history: its generations go on, and this start is one of them."""
        generation, earlier = stored.get("generation"), stored.get("reloads")
        if not isinstance(generation, int) or not isinstance(earlier, list):
            return
        self.generation = max(self.generation, generation + 1)
        self.reloads.extend(record for record in earlier if isinstance(record, dict))
        self.reloads.append({"generation": self.generation, "at": self.loaded_at, "trigger": "start"})

    def error(self, error: str | None) -> None:
        """Record a reload's error (logged once, not on every poll), or clear it."""
        if error is not None and error != self.last_error:
            log.error("config not applied, generation %d keeps serving: %s", self.generation, error)
        self.last_error = error

    def status(self) -> dict[str, object]:
        return {
            "generation": self.generation,
            "loaded_at": round(self.loaded_at, 3),
            "source_sha256": self.source_sha256,
            "last_error": self.last_error,
            "reloads": list(self.reloads),
        }
