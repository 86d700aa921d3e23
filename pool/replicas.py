"""The container pools of isolated replicas: one per image and port the routes name (`isolated: {image,
port}`), kept in step with the config. A reload that names a new replica starts its pool warming; one whose
replica no route names any more drains (its requests finish) and is closed."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

from policy.config import Config, DockerConfig, IsolatedConfig
from pool.containers import ContainerPool
from pool.sandbox import Workload

log = logging.getLogger("isogate.pool.replicas")

DRAIN_POLL_S = 0.1


def wanted(config: Config) -> dict[Workload, DockerConfig]:
    """Each replica the routes name, with its pool's docker section (the first route naming it sizes it)."""
    found: dict[Workload, DockerConfig] = {}
    for route in config.routes:
        isolated = route.isolated
        if isolated is not None and isolated.image:
            found.setdefault(workload_of(isolated), sized(config.docker, isolated))
    return found


def workload_of(isolated: IsolatedConfig) -> Workload:
    return Workload(image=isolated.image, port=isolated.port)


def sized(docker: DockerConfig, isolated: IsolatedConfig) -> DockerConfig:
    return replace(docker, warm_pool_size=isolated.warm_pool_size, max_containers=isolated.max_containers)


class Replicas:
    def __init__(self) -> None:
        self.pools: dict[Workload, ContainerPool] = {}
        self.drain_s = 0.0  # how long a retired pool's requests may take to finish: the longest deadline
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, config: Config) -> None:
        """The pools of the replicas `config` names, warm before the gateway serves."""
        self.sync(config)
        await asyncio.gather(*self._tasks)

    def sync(self, config: Config) -> None:
        """Open the pools of replicas new in `config` (warming in the background), resize or respec the
        ones kept, and retire the ones no route names any more."""
        pools = wanted(config)
        limit = config.limits.execution.max_time_ms
        self.drain_s = max([limit, *(route.timeout_ms or limit for route in config.routes)]) / 1000
        for workload, docker in pools.items():
            pool = self.pools.get(workload)
            if pool is None:
                pool = self.pools[workload] = ContainerPool(docker, workload)
                self._spawn(pool.start())
                log.info("isolated replica %s:%d: pool %s opened", workload.image, workload.port, pool.name)
            else:
                pool.reconfigure(docker)
        for workload in [w for w in self.pools if w not in pools]:
            self._spawn(self._retire(self.pools.pop(workload)))

    def get(self, isolated: IsolatedConfig) -> ContainerPool | None:
        return self.pools.get(workload_of(isolated))

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
