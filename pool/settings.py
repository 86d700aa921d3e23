"""What the executors are configured with, in the shapes pool/ reads. The proxy builds a Settings from the
live config (policy.config's ThreadPoolConfig and DockerConfig have these shapes), so pool/ never imports
policy/ and the sandbox image ships only the agent, the handler contract and user code."""

from __future__ import annotations

from collections.abc import Mapping
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


class ContainerLimits(Protocol):
    """A container pool's settings (the config's `docker` section: see its documentation there)."""

    @property
    def host(self) -> str: ...
    @property
    def image(self) -> str: ...
    @property
    def runtime(self) -> str: ...
    @property
    def gvisor(self) -> bool: ...
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
