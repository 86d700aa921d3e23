"""The container pools of isolated replicas: one per image and port the routes name (`isolated: {image,
port}`), kept in step with the config. A reload that names a new replica starts its pool warming; one whose
replica no route names any more drains (its requests finish) and is closed."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pool.containers import ContainerPool
from pool.settings import Settings
from pool.workload import Workload

log = logging.getLogger("isogate.pool.replicas")

DRAIN_POLL_S = 0.1


class Replicas:
    def __init__(self) -> None:
        self.pools: dict[Workload, ContainerPool] = {}
        self.drain_s = 0.0  # how long a retired pool's requests may take to finish: the longest deadline
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, settings: Settings) -> None:
        """The pools of the replicas `settings` names, warm before the gateway serves."""
        self.reconfigure(settings)
        await asyncio.gather(*self._tasks)

    def reconfigure(self, settings: Settings) -> None:
        """Open the pools of replicas new in `settings.replicas` (warming in the background), resize or
        respec the ones kept, and retire the ones no route names any more."""
        pools, self.drain_s = settings.replicas, settings.drain_s
        for workload, docker in pools.items():
            pool = self.pools.get(workload)
            if pool is None:
                pool = self.pools[workload] = ContainerPool(docker, workload)
                self._spawn(pool.start())
                log.info("isolated replica %s:%d: pool %s opened", workload.image, workload.port, pool.name)
            else:
                pool.update(docker, workload)
        for workload in [w for w in self.pools if w not in pools]:
            self._spawn(self._retire(self.pools.pop(workload)))

    def get(self, workload: Workload) -> ContainerPool | None:
        return self.pools.get(workload)

    async def _retire(self, pool: ContainerPool) -> None:
        """Close `pool` once its requests finished (or after drain_s: what still runs then is cut)."""
        loop = asyncio.get_running_loop()
        until = loop.time() + self.drain_s
        while pool.status()["busy"] and loop.time() < until:
            await asyncio.sleep(DRAIN_POLL_S)
        await pool.aclose()
        log.info("isolated replica pool %s closed: no route names it", pool.name)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def status(self) -> dict[str, dict[str, object]]:
        return {f"{w.image} port {w.port}": pool.status() for w, pool in self.pools.items()}

    async def aclose(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
        pools, self.pools = list(self.pools.values()), {}
        await asyncio.gather(*(pool.aclose() for pool in pools))
