"""What the executors are configured with, in the shapes pool/ reads. The proxy builds a Settings from the
live config (policy.config's ThreadPoolConfig and DockerConfig have these shapes), so pool/ never imports
policy/ and the sandbox image ships only the agent, the handler contract and user code."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pool.workload import Workload


class ThreadLimits(Protocol):
    @property
    def min_workers(self) -> int: ...
    @property
    def max_workers(self) -> int: ...
    @property
    def max_queue(self) -> int: ...


class EngineLimits(Protocol):
    """One engine of a pool (the config's `docker.engines` items)."""

    @property
    def host(self) -> str: ...
    @property
    def cert_path(self) -> str: ...
    @property
    def share(self) -> int: ...
    @property
    def runtime(self) -> str: ...


@dataclass(frozen=True)
class Engine:
    """An engine as EngineLimits: docker.host and docker.cert_path when docker.engines is not set."""

    host: str
    cert_path: str = ""
    share: int = 1
    runtime: str = ""


class ContainerLimits(Protocol):
    """A container pool's settings (the config's `docker` section: see its documentation there)."""

    @property
    def host(self) -> str: ...
    @property
    def cert_path(self) -> str: ...
    @property
    def engines(self) -> Sequence[EngineLimits]: ...
    @property
    def image(self) -> str: ...
    @property
    def runtime(self) -> str: ...
    @property
    def pool_name(self) -> str: ...
    @property
    def memory_limit(self) -> str: ...
    @property
    def memory_limit_bytes(self) -> int: ...
    @property
    def cpu_limit(self) -> float: ...
    @property
    def pids_limit(self) -> int: ...
    @property
    def tmpfs_size(self) -> str: ...
    @property
    def tmpfs_size_bytes(self) -> int: ...
    @property
    def timeout_ms(self) -> int: ...
    @property
    def warm_pool_size(self) -> int: ...
    @property
    def max_containers(self) -> int: ...
    @property
    def max_waiting(self) -> int: ...
    @property
    def max_response_bytes(self) -> int: ...
    @property
    def max_uses(self) -> int: ...
    @property
    def idle_ttl_s(self) -> int: ...
    @property
    def reuse_containers(self) -> bool: ...


@dataclass(frozen=True)
class Settings:
    """One reload's settings for every executor; each takes its part."""

    threads: ThreadLimits
    docker: ContainerLimits
    workload: Workload  # what the handler containers run
    replicas: Mapping[Workload, ContainerLimits] = field(default_factory=dict)  # each replica's pool
    drain_s: float = 0.0  # how long a retired replica pool's requests may take: the longest deadline


def engines_of(config: ContainerLimits) -> Sequence[EngineLimits]:
    """The engines a pool's containers run on: docker.engines, or the one of docker.host."""
    return config.engines or (Engine(config.host, config.cert_path),)


def split(total: int, shares: Sequence[int]) -> list[int]:
    """`total` in parts proportional to `shares`, summing to `total` (largest remainders first)."""
    whole = sum(shares)
    exact = [total * share / whole for share in shares]
    parts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(shares)), key=lambda i: parts[i] - exact[i])
    for i in by_remainder[: total - sum(parts)]:
        parts[i] += 1
    return parts


def caps(total: int, shares: Sequence[int]) -> list[int]:
    """Each engine's most containers: its share of `total` rounded up, so each has room for one (the pool's
    own maximum bounds their sum)."""
    whole = sum(shares)
    return [max(1, math.ceil(total * share / whole)) for share in shares]
