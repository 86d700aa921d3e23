"""Thread executor and handler registry, with real threads and real handler modules."""

import asyncio
import random
import time
from collections import Counter
from typing import NamedTuple

import orjson
import pytest

from handlers import Request, Response
from pool.base import ExecutionTimeout, HandlerFailed, Job
from pool.registry import HandlerRegistry, UnknownHandler
from pool.settings import Settings
from pool.thread import ThreadExecutor
from pool.workload import Workload


class Limits(NamedTuple):
    min_workers: int
    max_workers: int
    max_queue: int


@pytest.fixture
async def executor() -> ThreadExecutor:
    executor = ThreadExecutor(HandlerRegistry("probe_handlers"), min_workers=1, max_workers=2)
    yield executor  # type: ignore[misc]
    await executor.aclose()


def job(handler: str, timeout_s: float = 2.0, **query: str) -> Job:
    return Job(handler, Request("GET", "/", tuple(query.items()), entity_id="e"), timeout_s)


async def test_runs_the_handler_and_normalises_its_return(executor: ThreadExecutor) -> None:
    response = await executor.run(job("echo", x="1"))
    assert response.status == 200
    assert b'"query":{"x":"1"}' in response.body


async def test_timeout_answers_at_once_and_the_stuck_worker_stays_counted(executor: ThreadExecutor) -> None:
    started = time.perf_counter()
    with pytest.raises(ExecutionTimeout) as caught:
        await executor.run(job("sleep", timeout_s=0.2, s="3"))
    assert time.perf_counter() - started < 2.5  # answered at the limit, not when the handler ended
    assert "limits.execution.max_time_ms (200 ms)" in caught.value.detail
    assert executor.busy == 1  # a Python thread cannot be killed: it keeps its worker
    for _ in range(250):
        if executor.busy == 0:
            break
        await asyncio.sleep(0.02)
    assert executor.busy == 0


async def test_a_job_still_queued_at_its_deadline_is_dropped_and_never_runs() -> None:
    executor = ThreadExecutor(HandlerRegistry("probe_handlers"), min_workers=1, max_workers=1)
    try:
        first = asyncio.ensure_future(executor.run(job("sleep", timeout_s=5, s="0.6")))
        await asyncio.sleep(0.05)  # the only worker has it
        with pytest.raises(ExecutionTimeout):
            await executor.run(job("sleep", timeout_s=0.2, s="2"))
        assert executor.busy == 1  # the queued job is gone, the running one counts
        assert (await first).status == 200
        assert executor.busy == 0
        # The worker skipped the dropped job (it would hold it 2 s): the next job has it at once.
        assert (await executor.run(job("echo", timeout_s=1))).status == 200
        assert executor.busy == 0
    finally:
        await executor.aclose()


async def test_handler_exception_becomes_500_naming_only_its_type(executor: ThreadExecutor) -> None:
    with pytest.raises(HandlerFailed) as caught:
        await executor.run(job("boom"))
    assert caught.value.status == 500
    assert "KeyError" in caught.value.detail and "hunter2" not in caught.value.detail


async def test_a_return_value_that_is_not_a_response_is_a_handler_error(executor: ThreadExecutor) -> None:
    with pytest.raises(HandlerFailed, match="TypeError"):
        await executor.run(job("bad_return"))


async def test_header_injection_by_a_handler_is_refused(executor: ThreadExecutor) -> None:
    with pytest.raises(HandlerFailed, match="ValueError"):
        await executor.run(job("crlf"))


async def test_jobs_run_concurrently_up_to_max_workers(executor: ThreadExecutor) -> None:
    """Two jobs on two workers overlap: each starts before the other ends (by the handlers' own clocks,
    not a wall-clock bound a loaded machine could miss)."""
    first, second = (
        orjson.loads(r.body)
        for r in await asyncio.gather(*(executor.run(job("sleep", s="0.5")) for _ in range(2)))
    )
    assert first["started"] < second["ended"] and second["started"] < first["ended"]


@pytest.mark.parametrize(
    "name", ["../handlers/echo", "os", "sys", "__init__", "Echo", "echo.py", "not_a_handler", "missing", ""]
)
def test_only_handle_functions_of_modules_in_the_package_can_be_loaded(name: str) -> None:
    with pytest.raises(UnknownHandler):
        HandlerRegistry("probe_handlers").get(name)


def test_an_unimportable_package_is_refused() -> None:
    with pytest.raises(UnknownHandler):
        HandlerRegistry("no_such_package_here")


