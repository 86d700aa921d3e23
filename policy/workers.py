"""Worker processes' share of the config: each of `count` gateway processes runs its own container pools
(their names suffixed, so that one worker never removes another's containers as leftovers), sized so that
`max_containers` and `warm_pool_size` are the totals across the workers (at least one container each)."""

from __future__ import annotations

from dataclasses import replace

from policy.config import Config, DockerConfig, IsolatedConfig


def share(total: int, index: int, count: int) -> int:
    """Worker `index`'s part of `total`: the remainder goes to the first workers."""
    return total // count + (1 if index < total % count else 0)


def worker_slice(config: Config, index: int, count: int) -> Config:
    """`config` as worker `index` of `count` runs it (unchanged for a single process)."""
    if count <= 1:
        return config
    routes = tuple(
        replace(route, isolated=_isolated(route.isolated, index, count)) if route.isolated else route
        for route in config.routes
    )
    return replace(config, docker=_docker(config.docker, index, count), routes=routes)


def _docker(docker: DockerConfig, index: int, count: int) -> DockerConfig:
    most = max(1, share(docker.max_containers, index, count))
    warm = min(share(docker.warm_pool_size, index, count), most)
    return replace(docker, pool_name=f"{docker.pool_name}-w{index}", max_containers=most, warm_pool_size=warm)


def _isolated(isolated: IsolatedConfig, index: int, count: int) -> IsolatedConfig:
    if not isolated.image:
        return isolated
    most = max(1, share(isolated.max_containers, index, count))
    return replace(
        isolated, max_containers=most, warm_pool_size=min(share(isolated.warm_pool_size, index, count), most)
    )
