"""Thread executor: handlers run in a bounded pool of threads inside the gateway process.

A Python thread cannot be killed: on timeout the client gets 504 at once, but the handler keeps its
worker until it returns. `busy` counts such workers too, so a stuck handler is visible in /stats.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from handlers import Request, Response, to_response
from pool.base import RETRY_AFTER_S, ExecutionTimeout, HandlerFailed, Job, ThreadPoolFull, one_line
from pool.registry import Handle, HandlerRegistry
from pool.settings import Settings

log = logging.getLogger("isogate.pool.thread")


def _call(handle: Handle, request: Request) -> Response:
    return to_response(handle(request))


class ThreadExecutor:
    def __init__(
        self, registry: HandlerRegistry, min_workers: int, max_workers: int, max_queue: int = 64
    ) -> None:
        self._registry = registry
        self.max_queue = max_queue
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="isogate-handler")
        self._lock = threading.Lock()
        self.size = max_workers
        self.busy = 0
        self._prestart(min_workers)

    def _prestart(self, count: int) -> None:
        """Start `count` workers now: each waits at a barrier, so each needs a thread of its own."""
        if count > 0:
            barrier = threading.Barrier(count)
            for _ in range(count):
                self._pool.submit(barrier.wait, 5.0)

    def reconfigure(self, settings: Settings) -> None:
        """Resized: a new pool for new jobs; jobs already running finish in the old one, which then goes."""
        limits = settings.threads
        self.max_queue = limits.max_queue
        if limits.max_workers == self.size:
            return
        old = self._pool
        self._pool = ThreadPoolExecutor(limits.max_workers, thread_name_prefix="isogate-handler")
        self.size = limits.max_workers
        self._prestart(limits.min_workers)
        old.shutdown(wait=False)

    def _finished(self, _: Future[Response]) -> None:
        with self._lock:
            self.busy -= 1

    async def run(self, job: Job) -> Response:
        handle = self._registry.get(job.handler)
        with self._lock:
            if self.busy >= self.size + self.max_queue:  # workers busy, queue full: refuse at once
                raise ThreadPoolFull(
                    f"all {self.size} workers busy, {self.max_queue} jobs waiting (thread_pool.max_queue)",
                    retry_after=RETRY_AFTER_S,
                )
            self.busy += 1
        submit = getattr(handle, "submit", None)  # an ASGI app: its own loop runs it, no worker needed
        future = submit(job.request) if submit is not None else self._pool.submit(_call, handle, job.request)
        future.add_done_callback(self._finished)
        try:
            async with asyncio.timeout(job.timeout_s) as deadline:
                try:
                    return await asyncio.wrap_future(future)
                except asyncio.CancelledError:  # the caller left: a queued job is dropped with it...
                    if future.running():  # ...a running one keeps its worker (a thread cannot be stopped)
                        await self._outlive(future, deadline)
                    raise
        except TimeoutError:
            raise ExecutionTimeout(
                f"handler {job.handler} ran past limits.execution.max_time_ms ({job.timeout_s * 1000:.0f} ms)"
            ) from None
        except Exception as exc:  # the message may carry caller input: escaped; the traceback at debug
            log.error("handler %s raised %s: %s", job.handler, type(exc).__name__, one_line(str(exc)))
            log.debug("handler %s traceback", job.handler, exc_info=exc)
            raise HandlerFailed(f"handler {job.handler} raised {type(exc).__name__}") from exc

    @staticmethod
    async def _outlive(future: Future[Response], deadline: asyncio.Timeout) -> None:
        """Return only when a job whose caller left has ended or reached its deadline, as a timed-out one
        does: until then the caller still holds its share of the workers (proxy.dispatch), so leaving
        and asking again cannot take more of them."""
        remaining = (deadline.when() or 0) - asyncio.get_running_loop().time()
        if remaining > 0:
            await asyncio.wait([asyncio.wrap_future(future)], timeout=remaining)

    def status(self) -> dict[str, object]:
        return {"available": True, "size": self.size, "busy": self.busy}

    async def aclose(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
