"""Container executor: a warm pool of sandboxes (`pool.sandbox`), one request at a time each.

Warm sandboxes are ready before the gateway serves; bursts create more up to `docker.max_containers`;
past that a request waits up to `docker.timeout_ms`. A sandbox that timed out, crashed or was OOM-killed
is destroyed in the background and replaced; the request that hit it gets 504/502/507 at once.
The containers may run on several engines (`docker.engines`), each with its share of those sizes: warm ones
are spread by share, a request takes an idle one on any engine, a burst creates where there is room. An
engine that stops answering is left out (its containers with it; the requests running there get 502) and
the others serve; a supervisor rejoins it when it answers again. With no engine up the pool says so (docker
decisions fail closed with 503).

The same pool runs an isolated replica's containers (`Workload.replica`): the app in each is one long-lived
process whatever it serves, so a replica container serves a single caller in its life (`exclusive`): a
container another caller used is destroyed rather than handed over, and a fresh one takes its place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Collection, Coroutine
from typing import Any, TypeVar

from handlers import Response
from pool.base import (
    RETRY_AFTER_S,
    DependencyMissing,
    DockerUnavailable,
    ExecutionTimeout,
    ExecutorError,
    HandlerFailed,
    ImageMissing,
    Job,
    MemoryLimitExceeded,
    PoolExhausted,
    ResponseTooLarge,
    SandboxCrashed,
)
from pool.connection import ENGINE_ERRORS, EngineConnection
from pool.engine import deadline, unreachable
from pool.metrics import percentiles
from pool.sandbox import (
    NotDelivered,
    Sandbox,
    SandboxDied,
    container_config,
    container_name,
    name_prefix,
    remove,
    to_response,
)
from pool.settings import ContainerLimits, Settings, caps, engines_of, split
from pool.waiters import WaitQueue
from pool.workload import CODE_LABEL, LABEL, Workload

log = logging.getLogger("isogate.pool")

SUPERVISE_INTERVAL_S = 1.0
CLOSE_WAIT_S = 5.0  # aclose waits this long for the supervisor's round (engine calls), then cancels it
ATTEMPTS = 3  # sandboxes tried for one request when the first ones turn out dead before it was written
PING_AFTER_S = 1.0  # an idle agent not heard from this long is pinged (at the next supervision)
PING_TIMEOUT_S = 2.0  # ...and replaced when it does not answer within this


T = TypeVar("T")


def _retrieved(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


class _Undelivered(SandboxCrashed):
    """The sandbox died idle; the request was never written to it."""


class ContainerPool:
    """The Executor for docker decisions."""

    def __init__(self, config: ContainerLimits, workload: Workload) -> None:
        self._config = config
        self._workload = workload
        self.name = workload.pool_name(config.pool_name)
        self.exclusive = workload.replica  # a container serves one caller in its life
        label, self._prefix = f"{LABEL}={self.name}", name_prefix(self.name)
        self._engines = [
            EngineConnection(e, label, self._prefix, self._container_died) for e in engines_of(config)
        ]
        self._by_name = {engine.name: engine for engine in self._engines}
        self._idle: deque[Sandbox] = deque()  # newest last: taken from the right, aged out from the left
        self._busy: set[Sandbox] = set()
        self._calls: dict[Sandbox, asyncio.Timeout] = {}  # sandboxes running a request: its deadline
        self._naming: set[str] = set()  # names of the containers being created (see _reconcile)
        self._warming = 0  # of those, creations for the warm pool (the rest are a request's own)
        self._waiters = WaitQueue[Sandbox](on_returned=self._returned)
        self._tasks: set[asyncio.Task[Any]] = set()  # creations and destructions in the background
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        self._stop = asyncio.Event()  # set at aclose: the supervisor ends its round
        self._draining = False  # after a reload shrank the pool: released containers go until it fits
        self._specs: dict[str, dict[str, Any]] = {}  # what new containers are made from, by engine
        self._configure(config, workload)
        self._acquire_ms: deque[float] = deque(maxlen=2048)
        self.counts = dict.fromkeys(
            (
                "created",
                "destroyed",
                "replaced",
                "cold_starts",
                "timeouts",
                "oom_kills",
                "crashes",
                "died_idle",
                "refused",
                "recycled",
            ),
            0,  # fmt: skip
        )

    @property
    def available(self) -> bool:
        """Whether the pool can run jobs: an engine is up."""
        return not self._closing and any(engine.up for engine in self._engines)

    @property
    def reason(self) -> str | None:
        """Why it cannot (None when it can): each engine's reason."""
        if self._closing:
            return "closed"
        if self.available:
            return None
        if len(self._engines) == 1:
            return self._engines[0].reason
        return "; ".join(f"{engine.name}: {engine.reason}" for engine in self._engines)

    @property
    def size(self) -> int:
        return len(self._idle) + len(self._busy) + self._creating

    @property
    def _creating(self) -> int:
        return sum(engine.creating for engine in self._engines)

    def _size_on(self, engine: EngineConnection) -> int:
        return sum(s.engine == engine.name for s in (*self._idle, *self._busy)) + engine.creating

    def _current(self, sandbox: Sandbox) -> bool:
        """Made from the spec new containers of its engine are made from (not from before a reload)."""
        return sandbox.spec == self._specs.get(sandbox.engine)

    def _configure(self, config: ContainerLimits, workload: Workload) -> None:
        """Each engine's spec and its share of the pool's sizes."""
        shares = [engine.share for engine in self._engines]
        warm, most = split(config.warm_pool_size, shares), caps(config.max_containers, shares)
        for engine, warm_size, max_size in zip(self._engines, warm, most, strict=True):
            engine.warm_pool_size, engine.max_containers = warm_size, max_size
            self._specs[engine.name] = container_config(config, workload, engine.runtime)

    # lifecycle

    async def start(self) -> None:
        """Connect to each engine and fill the warm pool; an unreachable engine is reported, not raised."""
        await asyncio.gather(*(self._join(engine) for engine in self._engines))
        if not self._closing:
            self._supervisor = asyncio.create_task(self._supervise())

    async def aclose(self) -> None:
        """Stop watching, let creations and removals finish, remove every container of this pool. The
        supervisor ends its round first (within CLOSE_WAIT_S): cancelled in a TLS handshake, asyncio would
        leave the socket to the garbage collector."""
        self._closing = True
        self._stop.set()
        if self._supervisor is not None:
            await asyncio.wait([self._supervisor], timeout=CLOSE_WAIT_S)
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        await asyncio.gather(*(engine.stop_events() for engine in self._engines))
        await asyncio.gather(*self._tasks, return_exceptions=True)
        sandboxes = [*self._idle, *self._busy]
        self._idle.clear()
        self._busy.clear()
        await asyncio.gather(*(s.destroy() for s in sandboxes), return_exceptions=True)
        await asyncio.gather(*(engine.aclose() for engine in self._engines))

    async def _join(self, engine: EngineConnection) -> None:
        """Connect to `engine` and fill its part of the warm pool; it is marked down when that fails."""
        try:
            await engine.connect(str(self._specs[engine.name]["Image"]))
            engine.join()
            await asyncio.gather(*self._fill(engine))
            if self._closing:  # stopped while warming: the pool ends, not the engine
                return
            held = (*self._idle, *self._busy)  # a warm one may already serve a request: up means up
            if not any(s.engine == engine.name for s in held) and engine.warm_pool_size:
                raise SandboxDied("no sandbox could be started (see the log)")
        except (*ENGINE_ERRORS, ImageMissing) as exc:
            self._engine_down(engine, exc)
            return
        where = f" on {engine.name}" if len(self._engines) > 1 else ""
        if engine.serving():
            log.warning("container pool %s: serving again%s, pool rebuilt", self.name, where)
        warm = sum(s.engine == engine.name for s in self._idle)
        log.info("container pool %r ready%s: %d warm", self.name, where, warm)

    # the Executor protocol

    async def run(self, job: Job) -> Response:
        if not self.available:
            raise self._unavailable()
        for _ in range(ATTEMPTS - 1):
            try:
                return await self._run_once(job)
            except _Undelivered:
                continue  # a sandbox that died idle: no handler saw the request, another serves it
        return await self._run_once(job, fresh=True)  # idle ones failed twice: a new one, or one just used

    async def _run_once(self, job: Job, fresh: bool = False) -> Response:
        sandbox = await self._acquire(job.request.entity_id, fresh)  # a caller gone while waiting leaves
        self._busy.add(sandbox)
        # Once in a container the call runs to its end (its deadline bounds it) even if the caller goes:
        # cancelled midway it would leave half an answer in the stream, and cost a new container.
        return await asyncio.shield(self._spawn_task(self._call(job, sandbox)))

    async def _call(self, job: Job, sandbox: Sandbox) -> Response:
        try:
            async with asyncio.timeout(job.timeout_s) as self._calls[sandbox]:
                try:
                    header, body = await sandbox.call(job.handler, job.request)
                finally:
                    del self._calls[sandbox]  # before the deadline is left: none is moved once left
        except TimeoutError:
            if sandbox.container_died:  # the engine said so before the stream did (see _container_died)
                raise await self._died(sandbox, SandboxDied("its container died")) from None
            self._fault(sandbox, "timeouts")
            self._discard(sandbox, replaced=True)
            raise ExecutionTimeout(
                f"handler {job.handler} ran past limits.execution.max_time_ms"
                f" ({job.timeout_s * 1000:.0f} ms); its container was killed"
            ) from None
        except asyncio.CancelledError:
            self._discard(sandbox)  # the stream may hold half an answer: never reuse it
            raise
        except NotDelivered as exc:
            self._discard(sandbox, replaced=True)
            self._fault(sandbox, "died_idle")
            raise _Undelivered(str(exc)) from None
        except Exception as exc:  # any failure of the call (engine, stream, frames): never reuse it
            raise await self._died(sandbox, exc) from None
        return self._answer(job, sandbox, header, body)

    def _answer(self, job: Job, sandbox: Sandbox, header: dict[str, Any], body: bytes) -> Response:
        """The handler's response, or the error its frame reports. The agent ran the handler in a child
        process it has killed and cleaned up after, so the sandbox stays in the pool after a handler's
        exception or an over-large response; any other failure retires it."""
        error = header.get("error")
        if error is None:
            try:
                response = to_response(header, body)
            except (KeyError, TypeError, ValueError) as exc:  # a protocol breach: never reuse it
                self._discard(sandbox, replaced=True)
                raise HandlerFailed(f"handler {job.handler} returned an invalid response: {exc}") from None
            self._release(sandbox)
            return response
        if error in ("handler", "too_large"):
            self._release(sandbox)
            if error == "too_large":
                raise ResponseTooLarge(
                    f"handler {job.handler}: {header.get('detail')} (docker.max_response_bytes)"
                )
            if header.get("type") == "ModuleNotFoundError":
                module = header.get("module", "a package")  # (an older image's agent does not name it)
                raise DependencyMissing(
                    f"handler {job.handler} imports {module}, which the runner image lacks: add it to"
                    f" docker.requirements and run make image (threads run with the venv's packages)"
                )
            raise HandlerFailed(f"handler {job.handler} raised {header.get('type', 'an exception')}")
        self._discard(sandbox, replaced=True)
        if error == "memory":
            self._fault(sandbox, "oom_kills")
            raise MemoryLimitExceeded(
                f"handler {job.handler} ran out of memory ({self._config.memory_limit})"
            )
        if error == "unknown_handler":
            raise SandboxCrashed(
                f"runner image cannot serve {job.handler}: {header.get('detail')}; run make image"
            )
        self._fault(sandbox, "crashes")
        raise SandboxCrashed(f"handler {job.handler}: {header.get('detail', error)}")

    async def _died(self, sandbox: Sandbox, exc: BaseException) -> ExecutorError:
        """Classify a sandbox that stopped answering; it is replaced either way, once classified: destroyed
        first, its container's state and its OOM event would be gone before they were read."""
        self._busy.discard(sandbox)  # no longer counted busy, whatever happens below
        engine = self._by_name[sandbox.engine]
        try:
            oom = engine.up and await engine.oom_killed(sandbox)  # a down engine is not asked
        finally:
            self._discard(sandbox, replaced=True)
        if oom:
            self._fault(sandbox, "oom_kills")
            return MemoryLimitExceeded(
                f"the handler was killed at docker.memory_limit ({self._config.memory_limit})"
            )
        self._fault(sandbox, "crashes")
        log.warning("sandbox %s on %s died: %s", sandbox.id[:12], engine.name, exc)
        return SandboxCrashed("the sandbox died while handling the request")

    def _fault(self, sandbox: Sandbox, kind: str) -> None:
        self.counts[kind] += 1
        self._by_name[sandbox.engine].counts["faults"] += 1

    # acquiring and returning sandboxes

    async def _acquire(self, entity: str, fresh: bool = False) -> Sandbox:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._config.timeout_ms / 1000):
                return await self._take(entity, fresh)
        except TimeoutError:
            raise PoolExhausted(
                f"all {self._config.max_containers} containers stayed busy for docker.timeout_ms"
                f" ({self._config.timeout_ms} ms)",
                retry_after=RETRY_AFTER_S,
            ) from None
        except ENGINE_ERRORS as exc:
            raise DockerUnavailable(f"could not start a container: {exc}") from None
        finally:
            self._acquire_ms.append((time.perf_counter() - started) * 1000)

    async def _take(self, entity: str, fresh: bool = False) -> Sandbox:
        """An idle sandbox (not when `fresh`), a new one, or the next one freed; waiters are served oldest
        first."""
        retry = False
        failed: set[str] = set()  # engines where a creation for this request failed
        while True:
            if not self._waiters and not fresh and (sandbox := self._pick(entity)) is not None:
                if self.exclusive and sandbox.entity is None:
                    self._fill()  # a fresh one was taken: the next new caller needs another
                return sandbox
            # A sandbox already being created for the warm pool is ready sooner than a new one.
            none_coming = self._warming <= len(self._waiters)
            if none_coming and (engine := self._room(failed)) is not None:
                self.counts["cold_starts"] += 1
                engine.creating += 1
                creation = self._spawn_task(self._create_reserved(engine))
                try:
                    return await asyncio.shield(creation)
                except asyncio.CancelledError:  # the caller left (or its wait timed out): it serves the next
                    creation.add_done_callback(self._adopt)
                    raise
                except ENGINE_ERRORS:
                    failed.add(engine.name)
                    if not self.available or (self._room(failed) is None and self.size == 0):
                        raise
                    continue  # another engine serves, or a container that frees up (within timeout_ms)
            if not retry and len(self._waiters) >= self._config.max_waiting:
                self.counts["refused"] += 1
                raise PoolExhausted(
                    f"{len(self._waiters)} requests already wait for a container (docker.max_waiting)",
                    retry_after=RETRY_AFTER_S,
                )
            if none_coming and self.exclusive:
                self._recycle()  # full: make room for a fresh one
            sandbox = await self._waiters.wait(front=retry)  # a retry keeps its place
            if sandbox is not None:
                return sandbox
            retry = True

    def _room(self, failed: Collection[str] = ()) -> EngineConnection | None:
        """The engine a new container goes to: an engine up (and not among `failed`), below its part of the
        maximum, with the fewest containers for its share (None: the pool is at its maximum)."""
        if self.size >= self._config.max_containers:
            return None
        free = [
            e for e in self._engines if e.up and e.name not in failed and self._size_on(e) < e.max_containers
        ]
        return min(free, key=lambda e: self._size_on(e) / e.share, default=None)

    def _pick(self, entity: str) -> Sandbox | None:
        """An idle sandbox whose agent is alive (a dead one found here is replaced: no request is written
        to it), as `_choose` prefers."""
        while (sandbox := self._choose(entity)) is not None and not sandbox.alive:
            self._died_idle(sandbox)
        return sandbox

    def _choose(self, entity: str) -> Sandbox | None:
        """The idle sandbox whose agent last served `entity` (its session is warm: no fork), else one that
        served nobody yet, else (not in an exclusive pool) the least recently used: another entity's
        request in a sandbox costs its agent a session switch (~1.5 ms), so warm sessions are kept for
        their callers. One being pinged is left alone."""
        for latest in (True, False):  # containers of the current spec first (see reconfigure)
            for wanted in (entity, None):
                for i in range(len(self._idle) - 1, -1, -1):
                    sandbox = self._idle[i]
                    current = self._current(sandbox) == latest
                    if sandbox.entity == wanted and current and not sandbox.pinging:
                        del self._idle[i]
                        return sandbox
        candidates = [s for s in self._idle if not s.pinging]
        if self.exclusive or not candidates:
            return None
        oldest = next((s for s in candidates if self._current(s)), candidates[0])
        self._idle.remove(oldest)
        return oldest

    def _recycle(self) -> None:
        """A full exclusive pool: the least recently used idle sandbox another caller used is destroyed,
        so that a fresh one can be made in its place."""
        for sandbox in self._idle:
            if sandbox.entity is not None:
                self.counts["recycled"] += 1
                self._discard(sandbox)
                return

    def _offer(self, sandbox: Sandbox) -> None:
        """Hand a ready sandbox to the oldest waiter, or keep it idle. A handed sandbox counts as busy at
        once: until its waiter runs it would be in neither list, and the pool would count itself short
        (and create containers that the release path then destroys). In an exclusive pool a sandbox
        someone used is never handed: it stays idle for its caller, and the oldest waiter looks again.
        One whose engine was left out meanwhile goes."""
        if not self._by_name[sandbox.engine].up:
            self._discard(sandbox)
            return
        if self.exclusive and sandbox.entity is not None:
            self._idle.append(sandbox)
            self._waiters.wake_one()
            return
        self._busy.add(sandbox)
        if not self._waiters.hand(sandbox):
            self._busy.discard(sandbox)
            self._idle.append(sandbox)
            if self._current(sandbox):
                self._retire_stale(1, sandbox.engine)  # rolling: a current one is ready, an old one can go

    def _adopt(self, creation: asyncio.Task[Sandbox]) -> None:
        """A sandbox created for a caller that is gone joins the pool (a failed creation already woke the
        next waiter)."""
        if not creation.cancelled() and creation.exception() is None:
            self._offer(creation.result())

    def _returned(self, sandbox: Sandbox) -> None:
        """A waiter gave up after being handed `sandbox`: the next one gets it."""
        self._busy.discard(sandbox)
        self._offer(sandbox)

    def reconfigure(self, settings: Settings) -> None:
        """The handler containers' part of a reload: `settings.docker` running `settings.workload`."""
        self.update(settings.docker, settings.workload)

    def update(self, config: ContainerLimits, workload: Workload) -> None:
        """Apply a reloaded docker section (and what the containers run): grow or drain to the new sizes
        without touching busy containers. When the container spec changed (image, limits, apps, code) the
        pool rolls: containers of the new spec are warmed, and each old idle one goes when a new one is
        ready (until then it serves: no request waits for the roll); busy old ones go after their request."""
        self._config, self._workload = config, workload
        self._configure(config, workload)
        while self._idle and (len(self._idle) > config.warm_pool_size or self.size > config.max_containers):
            self._discard(self._idle[0])
        self._draining = self.size > config.warm_pool_size
        self._fill()
        for _ in range(max(0, config.max_containers - self.size)):  # a higher maximum serves waiters now
            self._waiters.wake_one()

    def _retire_stale(self, count: int, engine: str) -> None:
        """Destroy up to `count` idle containers of an older spec on `engine`, oldest first (not refilled:
        the caller decides what replaces them)."""
        stale = [s for s in self._idle if s.engine == engine and not self._current(s)]
        for sandbox in stale[: max(count, 0)]:
            self._idle.remove(sandbox)
            self._spawn_task(self._destroy(sandbox))

    def _release(self, sandbox: Sandbox) -> None:
        self._busy.discard(sandbox)
        if self._retire(sandbox):
            self._discard(sandbox)
            return
        self._offer(sandbox)

    def _retire(self, sandbox: Sandbox) -> bool:
        """Whether a sandbox back from a clean request is destroyed rather than kept idle."""
        config, engine = self._config, self._by_name[sandbox.engine]
        self._draining = self._draining and self.size >= config.warm_pool_size
        return (
            sandbox.broken
            or not config.reuse_containers
            or sandbox.uses >= config.max_uses
            or not self._current(sandbox)  # made before a reload changed the container spec
            or not engine.up
            or self.size >= config.max_containers  # a reload lowered the maximum
            or self._size_on(engine) >= engine.max_containers
            or (self._draining and len(self._idle) >= config.warm_pool_size)  # ...or the warm size
        )

    def _discard(self, sandbox: Sandbox, *, replaced: bool = False) -> None:
        """Destroy in the background and top the pool back up to its warm size."""
        self._busy.discard(sandbox)
        if sandbox in self._idle:
            self._idle.remove(sandbox)
        self.counts["replaced"] += replaced
        self._spawn_task(self._destroy(sandbox))
        self._fill()

    async def _destroy(self, sandbox: Sandbox) -> None:
        await sandbox.destroy()
        self._by_name[sandbox.engine].forget(sandbox.id)
        self.counts["destroyed"] += 1
        self._waiters.wake_one()

    def _fill(self, only: EngineConnection | None = None) -> list[asyncio.Task[Any]]:
        """Start creating sandboxes until each engine's idle + creating reaches its part of the warm size
        (within its part of the maximum, and the pool's). In an exclusive pool only unused ones count: the
        idle ones a caller used are kept for that caller, and a new caller needs a fresh one."""
        if self._closing:
            return []
        tasks = []
        for engine in self._engines if only is None else (only,):
            if not engine.up:
                continue
            current = [s for s in self._idle if s.engine == engine.name and self._current(s)]
            ready = sum(s.entity is None for s in current) if self.exclusive else len(current)
            missing = engine.warm_pool_size - ready - engine.creating
            self._retire_stale(missing - self._free(engine), engine.name)  # room for new ones
            missing = min(missing, self._free(engine))
            engine.creating += max(missing, 0)
            self._warming += max(missing, 0)
            tasks += [self._spawn_task(self._add_idle(engine)) for _ in range(missing)]
        return tasks

    def _free(self, engine: EngineConnection) -> int:
        """Containers `engine` may still get: its part of the maximum, within the pool's."""
        return min(engine.max_containers - self._size_on(engine), self._config.max_containers - self.size)

    async def _add_idle(self, engine: EngineConnection) -> None:
        try:
            sandbox = await self._create_reserved(engine)
        except ENGINE_ERRORS as exc:  # (an engine that did not answer is said to be down once, not here)
            (log.info if unreachable(exc) else log.warning)(
                "could not start a warm container on %s: %s", engine.name, exc
            )
            return
        finally:
            self._warming -= 1
        if self._closing:
            await sandbox.destroy()
            return
        self._offer(sandbox)

    async def _create_reserved(self, engine: EngineConnection) -> Sandbox:
        """Create one sandbox on `engine`; the caller has already counted it in `engine.creating`. An
        engine that does not answer is left out."""
        name = container_name(self._prefix)
        self._naming.add(name)
        try:
            sandbox = await engine.create(self._config, self._specs[engine.name], name, self._workload)
        except BaseException as exc:
            self._waiters.wake_one()  # the slot it held is free again
            if engine.up and unreachable(exc):
                self._engine_down(engine, exc)
            raise
        finally:
            self._naming.discard(name)  # the caller holds it from here, without awaiting first
            engine.creating -= 1
        self.counts["created"] += 1
        engine.counts["created"] += 1
        return sandbox

    # supervision: engine health and idle expiry

    async def _supervise(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), SUPERVISE_INTERVAL_S)
            if self._closing:
                return
            await asyncio.gather(*(self._supervise_engine(engine) for engine in self._engines))
            try:
                self._expire_idle()
                self._ping_idle()
                self._fill()  # creations that failed while an engine was busy are retried here
            except Exception:  # a bug here must not end supervision for the gateway's life
                log.exception("container pool supervisor")

    async def _supervise_engine(self, engine: EngineConnection) -> None:
        """Rejoin `engine` when it is down, else check its containers; one that stops answering is
        left out."""
        try:
            if not engine.up:
                await self._join(engine)
            else:
                await self._reconcile(engine)
        except (*ENGINE_ERRORS, ImageMissing) as exc:
            self._engine_down(engine, exc)
        except Exception:  # a bug here must not end supervision for the gateway's life
            log.exception("container pool supervisor")

    async def _reconcile(self, engine: EngineConnection) -> None:
        """Sandboxes whose container is no longer running (a `die` event missed) are replaced, and the
        containers this pool made that it neither holds, nor is creating, nor fills a code volume through
        are removed: a removal that failed, or one whose creation the engine finished after the pool gave up
        on it (its answer lost). Containers of its label that another gateway made (one sharing its pool
        name: a misconfiguration) are left alone, and said."""
        listed = await engine.containers()
        running = {c.id for c in listed if c["State"] == "running"}
        there = [s for s in (*self._idle, *self._calls) if s.engine == engine.name]
        for sandbox in [s for s in there if s.id not in running]:
            self._container_died(sandbox.id)
        held, others = {s.id for s in (*self._idle, *self._busy)}, 0
        for container in listed:
            names = {name.lstrip("/") for name in container["Names"] or ()}
            if container.id in held or names & (self._naming | engine.helpers):
                continue
            if engine.made_here(container):
                self._spawn_task(remove(container))
            else:  # made since this pool's start (the older ones went at connect): by another live gateway
                others += 1
        if others and engine.said_shared():
            log.error(
                "docker engine %s has %d containers of pool %s that another gateway made: two gateways use"
                " docker.pool_name %s there, and each removes the other's at its start (their requests get"
                " 502); give each gateway its own (docs/deployment.md)",
                engine.name, others, self.name, self.name,
            )  # fmt: skip

    def _died_idle(self, sandbox: Sandbox, what: str = "died") -> None:
        log.warning("idle sandbox %s %s: replacing it", sandbox.id[:12], what)
        self._fault(sandbox, "died_idle")
        self._discard(sandbox, replaced=True)

    def _ping_idle(self) -> None:
        """Ping each idle agent not heard from for PING_AFTER_S (in the background: a frame each way on its
        kept-open exec, about a millisecond): one that died with its container still running, or hangs, is
        replaced before a request meets it."""
        due = time.monotonic() - PING_AFTER_S
        for sandbox in [s for s in self._idle if s.checked_at < due and not s.pinging]:
            if sandbox.alive:
                self._spawn_task(self._ping(sandbox))
            else:
                self._died_idle(sandbox)

    async def _ping(self, sandbox: Sandbox) -> None:
        try:
            await deadline(sandbox.ping(), PING_TIMEOUT_S)
        except ENGINE_ERRORS:
            if sandbox in self._idle:  # (an engine outage may have emptied the pool meanwhile)
                self._died_idle(sandbox, "did not answer a ping")

    def _container_died(self, container_id: str) -> None:
        """The engine says a container died. Idle here: replace it now. Running a request: end the call
        now, since its exec stream may not (under gVisor it stays open after the sandbox is killed)."""
        for sandbox in self._idle:
            if sandbox.id == container_id:
                self._died_idle(sandbox)
                return
        for sandbox in self._calls:
            if sandbox.id == container_id:
                self._end_call(sandbox)
                return

    def _end_call(self, sandbox: Sandbox) -> None:
        """End the call `sandbox` runs now, as one whose container died."""
        limit = self._calls[sandbox]
        if not sandbox.container_died:
            sandbox.container_died = True
            if not limit.expired():  # expired: the call is ending anyway
                limit.reschedule(asyncio.get_running_loop().time())

    def _expire_idle(self) -> None:
        cutoff = time.monotonic() - self._config.idle_ttl_s
        while self._idle and self._idle[0].idle_since < cutoff:
            self._discard(self._idle[0])

    def _engine_down(self, engine: EngineConnection, exc: BaseException) -> None:
        """Leave `engine` out until it answers again: its idle containers go, the calls running there end
        now (502: their streams are gone with it, or soon would be), and with no engine left the waiters
        are failed closed at once (503), not at docker.timeout_ms."""
        if engine.leave(exc) and not self._closing:
            others = "the other engines serve" if self.available else "docker decisions get 503 until then"
            where = f" engine {engine.name}" if len(self._engines) > 1 else ""
            log.warning("container pool %s%s: %s; %s", self.name, where, engine.reason, others)
        for sandbox in [s for s in self._idle if s.engine == engine.name]:  # leftovers go at the rejoin
            self._idle.remove(sandbox)
            self._spawn_task(sandbox.destroy())
        for sandbox in [s for s in self._calls if s.engine == engine.name]:
            self._end_call(sandbox)
        if not self.available:
            self._waiters.fail_all(self._unavailable())

    def _unavailable(self) -> ExecutorError:
        """What a request gets with no engine up: the image named when that is why on every engine."""
        missing = all(engine.missing_image for engine in self._engines)
        return (ImageMissing if missing else DockerUnavailable)(self.reason or "docker engine unavailable")

    def _spawn_task(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """A task the pool owns (aclose waits for it); its error, if nobody awaits it any more, is dropped
        here rather than reported as never retrieved: its effect on the pool is already handled."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_retrieved)
        return task

    def status(self) -> dict[str, object]:
        """The pool section of /stats and /healthz."""
        return {
            "available": self.available,
            "reason": self.reason,
            "size": self.size,
            "idle": len(self._idle),
            "busy": len(self._busy),
            "creating": self._creating,
            "waiting": len(self._waiters),
            "warm_pool_size": self._config.warm_pool_size,
            "max_containers": self._config.max_containers,
            **self.counts,
            "acquire_ms": percentiles(self._acquire_ms),
            "code_versions": dict(
                Counter(s.spec["Labels"].get(CODE_LABEL, "") for s in (*self._idle, *self._busy))
            ),
            "engines": [
                engine.status(
                    idle=sum(s.engine == engine.name for s in self._idle),
                    busy=sum(s.engine == engine.name for s in self._busy),
                    runtime=engine.runtime or self._config.runtime,
                )
                for engine in self._engines
            ],
        }
