"""What the engine reports about a pool's containers: OOM kills, and deaths (`die`) of idle ones.

Docker's `State.OOMKilled` stays false while a container's main process lives (measured: the agent is an
exec, not the main process), so the engine's `oom` events are the signal, together with the agent's exit
code 137 (SIGKILL). `die` events tell the pool that a container it holds idle is gone (`docker kill`, the
engine's OOM killer, a crash), so it is replaced before a request finds it dead.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import aiodocker
import aiohttp
from aiodocker.execs import Exec

from pool.engine import EngineTimeout, deadline

EVENT_WAIT_S = 0.5  # the oom event arrives with the exec's end; allow for scheduling
SIGKILL_EXIT = 137


class OomWatch:
    def __init__(self, label: str, on_die: Callable[[str], None] = lambda _: None) -> None:
        self._label = label  # `isogate.pool=<name>`: only this pool's containers
        self._on_die = on_die
        self._killed: set[str] = set()

    async def run(self, client: aiodocker.Docker) -> None:
        """Collect OOM kills and report deaths, until the event stream ends."""
        subscriber = client.events.subscribe(create_task=False)  # type: ignore[no-untyped-call]
        filters = {"event": ["oom", "die"], "label": [self._label]}
        stream = asyncio.create_task(client.events.run(filters=json.dumps(filters)))
        try:
            while (event := await subscriber.get()) is not None:
                container_id = str(event.get("id", ""))
                if event.get("status", event.get("Action")) == "oom":
                    self._killed.add(container_id)
                else:
                    self._on_die(container_id)
        finally:
            stream.cancel()
            await asyncio.gather(stream, return_exceptions=True)

    async def killed(self, client: aiodocker.Docker, container_id: str, exec_id: str) -> bool:
        """True when the agent died of SIGKILL and the engine reported an OOM kill in its container."""
        try:
            code = (await deadline(Exec(client, exec_id).inspect())).get("ExitCode")
        except (aiodocker.DockerError, aiohttp.ClientError, OSError, EngineTimeout):
            return False
        if code != SIGKILL_EXIT:
            return False
        until = time.monotonic() + EVENT_WAIT_S
        while container_id not in self._killed and time.monotonic() < until:
            await asyncio.sleep(0.02)
        return container_id in self._killed

    def forget(self, container_id: str) -> None:
        self._killed.discard(container_id)
