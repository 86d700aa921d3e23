"""Profile learning: while the config asks for a profile file that does not exist yet, the gateway learns
one from live traffic (authenticated or trusted callers only) and writes it, atomically, when complete."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policy.identity import Trust
from policy.profile import ProfileBuilder, observe
from policy.risk import RiskInput, RiskScore
from proxy.loader import Loaded

log = logging.getLogger("isogate.gateway")


@dataclass
class ProfileLearning:
    builder: ProfileBuilder | None = None  # None: not learning
    into: Path | None = None
    wanted: int = 0  # requests to learn from (risk.profile.learn_requests)
    _writes: set[asyncio.Task[None]] = field(default_factory=set)

    def update(self, loaded: Loaded) -> None:
        """Learn while `loaded` asks for a profile (learn_requests > 0) and none was found."""
        self.wanted = loaded.config.risk.profile.learn_requests
        if self.wanted <= 0 or loaded.profile is not None:
            self.builder, self.into = None, None
        elif self.builder is None:
            self.builder, self.into = ProfileBuilder(), loaded.profile_path
            log.info("learning a profile from the next %d unflagged requests", self.wanted)

    def observe(self, inp: RiskInput, risk: RiskScore) -> None:
        """Feed a request whose content no factor flagged, from an authenticated or trusted caller, to the
        profile being learned; write it when complete. Anonymous callers never teach it what is normal:
        what it learns becomes normal, and an attacker would teach it theirs."""
        identity = inp.identity
        if self.builder is None or risk.suspicious_content:
            return
        if not (identity.authenticated or identity.trust is Trust.TRUSTED):
            return
        observe(self.builder, inp.incoming.method, inp.fields)
        if self.builder.requests >= self.wanted and self.into is not None:
            profile, path = self.builder.build(), self.into
            self.builder = None
            task = asyncio.create_task(asyncio.to_thread(_write_json, path, profile.to_json()))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)
            log.info("profile learned from %d requests: writing %s", self.wanted, path)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically and durably: the config watcher never reads half a profile, and after a crash the
    file is the old one or the whole new one (data synced before the rename, the rename synced after)."""
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", encoding="utf-8") as out:
        out.write(json.dumps(data, indent=1, sort_keys=True))
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
