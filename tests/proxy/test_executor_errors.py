"""The proxy's handling of every executor outcome, without Docker: a fake executor (as httpx's MockTransport
stands in for the network) answers or fails each job as the test says, behind a real gateway."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from conftest import Gateway, bearer
from handlers import Response
from policy.config import Mode
from pool.base import (
    DockerUnavailable,
    ExecutionTimeout,
    ExecutorError,
    HandlerFailed,
    Job,
    MemoryLimitExceeded,
    PoolExhausted,
    ResponseTooLarge,
    SandboxCrashed,
    ThreadPoolFull,
)
from pool.settings import Settings
from proxy.gateway import GATEWAY

TRUSTED = bearer("ops", trust="trusted")


class FakeExecutor:
    """An Executor whose every job is answered by `answer` (which may raise)."""

    def __init__(self, answer: Callable[[Job], Response], available: bool = True) -> None:
        self.answer, self.available = answer, available
        self.jobs: list[Job] = []

    async def run(self, job: Job) -> Response:
        self.jobs.append(job)
        return self.answer(job)

    def reconfigure(self, settings: Settings) -> None:
        self.settings = settings

    def status(self) -> dict[str, object]:
        return {"available": self.available, "reason": None if self.available else "fake: down"}

    async def aclose(self) -> None:
        pass


def failing(error: ExecutorError) -> Callable[[Job], Response]:
    def answer(job: Job) -> Response:
        raise error

    return answer


@pytest.mark.parametrize(
    ("error", "status", "code", "retry_after"),
    [
        (HandlerFailed("handler echo raised ValueError"), 500, "handler_error", None),
        (SandboxCrashed("the sandbox died"), 502, "sandbox_crashed", None),
        (ResponseTooLarge("over docker.max_response_bytes"), 502, "response_too_large", None),
        (DockerUnavailable("engine unreachable"), 503, "docker_unavailable", None),
        (PoolExhausted("all busy", retry_after=1), 503, "pool_exhausted", "1"),
        (ThreadPoolFull("queue full", retry_after=1), 503, "thread_pool_full", "1"),
        (ExecutionTimeout("ran past max_time_ms"), 504, "execution_timeout", None),
        (MemoryLimitExceeded("ran out of memory"), 507, "memory_limit_exceeded", None),
    ],
)
async def test_each_executor_error_has_its_status_and_json_body(
    gateway: Gateway, error: ExecutorError, status: int, code: str, retry_after: str | None
) -> None:
    client = await gateway({"execution_mode": "thread"})
    fake = client.app[GATEWAY].dispatch.executors[Mode.THREAD] = FakeExecutor(failing(error))
    response = await client.get("/echo?x=1", headers=TRUSTED)
    assert (response.status, await response.json()) == (status, {"error": code, "detail": error.detail})
    assert response.headers.get("Retry-After") == retry_after
    assert [job.handler for job in fake.jobs] == ["echo"]
    assert (await client.get("/healthz")).status == 200  # the gateway serves on


async def test_a_response_passes_as_made_and_an_unavailable_docker_executor_degrades_healthz(
    gateway: Gateway,
) -> None:
    client = await gateway({"execution_mode": "thread"})
    made = Response(201, (("X-Made", "here"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")), b"\x00made")
    client.app[GATEWAY].dispatch.executors[Mode.THREAD] = FakeExecutor(lambda job: made)
    response = await client.get("/echo", headers=TRUSTED)
    assert (response.status, await response.read()) == (201, b"\x00made")
    assert response.headers.getall("Set-Cookie") == ["a=1", "b=2"] and response.headers["X-Made"] == "here"
    gw = client.app[GATEWAY]
    gw.live.config = replace(gw.config, docker=replace(gw.config.docker, enabled=True))
    gw.dispatch.executors[Mode.DOCKER] = FakeExecutor(lambda job: made, available=False)
    health = await client.get("/healthz")
    assert health.status == 503 and (await health.json())["status"] == "degraded"
