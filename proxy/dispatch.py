"""Execute step: each decision's job runs on its executor (the thread pool, with a bounded share per
untrusted caller; the handler containers; or an isolated replica's containers), and a reload's settings
reach every executor through the one seam (pool.base.Executor.reconfigure)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from handlers import Response
from policy.config import Config, DockerConfig, IsolatedConfig, Mode
from pool.base import Executor, Job, MemoryLimitExceeded
from pool.replicas import Replicas
from pool.settings import Settings
from pool.workload import Workload
from proxy.memory import ThreadUse
from proxy.shares import Held
from proxy.stats import Stats


@dataclass
class Dispatch:
    stats: Stats
    threads: ThreadUse
    executors: dict[Mode, Executor] = field(default_factory=dict)  # set up by the app's lifecycles
    replicas: Replicas | None = None  # the isolated replicas' pools (None: docker.enabled is false)
    containers: Held = field(
        default_factory=lambda: Held("wait for or run in containers (docker.max_per_entity)")
    )
    upstreams: Held = field(
        default_factory=lambda: Held("wait on upstream routes (upstream_pool.max_per_entity)")
    )

    async def execute(self, mode: Mode, job: Job, entity: str, share: int | None) -> Response:
        """Run `job` on the executor for `mode`, `entity` holding at most `share` of that pool's (the
        `max_per_entity` of thread_pool or docker; None for trusted tokens, vouched for by the operator
        and bounded only by the pool's queue)."""
        if mode is not Mode.THREAD:
            return await self.contained(self.executors[mode], job, entity, share)
        with self.threads.hold(entity, share):
            return await self.executors[mode].run(job)

    async def contained(self, executor: Executor, job: Job, entity: str, share: int | None) -> Response:
        """Run `job` in a container (a handler's, or an isolated replica's), `entity` holding at most
        `share` container requests: a memory-limit kill there is the entity's resource violation."""
        with self.containers.hold(entity, share):
            try:
                return await executor.run(job)
            except MemoryLimitExceeded:
                self.stats.violation(entity)
                raise

    def replica(self, isolated: IsolatedConfig) -> Executor | None:
        """The pool of an isolated replica (None: docker.enabled is false)."""
        return self.replicas.get(replica_workload(isolated)) if self.replicas is not None else None

    def reconfigure(self, settings: Settings) -> None:
        for executor in self.executors.values():
            executor.reconfigure(settings)
        if self.replicas is not None:
            self.replicas.reconfigure(settings)


def settings_of(config: Config, workload: Workload) -> Settings:
    """What `config` asks of the executors, with the handler containers running `workload`."""
    limit = config.limits.execution.max_time_ms
    drain_ms = max([limit, *(route.timeout_ms or limit for route in config.routes)])
    return Settings(config.thread_pool, config.docker, workload, replicas_of(config), drain_ms / 1000)


def replicas_of(config: Config) -> dict[Workload, DockerConfig]:
    """Each replica the routes name, with its pool's docker section (the first route naming it sizes it)."""
    found: dict[Workload, DockerConfig] = {}
    for route in config.routes:
        isolated = route.isolated
        if isolated is not None and isolated.image:
            sized = replace(
                config.docker, warm_pool_size=isolated.warm_pool_size, max_containers=isolated.max_containers
            )
            found.setdefault(replica_workload(isolated), sized)
    return found


def replica_workload(isolated: IsolatedConfig) -> Workload:
    return Workload(image=isolated.image, port=isolated.port)
