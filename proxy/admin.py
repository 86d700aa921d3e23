"""Admin routes: `/healthz`, the caller's own `/api/stats`, and gateway-wide `/stats` for admins."""

from __future__ import annotations

import os
import time

from aiohttp import web

from policy.config import Mode
from policy.errors import IsogateError, NotFound
from policy.identity import Identity
from proxy.auth import authenticate
from proxy.egress import json_response
from proxy.errors import Forbidden, MissingToken
from proxy.gateway import GATEWAY, Gateway
from proxy.metrics import CONTENT_TYPE
from proxy.reload import RELOADER, SOURCE
from proxy.stats import EntityStats


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/healthz", healthz)
    router.add_get("/api/stats", entity_stats)
    router.add_get("/stats", gateway_stats)
    router.add_post("/admin/reload", reload_config)
    router.add_get("/metrics", admin_metrics)


class NoConfigFile(IsogateError):
    status = 409
    code = "no_config_file"


def _admin(request: web.Request) -> Identity:
    caller = _caller(request)
    if not caller.is_admin:
        raise Forbidden("this route needs a token with role: admin")
    return caller


def _caller(request: web.Request) -> Identity:
    """The token holder; admin routes never fall back to the anonymous identity."""
    header = request.headers.get("Authorization")
    if header is None:
        raise MissingToken("this route needs Authorization: Bearer <token>")
    config = request.app[GATEWAY].config
    return authenticate(header, request.remote or "unknown", config.auth, keys=request.app[GATEWAY].jwks.key)


def _executors(gw: Gateway, *, reasons: bool = True) -> dict[str, object]:
    thread, containers = gw.dispatch.executors.get(Mode.THREAD), gw.dispatch.executors.get(Mode.DOCKER)
    docker = {"enabled": gw.config.docker.enabled, **(containers.status() if containers else {})}
    if not reasons:  # the engine's words (addresses, errors) are for admins
        docker.pop("reason", None)
        if "engines" in docker:
            docker["engines"] = [{k: v for k, v in e.items() if k != "reason"} for e in _engines(docker)]
    pool = {k: v for k, v in thread.status().items() if k in ("size", "busy")} if thread else None
    return {"thread_pool": pool, "docker": docker}


async def healthz(request: web.Request) -> web.Response:
    """200 ok, or 503 degraded naming what is down (a load balancer takes this gateway out of rotation).
    Anyone may ask, so it says what, never why: the engine's error text is in /stats, for admins."""
    gw = request.app[GATEWAY]
    problems, degraded = health(gw)
    status = (
        {"status": "degraded", "problems": problems + degraded} if problems or degraded else {"status": "ok"}
    )
    replicas = gw.dispatch.replicas.pools if gw.dispatch.replicas is not None else {}
    running: dict[str, object] = {"replicas": {r.name: r.available for r in replicas.values()}}
    if gw.state is not None:
        running["state"] = {"backend": gw.state.store.name, "available": gw.state.available}
    return json_response({**status, **_executors(gw, reasons=False), **running}, 503 if problems else 200)


def health(gw: Gateway) -> tuple[list[str], list[str]]:
    """(what takes the gateway out of rotation, what only degrades it), in words anyone may read."""
    containers = gw.dispatch.executors.get(Mode.DOCKER)
    pool: dict[str, object] = containers.status() if containers is not None else {"available": False}
    docker_ok = not gw.config.docker.enabled or bool(pool["available"])
    problems = [] if docker_ok else [f"docker decisions cannot run{_missing(pool)} (details in /stats)"]
    # A replica that cannot run fails its route's docker decisions closed (503); it is reported (degraded,
    # naming it), but it does not take the gateway out of rotation: every other route serves.
    replicas = gw.dispatch.replicas.pools if gw.dispatch.replicas is not None else {}
    degraded = [
        f"isolated replica {workload.image} port {workload.port} cannot run{_missing(replica.status())}"
        for workload, replica in replicas.items()
        if not replica.available
    ]
    # An engine left out while others serve degrades the gateway (fewer containers), naming the engine.
    pools = [("handlers", pool), *((r.name, r.status()) for r in replicas.values())]
    degraded += [
        f"docker engine {engine['engine']} is down: pool {name} runs on the other engines"
        for name, status in pools
        if status.get("available")
        for engine in _engines(status)
        if not engine["up"]
    ]
    # A store down is reported too, and does not take the gateway out of rotation: it serves from its table.
    if gw.state is not None and not gw.state.available:
        degraded.append(f"entity state store {gw.state.store.name} unavailable (details in /stats)")
    if gw.limiter.problem:  # limits keep counting, in this process: never a refusal for it
        degraded.append(gw.limiter.problem)
    return problems, degraded


