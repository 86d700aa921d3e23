"""The execution seam: a Job goes in, the handler's Response comes out, whichever executor runs it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from handlers import Request, Response
from pool.settings import Settings


@dataclass(frozen=True, slots=True)
class Job:
    handler: str
    request: Request
    timeout_s: float

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")


class Executor(Protocol):
    """Runs jobs; the proxy never knows which implementation it holds."""

    async def run(self, job: Job) -> Response: ...

    def reconfigure(self, settings: Settings) -> None:
        """Apply reloaded settings (the part of them this executor uses) without dropping running jobs."""
        ...

    def status(self) -> dict[str, object]:
        """Its figures for /stats and /healthz (`available`: False when it cannot run jobs now)."""
        ...

    async def aclose(self) -> None: ...


RETRY_AFTER_S = 1  # what a request refused for load (not for what it is) is told to wait


def one_line(text: str, limit: int = 500) -> str:
    """Text from a handler or a caller made safe for one log line: line breaks and every non-ASCII or
    control character escaped (no forged log lines), and bounded."""
    return text[:limit].encode("unicode_escape").decode("ascii")


class ExecutorError(Exception):
    """Base of the executors' errors; `status` and `code` are what the proxy answers with (the same shape
    as policy.errors.IsogateError, which pool/ does not import)."""

    status = 502
    code = "executor_error"
    charged = True  # a failure of the caller's (failure_rate); not for a refusal for want of capacity
    retry_after: int | None = None  # seconds, sent as Retry-After: the refusal is about load, not the request

    def __init__(self, detail: str = "", *, retry_after: int | None = None) -> None:
        super().__init__(detail or self.code)
        self.detail = detail or self.code
        if retry_after is not None:
            self.retry_after = retry_after


class ExecutionTimeout(ExecutorError):
    """`limits.execution.max_time_ms` passed before the handler answered."""

    status = 504
    code = "execution_timeout"


class HandlerFailed(ExecutorError):
    """The handler raised, or returned something that is not a response."""

    status = 500
    code = "handler_error"


class DockerUnavailable(ExecutorError):
    """No container can run this job; isolation fails closed rather than falling back to a thread."""

    status = 503
    code = "docker_unavailable"
    charged = False


class DependencyMissing(ExecutorError):
    """A handler or app imports a package the runner image lacks (a requirements edit not yet built in):
    the gateway's to fix, named, never a 500 of the handler's."""

    status = 503
    code = "dependency_missing"
    charged = False


class ImageMissing(ExecutorError):
    """The pool's image is not on the engine: named, and never taken for an engine outage."""

    status = 503
    code = "image_missing"
    charged = False


class PoolExhausted(ExecutorError):
    """Every container is busy and none freed up within `docker.timeout_ms`."""

    status = 503
    code = "pool_exhausted"
    charged = False


class ThreadPoolFull(ExecutorError):
    """Every worker is busy and `thread_pool.max_queue` jobs already wait: refused rather than queued."""

    status = 503
    code = "thread_pool_full"
    charged = False


class EntityBusy(ExecutorError):
    """This caller already holds its share of a pool: thread workers, container requests or upstream
    requests (the `max_per_entity` of thread_pool, docker or upstream_pool)."""

    status = 429
    code = "too_many_concurrent_requests"
    charged = False


class ResponseTooLarge(ExecutorError):
    """The handler's response body is over `docker.max_response_bytes`."""

    status = 502
    code = "response_too_large"


class SandboxCrashed(ExecutorError):
    """The container or its agent died mid-request; the container is replaced."""

    status = 502
    code = "sandbox_crashed"


class MemoryLimitExceeded(ExecutorError):
    """The handler was OOM-killed at `docker.memory_limit`; the container is replaced."""

    status = 507
    code = "memory_limit_exceeded"
