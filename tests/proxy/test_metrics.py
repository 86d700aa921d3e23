"""GET /metrics: Prometheus's text format, for admins on the gateway's port or on a listener of its own."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from typing import Any

import aiohttp
from ports import free_port

from conftest import BASE, Gateway, bearer
from handlers import Response
from policy.config import Mode
from pool.base import Job
from pool.settings import Settings
from proxy.app import take_sample
from proxy.gateway import GATEWAY

ADMIN = bearer("ops", role="admin")


def value(text: str, name: str, **labels: str) -> float:
    """The sample `name{labels...}` (label order as exposed), or 0."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_metrics_count_requests_by_mode_route_status_and_band_for_admins_only(gateway: Gateway) -> None:
    client = await gateway({"routes": [{"path": "/echo", "handler": "echo"}]})
    for _ in range(3):
        assert (await client.get("/echo", headers=bearer("alice", trust="trusted"))).status == 200
    assert (await client.get("/nowhere")).status == 404
    assert (await client.get("/metrics")).status == 401
    assert (await client.get("/metrics", headers=bearer("alice"))).status == 403
    take_sample(client.app[GATEWAY])  # (once a second on its own)
    response = await client.get("/metrics", headers=ADMIN)
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    assert value(text, "isogate_requests_total", mode="thread", route="/echo", status="200") == 3
    assert value(text, "isogate_request_duration_seconds_count", mode="thread") == 3
    assert value(text, "isogate_requests_total", route="-", status="404") == 1
    assert value(text, "isogate_entities_tracked") >= 1


class DownPool:
    """A docker executor that reports the engine down and two timeouts (as ContainerPool.status does)."""

    async def run(self, job: Job) -> Response:
        raise AssertionError("not used")

    def reconfigure(self, settings: Settings) -> None:
        pass

    def status(self) -> dict[str, object]:
        return {"available": False, "idle": 0, "busy": 1, "creating": 2, "timeouts": 2}

    async def aclose(self) -> None:
        pass


async def test_pools_faults_and_reloads_are_sampled(live: Any) -> None:
    client, files = await live({**BASE, "routes": [{"path": "/echo", "handler": "echo"}]})
    gw = client.app[GATEWAY]
    gw.dispatch.executors[Mode.DOCKER] = DownPool()
    take_sample(gw)
    take_sample(gw)  # the same totals again: counted once
    files.write({**BASE, "routes": [{"path": "/echo2", "handler": "echo"}]})
    assert (await client.post("/admin/reload", headers=ADMIN)).status == 200
    files.write("routes: [unclosed\n")
    assert (await client.post("/admin/reload", headers=ADMIN)).status == 422
    text = await (await client.get("/metrics", headers=ADMIN)).text()
    assert value(text, "isogate_pool_available", pool="handlers") == 0
    assert value(text, "isogate_pool_containers", pool="handlers", state="creating") == 2
    assert value(text, "isogate_faults_total", pool="handlers", kind="timeouts") == 2
    assert value(text, "isogate_reloads_total", result="invalid") == 1
    assert (
        value(text, "isogate_reloads_total", result="applied")
        + value(text, "isogate_reloads_total", result="unchanged")
        >= 1
    )


async def test_a_listener_of_its_own_serves_metrics_without_a_token(gateway: Gateway) -> None:
    port = free_port()
    client = await gateway({"metrics": {"listen": f"127.0.0.1:{port}"}})
    assert (await client.get("/metrics", headers=ADMIN)).status == 404  # not on the gateway's port
    async with aiohttp.ClientSession() as session:
        for _ in range(50):  # bounded: listening once the app started
            try:
                async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                    assert response.status == 200 and "isogate_requests_total" in await response.text()
                    return
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
    raise AssertionError("the metrics listener never answered")


async def test_metrics_can_be_turned_off(gateway: Gateway) -> None:
    client = await gateway({"metrics": {"enabled": False}})
    response = await client.get("/metrics", headers=ADMIN)
    assert response.status == 404 and "metrics.enabled" in (await response.json())["detail"]


class OneEngineDown(DownPool):
    """A pool over two engines, the second left out (as ContainerPool.status reports it)."""

    def status(self) -> dict[str, object]:
        engine = {"idle": 1, "busy": 0, "creating": 0, "created": 3, "faults": 0, "downs": 0}
        return {
            "available": True,
            "reason": None,
            "engines": [
                {**engine, "engine": "unix:///var/run/docker.sock", "up": True, "reason": None},
                {
                    **engine,
                    "engine": "tcp://10.0.0.7:2376",
                    "up": False,
                    "reason": "docker engine unreachable: [900] Cannot connect to Docker Engine",
                    "idle": 0,
                    "faults": 2,
                    "downs": 1,
                },
            ],
        }


async def test_an_engine_left_out_degrades_healthz_by_name_and_shows_in_stats_and_metrics(
    gateway: Gateway,
) -> None:
    """The gateway stays in rotation (200: the other engine serves). Anyone sees which engine is down,
    only admins why."""
    client = await gateway({"routes": [{"path": "/echo", "handler": "echo"}]})
    gw = client.app[GATEWAY]
    gw.live.config = replace(gw.config, docker=replace(gw.config.docker, enabled=True))
    gw.dispatch.executors[Mode.DOCKER] = OneEngineDown()
    health = await client.get("/healthz")
    body = await health.json()
    assert health.status == 200 and body["status"] == "degraded"
    assert body["problems"] == [
        "docker engine tcp://10.0.0.7:2376 is down: pool handlers runs on the other engines"
    ]
    assert "Cannot connect" not in await health.text()  # the engine's words are for admins
    stats = await (await client.get("/stats", headers=ADMIN)).json()
    assert "Cannot connect" in stats["docker"]["engines"][1]["reason"]
    take_sample(gw)
    text = await (await client.get("/metrics", headers=ADMIN)).text()
    remote = {"pool": "handlers", "engine": "tcp://10.0.0.7:2376"}
    assert value(text, "isogate_engine_up", **remote) == 0
    assert value(text, "isogate_engine_up", pool="handlers", engine="unix:///var/run/docker.sock") == 1
    assert value(text, "isogate_engine_faults_total", **remote) == 2
    assert value(text, "isogate_engine_downs_total", **remote) == 1
    local = {"pool": "handlers", "engine": "unix:///var/run/docker.sock"}
    assert value(text, "isogate_engine_containers", **local, state="idle") == 1
