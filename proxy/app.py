"""The app factory and the gateway view: the whole pipeline, top to bottom, in one function."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from policy.bodies import structured
from policy.config import Config, ExecutionMode, Mode, RouteAuth, RouteConfig
from policy.decision import Action, Decision, decide
from policy.errors import ConfigError, IpDenied, RiskBlocked
from policy.identity import Identity, Trust, client_ip
from policy.incoming import Incoming
from policy.risk import Factor, RiskInput, score
from policy.routes import check_path, match_route
from pool.base import Job
from pool.containers import ContainerPool
from pool.replicas import Replicas
from pool.thread import ThreadExecutor
from proxy import admin, dashboard
from proxy.auth import authenticate
from proxy.code import handler_of
from proxy.egress import to_web_response
from proxy.errors import MissingToken, RateLimited
from proxy.forward import Hop, IsolationUnavailable
from proxy.gateway import GATEWAY, TRACE, Gateway, Trace
from proxy.ingress import body_chunks, handler_request, incoming_of, read_incoming
from proxy.loader import Loaded
from proxy.middleware import pipeline_middleware, stamp
from proxy.reload import RELOADER, SOURCE, Reloader
from proxy.replica import to_replica
from proxy.store import store_for
from proxy.store.sync import StateSync
from proxy.watch import SAMPLE_S
from proxy.websocket import is_upgrade, relay_websocket

log = logging.getLogger("isogate")
METRICS_SAMPLE_S = 1.0


async def gateway_view(request: web.Request) -> web.StreamResponse:
    """terminate -> identify -> route -> read -> score -> decide -> execute -> respond."""
    gw, trace = request.app[GATEWAY], request[TRACE]
    config = gw.config  # one snapshot for the whole request, whatever reloads meanwhile
    trace.counted = True
    # Every X-Forwarded-For line, in order: a client's forged first line must not hide the proxy's own.
    forwarded = ",".join(request.headers.getall("X-Forwarded-For", ())) or None
    ip = trace.entity = client_ip(request.remote, forwarded, config.server.proxies)
    if ip in config.ip_lists.deny_set:
        raise IpDenied(f"{ip} is in ip_lists.deny")
    trusted = ip in config.ip_lists.trusted_set
    header = request.headers.get("Authorization")
    identity = authenticate(header, ip, config.auth, trusted, gw.tokens, gw.jwks.key)
    trace.entity, trace.admin = identity.entity_id, identity.is_admin
    check_path(request.raw_path, request.path)
    route = match_route(config.routes, request.method, request.path)
    trace.route = route.path
    if route.auth is RouteAuth.REQUIRED and not identity.authenticated:
        raise MissingToken(f"route {route.path} needs Authorization: Bearer <token>")
    max_body = config.server.max_body_bytes if route.max_body_bytes is None else route.max_body_bytes
    if route.upstreams:
        return await upstream_view(request, gw, trace, config, route, identity, ip, max_body)
    deadline_s = config.limits.execution.max_time_ms / 1000
    trusted = identity.trust is Trust.TRUSTED
    door = config.admission
    async with gw.admission.slot(
        identity.entity_id,
        config.admission_slots,
        weight=door.trusted_weight if trusted else 1,
        max_waiting=None if trusted else door.max_waiting_per_caller,
        timeout_s=deadline_s / 2,  # half the deadline at most: the other half is the handler's
    ) as waited:
        incoming = await read_incoming(request, ip, max_body, config.server)
        decision = judge(gw, trace, config, incoming, identity, route)
        await limit(gw, trace, config, route, identity, ip)
        request_of = handler_request(incoming, identity, target=bool(route.app))
        job = Job(handler_of(route), request_of, deadline_s - waited)  # the answer within the deadline
        started = time.perf_counter()
        try:
            mode = Mode(decision.action.value)
            share = shares(config, mode) if identity.untrusted else None
            response = await gw.dispatch.execute(mode, job, identity.entity_id, share)
        finally:
            trace.exec_ms = (time.perf_counter() - started) * 1000
        return to_web_response(response)


async def upstream_view(
    request: web.Request,
    gw: Gateway,
    trace: Trace,
    config: Config,
    route: RouteConfig,
    identity: Identity,
    ip: str,
    max_body: int,
) -> web.StreamResponse:
    """An upstream route: the body's first `risk.max_scan_bytes` (and one chunk more; a multipart, JSON or
    XML body whole) are read and scored with everything else; the decision picks production (thread) or
    isolation (docker); the request is forwarded with the scored prefix and the rest of the body as it
    arrives."""
    upgrade = is_upgrade(request)
    chunks = body_chunks(request, 0 if upgrade else max_body, config.server)
    # Multipart, JSON and XML bodies are read whole (within max_body): a text field may follow a file of any
    # size, and a document cut short does not parse.
    whole = structured(request.headers.get("Content-Type"))
    budget = max_body if whole else config.risk.max_scan_bytes
    nothing = upgrade or not request.body_exists  # no Content-Length, no chunks: no read to wait for
    prefix, ended = (b"", True) if nothing else await read_prefix(chunks, budget)
    size = len(prefix) if ended else max(request.content_length or 0, len(prefix))
    decision = judge(gw, trace, config, incoming_of(request, ip, prefix, size), identity, route)
    await limit(gw, trace, config, route, identity, ip)
    urls, isolated = route.upstreams, route.isolated
    if decision.action is Action.DOCKER:
        if isolated is None:
            raise IsolationUnavailable(
                f"route {route.path} has no isolated: block, and this request was not for production"
            )
        urls = isolated.upstreams

    async def body() -> AsyncIterator[bytes]:
        if prefix:
            yield prefix
        if not ended:
            async for chunk in chunks:
                yield chunk

    timeout_s = (route.timeout_ms or config.limits.execution.max_time_ms) / 1000
    hop = Hop(ip, route.path, timeout_s, route.preserve_host, route.upstream_authorization)
    entity, untrusted = identity.entity_id, identity.untrusted
    started = time.perf_counter()
    try:
        with gw.dispatch.upstreams.hold(entity, config.upstream_pool.max_per_entity if untrusted else None):
            if not urls:  # an isolated replica: the route's docker decisions run in its own containers
                assert isolated is not None
                trace.target = "replica"
                base_path = urlsplit(route.upstreams[0]).path
                share = shares(config, Mode.DOCKER) if untrusted else None
                return await to_replica(
                    request, gw, isolated, body(), hop, base_path=base_path, entity=entity, share=share
                )
            trace.target = "quarantine" if decision.action is Action.DOCKER else "upstream"
            if upgrade:
                return await relay_websocket(request, gw.forwarder, urls, hop)
            return await gw.forwarder.forward(request, body(), urls, hop)
    finally:
        trace.exec_ms = (time.perf_counter() - started) * 1000


def judge(
    gw: Gateway, trace: Trace, config: Config, incoming: Incoming, identity: Identity, route: RouteConfig
) -> Decision:
    """score -> decide, recorded in `trace`; a request at the block threshold goes no further."""
    history = gw.stats.history(identity.entity_id)
    inp = RiskInput(incoming, identity, history, route, config.risk.max_scan_bytes)
    trace.risk = score(inp, config, gw.live.plugins)
    gw.learning.observe(inp, trace.risk)  # feeds a profile being learned, if one is
    trace.decision = decide(trace.risk, identity, route, config, memory_pressure=gw.memory.over)
    if trace.decision.action is Action.BLOCK:
        raise RiskBlocked(f"risk score {trace.risk.total} is at or above hybrid.block_threshold")
    return trace.decision


def shares(config: Config, mode: Mode) -> int:
    """What one untrusted caller may hold at once of the pool for `mode`."""
    return config.thread_pool.max_per_entity if mode is Mode.THREAD else config.docker.max_per_entity


async def limit(
    gw: Gateway, trace: Trace, config: Config, route: RouteConfig, identity: Identity, ip: str
) -> None:
    """Count the request against `rate_limits`: 429 rate_limited past one, RateLimit headers either way."""
    if not config.rate_limits:
        return
    band = trace.decision.band.value if trace.decision is not None else ""
    verdict = await gw.limiter.check(config.rate_limits, route.path, identity, ip, band)
    trace.headers = verdict.headers or None
    if verdict.exceeded is not None:
        gw.metrics.rate_limited(route.path, verdict.exceeded)
        raise RateLimited(f"rate limit {verdict.exceeded} exceeded", retry_after=verdict.retry_after)


async def read_prefix(chunks: AsyncIterator[bytes], budget: int) -> tuple[bytes, bool]:
    """Read until past `budget` bytes (scoring then knows the body goes on) or the end; True at the end."""
    prefix = bytearray()
    async for chunk in chunks:
        prefix += chunk
        if len(prefix) > budget:
            return bytes(prefix), False
    return bytes(prefix), True


def create_app(
    config: Config,
    plugins: dict[str, Factor] | None = None,
    *,
    source: Loaded | None = None,
    dashboard_key: str | None = None,
) -> web.Application:
    """Wire the gateway: state, lifecycles, admin routes, then the catch-all proxy route.

    With `source` (what `proxy.loader.load` read), the config reloads live from its files. `dashboard_key`:
    the workers' shared key for dashboard logins under public-key auth (else one of this process's own).
    """
    base_dir = source.source.path.parent if source is not None else Path.cwd()
    gateway = Gateway.create(config, plugins or {}, base_dir)
    if dashboard_key:
        gateway.dashboard_key = dashboard_key
    app = web.Application(middlewares=[pipeline_middleware], handler_args={"lingering_time": 0})
    app[GATEWAY] = gateway
    # decision_log and entity_state first: cleaned up last, once every request is done (last lines and
    # updates written).
    app.cleanup_ctx.extend(
        [
            decision_log,
            entity_state,
            thread_executor,
            docker_executor,
            memory_monitor,
            upstream_client,
            metrics_sampler,
        ]
    )
    app.on_response_prepare.append(stamp)
    if source is not None:
        app[SOURCE] = source
        app.cleanup_ctx.append(live_reload)
        gateway.learning.update(source)
    admin.add_routes(app.router)
    app[dashboard.FALLBACK] = gateway_view
    dashboard.add_routes(app.router)
    app.on_shutdown.append(close_dashboards)
    app.cleanup_ctx.append(dashboard_sampler)
    app.router.add_route("*", "/{tail:.*}", gateway_view)
    return app


async def live_reload(app: web.Application) -> AsyncIterator[None]:
    """Reload on file changes and on SIGHUP; `POST /admin/reload` uses the same reloader."""
    source = app[SOURCE]
    reloader = app[RELOADER] = Reloader(app[GATEWAY], source.source, source)
    server = app[GATEWAY].config.server
    watching = server.watch_config or server.watch_code
    watcher = asyncio.create_task(
        reloader.watch(server.watch_config, server.watch_code) if watching else asyncio.sleep(0),
        name="isogate-config-watch",
    )
    loop = asyncio.get_running_loop()
    hangup = False
    if threading.current_thread() is threading.main_thread():
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(reloader.reload("SIGHUP")))
        hangup = True
    yield
    if hangup:
        loop.remove_signal_handler(signal.SIGHUP)
    watcher.cancel()
    await asyncio.gather(watcher, return_exceptions=True)


async def decision_log(app: web.Application) -> AsyncIterator[None]:
    """The decision log's writer thread: every line recorded is written before the gateway stops."""
    yield
    await asyncio.to_thread(app[GATEWAY].decisions.flush)