async def test_sys_exit_in_a_handler_is_a_handler_error_and_the_pool_serves_on(
    executor: ThreadExecutor,
) -> None:
    with pytest.raises(HandlerFailed, match="RuntimeError"):
        await executor.run(job("sys_exit"))
    assert (await executor.run(job("echo"))).status == 200 and executor.busy == 0


async def test_resizing_starts_workers_as_needed_and_ends_extra_ones_after_their_job() -> None:
    executor = ThreadExecutor(HandlerRegistry("probe_handlers"), min_workers=1, max_workers=1)
    try:
        assert executor.status() == {"available": True, "size": 1, "busy": 0} and executor._workers == 1
        executor.reconfigure(Settings(Limits(1, 3, 8), None, Workload()))  # type: ignore[arg-type]
        running = [asyncio.create_task(executor.run(job("sleep", s="0.4"))) for _ in range(3)]
        await asyncio.sleep(0.2)
        assert (executor._workers, executor.busy) == (3, 3)  # all three at once
        executor.reconfigure(Settings(Limits(1, 1, 8), None, Workload()))  # type: ignore[arg-type]
        assert all(r.status == 200 for r in await asyncio.gather(*running))  # not cut
        for _ in range(100):  # bounded: the two extra workers end once free
            if executor._workers == 1:
                break
            await asyncio.sleep(0.02)
        assert executor._workers == 1 and (await executor.run(job("echo"))).status == 200
    finally:
        await executor.aclose()


async def test_any_mix_of_timeouts_and_callers_leaving_gives_every_worker_back() -> None:
    """300 jobs, each queued or running when its deadline passes or its caller leaves, or neither: once
    they have all ended, nothing is counted busy and the workers serve the next job."""
    executor = ThreadExecutor(HandlerRegistry("probe_handlers"), min_workers=1, max_workers=4, max_queue=400)
    rng = random.Random(13)

    async def one(n: int) -> str:
        if n % 10 == 0:  # a generous deadline: answered however loaded the machine (every path is taken)
            timeout_s, sleep_s = 5.0, 0.001
        else:
            timeout_s, sleep_s = rng.uniform(0.005, 0.06), rng.uniform(0, 0.04)
        task = asyncio.ensure_future(executor.run(job("sleep", timeout_s=timeout_s, s=f"{sleep_s:.3f}")))
        if n % 10 and rng.random() < 0.3:  # the caller leaves after a while
            await asyncio.sleep(rng.uniform(0, 0.05))
            task.cancel()
        try:
            await task
            return "answered"
        except ExecutionTimeout:
            return "timed out"
        except asyncio.CancelledError:
            return "left"

    try:
        outcomes = Counter(await asyncio.gather(*(one(n) for n in range(300))))
        assert set(outcomes) == {"answered", "timed out", "left"}, outcomes  # every path taken
        for _ in range(250):  # bounded: the running ones end within their 0.04 s sleeps
            if executor.busy == 0:
                break
            await asyncio.sleep(0.02)
        assert executor.busy == 0
        assert (await executor.run(job("echo", timeout_s=2))).status == 200
        for _ in range(100):  # the worker counts itself idle just after answering
            if executor._idle == executor._workers:
                break
            await asyncio.sleep(0.01)
        assert executor._queued == 0 and executor._idle == executor._workers
    finally:
        await executor.aclose()


async def test_a_queued_job_whose_deadline_and_caller_leave_together_gives_its_place_back_once() -> None:
    """The deadline drops a queued job, and its caller leaves in the same turn of the loop: its place in
    `busy` is given back once (it went below zero under load: 300 jobs, busy -34)."""
    executor = ThreadExecutor(HandlerRegistry("probe_handlers"), min_workers=1, max_workers=1, max_queue=4)
    blocker = asyncio.ensure_future(executor.run(job("sleep", timeout_s=2, s="0.3")))
    await asyncio.sleep(0.05)  # the one worker is taken: the next job waits in the queue
    expire = executor._expire
    waiting: list[asyncio.Future[Response]] = []

    def expire_and_leave(work: object, late: Job) -> None:
        expire(work, late)  # type: ignore[arg-type]
        waiting[0].cancel()  # the caller leaves in the same turn

    executor._expire = expire_and_leave  # type: ignore[method-assign]
    waiting.append(asyncio.ensure_future(executor.run(job("echo", timeout_s=0.05))))
    with pytest.raises(asyncio.CancelledError):
        await waiting[0]
    assert executor.busy == 1  # the blocker only
    await blocker
    assert executor.busy == 0
    await executor.aclose()
