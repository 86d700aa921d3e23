"""What the engine reports about a pool's containers: OOM kills, and deaths (`die`).

Under runc, Docker's `State.OOMKilled` stays false while a container's main process lives (measured: the
agent is an exec, not the main process), so the engine's `oom` events are the signal, together with the
agent's exit code 137 (SIGKILL). Under gVisor the whole sandbox is killed and its state says so. `die`
events tell the pool that a container is gone (`docker kill`, the engine's OOM killer, a crash): an idle
one is replaced before a request finds it dead, a busy one's call ends now (gVisor keeps its exec stream
open after the sandbox died).
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
from pool.sandbox import Sandbox

EVENT_WAIT_S = 0.5  # the oom event arrives with the exec's end; allow for scheduling
STATE_WAIT_S = 3.0  # gVisor: the killed sandbox's state turns within ~0.1 s, on a loaded machine later
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

    async def killed(self, client: aiodocker.Docker, sandbox: Sandbox) -> bool:
        """Whether the sandbox's agent died of an OOM kill. runc: the agent, an exec, is killed alone: its
        exit code is 137 and an `oom` event names the container. gVisor: the sandbox's memory is one
        cgroup, killed as a whole: the exec is gone with it, no `oom` event comes, and the container's
        state says OOMKilled (the exec reports 128, or nothing). Either signal may trail the stream's end (the
        container still shows running), so each is awaited briefly."""
        started = time.monotonic()
        until = started + EVENT_WAIT_S
        try:
            code = (await deadline(Exec(client, sandbox.exec_id).inspect())).get("ExitCode")
        except aiodocker.DockerError as exc:
            if exc.status != 404:
                return False
            code = None  # the exec went with its container
        except (aiohttp.ClientError, OSError, EngineTimeout):
            return False
        if code == SIGKILL_EXIT:
            while sandbox.id not in self._killed and time.monotonic() < until:
                await asyncio.sleep(0.02)
            return sandbox.id in self._killed
        if code is not None and not sandbox.gvisor:
            return False  # the agent exited by itself
        until = started + (STATE_WAIT_S if sandbox.gvisor else EVENT_WAIT_S)
        while True:
            try:
                state = (await deadline(sandbox.container.show()))["State"]
            except (aiodocker.DockerError, aiohttp.ClientError, OSError, EngineTimeout, KeyError):
                return False
            if not state.get("Running", True) or time.monotonic() >= until:
                return bool(state.get("OOMKilled"))
            await asyncio.sleep(0.05)

    def forget(self, container_id: str) -> None:
        self._killed.discard(container_id)