async def entity_state(app: web.Application) -> AsyncIterator[None]:
    """Entity history in the store `state.backend` names: loaded before serving, written as it changes."""
    gw = app[GATEWAY]
    store = store_for(gw.config.state, gw.base_dir)
    if store is None:
        yield
        return
    state = gw.config.state
    forget_s, pool_name = state.forget_after_days * 86400, gw.config.docker.pool_name  # unique per gateway
    gw.state = StateSync(store, gw.stats, state.flush_ms / 1000, forget_s, gateway=pool_name, live=gw.live)
    await gw.state.start()
    yield
    await gw.state.aclose()


async def thread_executor(app: web.Application) -> AsyncIterator[None]:
    gw = app[GATEWAY]
    pool = gw.config.thread_pool
    executor = ThreadExecutor(gw.code.registry, pool.min_workers, pool.max_workers, pool.max_queue)
    gw.dispatch.executors[Mode.THREAD] = executor
    yield
    await executor.aclose()


async def docker_executor(app: web.Application) -> AsyncIterator[None]:
    gw = app[GATEWAY]
    if not gw.config.docker.enabled:
        if gw.config.execution_mode is ExecutionMode.HYBRID:
            log.warning("docker.enabled is false: hybrid mode runs every request in a thread")
        yield
        return
    settings = gw.settings()
    pool, replicas = ContainerPool(settings.docker, settings.workload), Replicas()
    # The warm pools are ready before the gateway serves, or they say why not.
    await asyncio.gather(pool.start(), replicas.start(settings))
    gw.dispatch.executors[Mode.DOCKER], gw.dispatch.replicas = pool, replicas
    gw.follow_requirements()  # the file as the image was built from it: an edit from now on is followed
    yield
    await asyncio.gather(pool.aclose(), replicas.aclose())


