"""The executor for docker decisions when no container pool can serve them: fails closed with 503."""

from __future__ import annotations

from handlers import Response
from pool.base import DockerUnavailable, Job


class UnavailableExecutor:
    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def run(self, job: Job) -> Response:
        raise DockerUnavailable(self.reason)

    async def aclose(self) -> None:
        return None
