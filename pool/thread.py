"""Thread executor: handlers run in a bounded pool of threads inside the gateway process.

The hop is as light as the work allows: a job goes to the workers through one SimpleQueue and its answer
comes back with one call_soon_threadsafe; its deadline is one timer that answers 504 itself (no
asyncio.timeout, shield or second future per job: together they cost about 35 us of loop time a job at
concurrency 50, measured, more than the rest of the hop). A Python thread cannot be killed: on timeout the
client gets 504 at once, but the handler keeps its worker until it returns. `busy` counts such workers too,
so a stuck handler is visible in /stats.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from queue import SimpleQueue
from typing import Any

from handlers import Request, Response, to_response
from pool.base import RETRY_AFTER_S, ExecutionTimeout, HandlerFailed, Job, ThreadPoolFull, one_line
from pool.registry import Handle, HandlerRegistry
from pool.settings import Settings

log = logging.getLogger("isogate.pool.thread")


class _Work:
    """One job on its way through the workers. `answer` is the caller's (it may have left meanwhile);
    `timer` answers 504 at the deadline; `ended` is set when a worker is done with the job, and `waiter`
    then, if its caller left while it ran; a job `dropped` before a worker took it never runs."""

    __slots__ = ("handle", "request", "loop", "answer", "timer", "waiter", "started", "dropped", "ended")

    def __init__(self, handle: Handle, request: Request, loop: asyncio.AbstractEventLoop) -> None:
        self.handle, self.request, self.loop = handle, request, loop
        self.answer: asyncio.Future[Response] = loop.create_future()
        self.timer: asyncio.TimerHandle | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.started = False
        self.dropped = False
        self.ended = False


class ThreadExecutor:
    def __init__(
        self, registry: HandlerRegistry, min_workers: int, max_workers: int, max_queue: int = 64
    ) -> None:
        self._registry = registry
        self.max_queue = max_queue
        self.size = max_workers
        self.busy = 0  # jobs queued or running (a worker stuck past its deadline included)
        self._jobs: SimpleQueue[_Work | None] = SimpleQueue()  # None: one worker too many, it ends
        self._lock = threading.Lock()
        self._workers = 0
        self._idle = 0  # workers free for a job (started ones included: they will be)
        self._queued = 0  # jobs put in the queue and not taken yet
        with self._lock:
            for _ in range(min(min_workers, max_workers)):
                self._start_worker()

    def _start_worker(self) -> None:
        """Called with the lock held."""
        self._workers += 1
        self._idle += 1
        threading.Thread(target=self._work, name="isogate-handler", daemon=True).start()

    def _work(self) -> None:
        while True:
            work = self._jobs.get()
            with self._lock:
                self._idle -= 1
                if work is None:
                    self._workers -= 1
                    return
                self._queued -= 1
                work.started = not work.dropped
            if work.started:
                self._run(work)
            with self._lock:
                self._idle += 1

    def _run(self, work: _Work) -> None:
        result: Response | Exception
        try:
            result = to_response(work.handle(work.request))
        except Exception as exc:  # the handler's: the caller gets it
            result = exc
        except BaseException as exc:  # SystemExit and the like: a failed handler, not a gateway exit
            result = RuntimeError(f"the handler raised {type(exc).__name__}")
        try:
            work.loop.call_soon_threadsafe(self._ended, work, result)
        except RuntimeError:  # the gateway's loop is closed: nobody waits any more
            pass

    def _ended(self, work: _Work, result: Response | Exception) -> None:
        self.busy -= 1
        work.ended = True
        if work.timer is not None:
            work.timer.cancel()
        if work.waiter is not None and not work.waiter.done():
            work.waiter.set_result(None)
        if work.answer.done():  # the caller left, or the deadline answered it
            return
        if isinstance(result, Exception):
            work.answer.set_exception(result)
        else:
            work.answer.set_result(result)

    def _expire(self, work: _Work, job: Job) -> None:
        """The deadline: the caller gets 504 now; a job still queued is dropped, a running one keeps its
        worker (a thread cannot be stopped) and is counted busy until it returns."""
        self._drop_if_queued(work)
        if not work.answer.done():
            work.answer.set_exception(_late(job))

    def _drop_if_queued(self, work: _Work) -> bool:
        """A job no worker has taken yet never runs (a worker skips it) and gives back its place in `busy`,
        once: its deadline and its caller leaving can both come for it, in one turn of the loop."""
        with self._lock:
            if work.dropped:
                return True
            dropped = work.dropped = not work.started
        if dropped:
            self.busy -= 1
        return dropped

    def reconfigure(self, settings: Settings) -> None:
        """Resized: more workers start as jobs need them; fewer: the extra ones end after their job."""
        limits = settings.threads
        self.max_queue = limits.max_queue
        with self._lock:
            extra = self._workers - limits.max_workers
            self.size = limits.max_workers
        for _ in range(max(0, extra)):
            self._jobs.put(None)

    async def run(self, job: Job) -> Response:
        handle = self._registry.get(job.handler)
        if self.busy >= self.size + self.max_queue:  # workers busy, queue full: refuse at once
            raise ThreadPoolFull(
                f"all {self.size} workers busy, {self.max_queue} jobs waiting (thread_pool.max_queue)",
                retry_after=RETRY_AFTER_S,
            )
        self.busy += 1
        submit = getattr(handle, "submit", None)  # an ASGI app: its own loop runs it, no worker needed
        try:
            if submit is None:
                return await self._in_a_worker(handle, job)
            try:
                async with asyncio.timeout(job.timeout_s):
                    return await self._on_app_loop(submit(job.request))
            except TimeoutError:
                raise _late(job) from None
        except ExecutionTimeout:
            raise
        except Exception as exc:  # the message may carry caller input: escaped; the traceback at debug
            log.error("handler %s raised %s: %s", job.handler, type(exc).__name__, one_line(str(exc)))
            log.debug("handler %s traceback", job.handler, exc_info=exc)
            raise HandlerFailed(f"handler {job.handler} raised {type(exc).__name__}") from exc

    async def _in_a_worker(self, handle: Handle, job: Job) -> Response:
        loop = asyncio.get_running_loop()
        work = _Work(handle, job.request, loop)
        work.timer = loop.call_later(job.timeout_s, self._expire, work, job)
        with self._lock:
            self._queued += 1
            if self._queued > self._idle and self._workers < self.size:
                self._start_worker()
        self._jobs.put(work)
        try:
            return await work.answer
        except asyncio.CancelledError:  # the caller left: a queued job is dropped...
            deadline = work.timer.when()
            work.timer.cancel()
            # ...a running one keeps its worker: see _outlive
            if not self._drop_if_queued(work) and not work.ended:
                work.waiter = loop.create_future()
                await _outlive(work.waiter, deadline - loop.time())
            raise

    async def _on_app_loop(self, future: Any) -> Response:
        """An ASGI app's request, on the app's own loop; cancelling the wait cancels the request there."""
        try:
            result: Response = await asyncio.wrap_future(future)
            return result
        finally:
            self.busy -= 1

    def status(self) -> dict[str, object]:
        return {"available": True, "size": self.size, "busy": self.busy}

    async def aclose(self) -> None:
        """Jobs not started are dropped; each worker ends after its job."""
        with self._lock:
            workers = self._workers
        for _ in range(workers):
            self._jobs.put(None)


def _late(job: Job) -> ExecutionTimeout:
    return ExecutionTimeout(
        f"handler {job.handler} ran past limits.execution.max_time_ms ({job.timeout_s * 1000:.0f} ms)"
    )


async def _outlive(ended: asyncio.Future[None], remaining_s: float) -> None:
    """Return only when a job whose caller left has ended or reached its deadline, as a timed-out one does:
    until then the caller still holds its share of the workers (proxy.dispatch), so leaving and asking again
    cannot take more of them."""
    if remaining_s > 0:
        await asyncio.wait([ended], timeout=remaining_s)