async def upstream_client(app: web.Application) -> AsyncIterator[None]:
    gw = app[GATEWAY]
    await gw.forwarder.start()
    yield
    await gw.forwarder.aclose()


async def dashboard_sampler(app: web.Application) -> AsyncIterator[None]:
    """The dashboard's last 15 minutes: the gateway's counters taken every SAMPLE_S (proxy/watch.py)."""
    gw = app[GATEWAY]

    async def sample() -> None:
        while True:
            refused = sum(gw.limiter.refused.values())
            gw.watch.sample({**gw.stats.counters(), "rate_limited": refused})
            await asyncio.sleep(SAMPLE_S)

    task = asyncio.create_task(sample(), name="isogate-dashboard-sampler")
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def close_dashboards(app: web.Application) -> None:
    """Open event streams end as the gateway stops (they would hold its shutdown to its timeout)."""
    for task in list(app[GATEWAY].viewers):
        task.cancel()


async def metrics_sampler(app: web.Application) -> AsyncIterator[None]:
    """Pools, the thread pool, the entity table and the store, sampled for /metrics once a second; with
    `metrics.listen`, /metrics on a listener of its own (no token: bind it where only the scraper reaches)."""
    gw = app[GATEWAY]
    if not gw.config.metrics.enabled:
        yield
        return

    async def sample() -> None:
        while True:
            take_sample(gw)
            await asyncio.sleep(METRICS_SAMPLE_S)

    task = asyncio.create_task(sample(), name="isogate-metrics")
    listener = await metrics_listener(gw) if gw.config.metrics.listen else None
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    if listener is not None:
        await listener.cleanup()