def _engines(pool: dict[str, object]) -> list[dict[str, object]]:
    engines = pool.get("engines")
    return engines if isinstance(engines, list) else []


def _missing(pool: dict[str, object]) -> str:
    """`: its image is missing`, when that is why (what, not the engine's words)."""
    reason = pool.get("reason")
    return ": its image is missing" if isinstance(reason, str) and reason.startswith("image ") else ""


async def entity_stats(request: web.Request) -> web.Response:
    gw, caller = request.app[GATEWAY], _caller(request)
    figures = (gw.stats.entity(caller.entity_id) or EntityStats()).as_api()
    return json_response(
        {"entityId": caller.entity_id, "stats": figures, "currentMode": gw.config.execution_mode.value}
    )


async def reload_config(request: web.Request) -> web.Response:
    """Re-read the config now: 200 applied/unchanged, 422 invalid (the running config keeps serving)."""
    _admin(request)
    reloader = request.app.get(RELOADER)
    if reloader is None:
        raise NoConfigFile("this gateway was not started from a config file")
    outcome = await reloader.reload("admin")
    body = {"status": outcome.status, "generation": outcome.generation, "detail": outcome.detail}
    return json_response(body, 422 if outcome.status == "invalid" else 200)


async def admin_metrics(request: web.Request) -> web.Response:
    """Prometheus's text format, for admin tokens (metrics.listen empty; else only on that listener)."""
    gw = request.app[GATEWAY]
    metrics = gw.config.metrics
    if not metrics.enabled or metrics.listen:
        raise NotFound("no route for /metrics here (metrics.enabled, metrics.listen)")
    _admin(request)
    return metrics_response(gw)


def metrics_response(gw: Gateway) -> web.Response:
    return web.Response(body=gw.metrics.scrape(), headers={"Content-Type": CONTENT_TYPE})


async def gateway_stats(request: web.Request) -> web.Response:
    _admin(request)
    return json_response(figures(request.app))


def figures(app: web.Application) -> dict[str, object]:
    """The gateway-wide figures of /stats (and of the dashboard)."""
    gw = app[GATEWAY]
    source = app.get(SOURCE)
    worker = source.source.worker if source is not None else (0, 1)  # each worker answers for itself
    return {
        "uptime_s": round(time.time() - gw.started, 1),
        "worker": {"index": worker[0], "of": worker[1], "pid": os.getpid()},
        "execution_mode": gw.config.execution_mode.value,
        "config": gw.live.status(),
        **gw.stats.snapshot(),
        "memory": gw.memory.status(),
        "admission": gw.admission.status(gw.config.admission_slots),
        "rate_limits": gw.limiter.stats(),
        **_executors(gw),
        "upstreams": gw.forwarder.status(),
        "upstream_routes": gw.forwarder.route_status(),
        "replicas": gw.dispatch.replicas.status() if gw.dispatch.replicas is not None else {},
        "dependencies": gw.deps.status(),  # the runner image's layer, after a requirements edit
        "state": gw.state.status() if gw.state is not None else {"backend": "memory"},
    }