def take_sample(gw: Gateway) -> None:
    metrics, dispatch = gw.metrics, gw.dispatch
    containers = dispatch.executors.get(Mode.DOCKER)
    if containers is not None:
        metrics.pool("handlers", containers.status())
    for pool in dispatch.replicas.pools.values() if dispatch.replicas is not None else ():
        metrics.pool(pool.name, pool.status())
    threads = dispatch.executors.get(Mode.THREAD)
    metrics.threads_busy.set(int(str(threads.status()["busy"])) if threads is not None else 0)
    metrics.entities.set(gw.stats.tracked)
    if gw.state is not None:
        metrics.store_up.set(1 if gw.state.available else 0)
        metrics.store_lag.set(time.time() - gw.state.last_sync if gw.state.last_sync else 0)


async def metrics_listener(gw: Gateway) -> web.AppRunner:
    host, _, port = gw.config.metrics.listen.rpartition(":")

    async def scrape(request: web.Request) -> web.Response:
        return admin.metrics_response(gw)

    exporter = web.Application()
    exporter.router.add_get("/metrics", scrape)
    runner = web.AppRunner(exporter, access_log=None)
    await runner.setup()
    workers = gw.config.server.workers != 1  # every worker binds it: any of them answers for all
    try:
        await web.TCPSite(runner, host.strip("[]"), int(port), reuse_port=workers or None).start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError("metrics.listen", f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return runner


async def memory_monitor(app: web.Application) -> AsyncIterator[None]:
    gw = app[GATEWAY]
    gw.memory.check()

    async def watch() -> None:
        while True:
            await asyncio.sleep(gw.config.limits.memory_check_interval_ms / 1000)
            gw.memory.check()

    task = asyncio.create_task(watch(), name="isogate-memory-monitor")
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
