"""Isolated replicas on the real engine: an upstream route's docker decisions go to the example app (busybox
httpd and a shell API, tests/dockerenv.py builds it) in locked-down containers of its own pool, never to the
production upstream on 127.0.0.1; each replica container serves one caller; the app's faults have their
statuses and the container is replaced."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from conftest import Gateway, bearer, make_config
from dockerenv import REPLICA_IMAGE, labelled
from proxy.gateway import GATEWAY

pytestmark = pytest.mark.docker

ATTACK = "/cgi-bin/echo?q=1%27%20UNION%20SELECT%20password%20FROM%20users--"
TRUSTED = bearer("ops", trust="trusted")
ADMIN = bearer("root", role="admin")


@pytest.fixture
async def production() -> AsyncIterator[tuple[str, Counter[str]]]:
    """The production upstream: counts every request it sees."""
    seen: Counter[str] = Counter()

    async def serve(request: web.Request) -> web.Response:
        seen[request.path] += 1
        return web.json_response({"served_by": "production"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", serve)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}", seen
    await server.close()


Client = TestClient[web.Request, web.Application]


def replica_config(docker_settings: dict[str, Any], upstream: str, **iso: Any) -> dict[str, Any]:
    isolated = {"image": REPLICA_IMAGE, "port": 8080, "warm_pool_size": 1, "max_containers": 3, **iso}
    return {
        "execution_mode": "hybrid",
        "hybrid": {"docker_for": {"new": False}},  # a trusted caller goes to production from the start
        "docker": {**docker_settings, "max_response_bytes": 1 << 20},
        "server": {"debug_headers": "all"},
        "routes": [{"path": "/*", "upstream": upstream, "isolated": isolated, "timeout_ms": 1500}],
    }


async def replica_gateway(
    gateway: Gateway, docker_settings: dict[str, Any], upstream: str, **iso: Any
) -> Client:
    return await gateway(replica_config(docker_settings, upstream, **iso))


def replica_pool(client: Client) -> Any:
    replicas = client.app[GATEWAY].dispatch.replicas
    assert replicas is not None
    (pool,) = replicas.pools.values()
    return pool


async def test_a_suspicious_request_goes_to_the_replica_and_never_to_production(
    gateway: Gateway, docker_settings: dict[str, Any], production: Any
) -> None:
    upstream, seen = production
    client = await replica_gateway(gateway, docker_settings, upstream)
    response = await client.post(ATTACK, data=b"a=1&b=2", headers={"X-Forwarded-For": "198.51.100.7"})
    assert response.status == 200, await response.text()
    assert (response.headers["X-Isogate-Mode"], response.headers["X-Isogate-Target"]) == ("docker", "replica")
    assert response.headers["X-Served-By"] == "example-app"  # the shell API in the app's own image
    answer = json.loads(await response.read())
    assert answer["method"] == "POST" and answer["bytes"] == 7 and answer["body"] == "a=1&b=2"
    assert "UNION%20SELECT" in answer["query"] and answer["forwarded_for"] == "198.51.100.7, 127.0.0.1"
    assert sum(seen.values()) == 0  # production never saw it
    page = await client.get("/index.html", headers=TRUSTED)  # a trusted caller: production
    assert page.headers["X-Isogate-Target"] == "upstream" and seen["/index.html"] == 1
    stats = await (await client.get("/stats", headers=ADMIN)).json()
    (replica,) = stats["replicas"].values()
    assert replica["available"] and replica["created"] >= 1
    assert stats["upstream_routes"]["/*"]["requests"] == 2


async def test_replica_containers_are_locked_down_and_serve_one_caller_each(
    gateway: Gateway, docker_settings: dict[str, Any], production: Any
) -> None:
    upstream, _ = production
    client = await replica_gateway(gateway, docker_settings, upstream, max_containers=2)

    async def container_of(caller: str) -> str:
        response = await client.get(ATTACK, headers=bearer(caller, trust="untrusted"))
        assert response.status == 200, await response.text()
        return str(json.loads(await response.read())["container"])

    first = await container_of("mallory")
    assert await container_of("mallory") == first  # the same caller keeps its container
    second = await container_of("alice")
    assert second != first  # another caller never gets it: a fresh container does
    pool = replica_pool(client)
    assert await container_of("mallory") == first  # kept for its caller while a fresh one waited for alice
    assert pool.exclusive and pool.counts["recycled"] == 0
    third = await container_of("bob")  # full: the least recently used one (alice's) makes room
    assert third not in (first, second) and pool.counts["recycled"] == 1
    assert await container_of("mallory") == first
    # Same lock-down as a handler container, on the app's own image and command.
    (inspected,) = json.loads(
        subprocess.run(["docker", "inspect", first], capture_output=True, text=True, check=True).stdout
    )
    host = inspected["HostConfig"]
    assert (host["NetworkMode"], host["ReadonlyRootfs"], host["CapDrop"]) == ("none", True, ["ALL"])
    assert inspected["Config"]["User"] == "65534:65534" and inspected["Config"]["Image"] == REPLICA_IMAGE
    assert "httpd" in inspected["Config"]["Cmd"]
    interfaces = subprocess.run(
        ["docker", "exec", first, "cat", "/proc/net/dev"], capture_output=True, text=True, check=True
    ).stdout
    assert [line.split(":")[0].strip() for line in interfaces.splitlines()[2:]] == ["lo"]


async def test_the_apps_faults_have_their_statuses_and_its_container_is_replaced(
    gateway: Gateway, docker_settings: dict[str, Any], production: Any
) -> None:
    upstream, seen = production
    client = await replica_gateway(gateway, docker_settings, upstream)
    pool = replica_pool(client)
    caller = {"X-Forwarded-For": "203.0.113.5"}

    async def fault(path: str) -> tuple[int, str]:
        response = await client.get(f"/cgi-bin/{path}?q=%3Cscript%3E", headers=caller)
        return response.status, (await response.json())["error"]

    assert await fault("slow") == (504, "execution_timeout")  # past the route's timeout_ms
    assert await fault("big") == (502, "response_too_large")  # past docker.max_response_bytes
    served = await client.get(ATTACK, headers=caller)
    container = json.loads(await served.read())["container"]
    # The app dies (docker-init, the container's first process, ends with it: so does the container).
    # Detached: under gVisor a `docker exec` into a container that dies meanwhile may never return.
    killer = ["docker", "exec", "-d", "-u", "65534:65534", container, *"busybox killall -9 busybox".split()]
    assert subprocess.run(killer, capture_output=True, timeout=30).returncode == 0
    for _ in range(300):  # bounded: the engine's die event reaches the pool
        if pool.counts["died_idle"]:
            break
        await asyncio.sleep(0.1)
    after = await client.get(ATTACK, headers=caller)  # served by a fresh container
    assert after.status == 200 and json.loads(await after.read())["container"] != container
    assert (pool.counts["timeouts"], pool.counts["died_idle"]) == (1, 1)
    assert sum(seen.values()) == 0


async def test_a_replica_whose_app_never_listens_fails_closed(
    gateway: Gateway, docker_settings: dict[str, Any], production: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pool import sandbox

    monkeypatch.setattr(sandbox, "CREATE_S", 2.0)  # the app's start is awaited this long
    upstream, seen = production
    client = await replica_gateway(gateway, docker_settings, upstream, port=9)  # nothing listens on 9
    response = await client.get(ATTACK)
    assert (response.status, (await response.json())["error"]) == (503, "docker_unavailable")
    assert sum(seen.values()) == 0
    await asyncio.sleep(0)


async def test_a_reload_opens_a_new_replica_and_closes_the_one_no_route_names(
    gateway: Gateway, docker_settings: dict[str, Any], production: Any
) -> None:
    upstream, seen = production
    client = await replica_gateway(gateway, docker_settings, upstream)
    gw, old = client.app[GATEWAY], replica_pool(client)
    assert (await client.get(ATTACK)).status == 200
    new = replica_config(docker_settings, upstream, image="isogate-example-app:latest")  # another image
    gw.apply(make_config(new), {}, "sha", "test")
    pool = replica_pool(client)
    assert pool is not old
    for _ in range(300):  # bounded: the new pool warms, the old one is drained and removed
        if pool.available and not labelled(old.name):
            break
        await asyncio.sleep(0.1)
    assert pool.available and not labelled(old.name) and old.status()["available"] is False
    response = await client.get(ATTACK)
    assert response.status == 200 and response.headers["X-Isogate-Target"] == "replica"
    assert pool.counts["created"] >= 1 and sum(seen.values()) == 0


async def test_a_missing_replica_image_is_named_not_taken_for_an_engine_outage_and_said_once(
    gateway: Gateway, docker_settings: dict[str, Any], production: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The README's `isolated: {image: myshop:1.4}` pasted as is: 503 image_missing naming the image,
    /healthz degraded naming the replica (200: every other route serves), one warning while it lasts."""
    upstream, seen = production
    missing = "isogate-test-no-such-image:1.4"
    with caplog.at_level(logging.WARNING, logger="isogate"):
        client = await replica_gateway(gateway, docker_settings, upstream, image=missing)
        response = await client.post(ATTACK, data=b"a=1", headers={"X-Forwarded-For": "198.51.100.7"})
        body = await response.json()
        assert (response.status, body["error"]) == (503, "image_missing") and missing in body["detail"]
        health = await client.get("/healthz")
        problems = (await health.json())["problems"]
        assert health.status == 200 and problems == [
            f"isolated replica {missing} port 8080 cannot run: its image is missing"
        ]
        await asyncio.sleep(3)  # the supervisor retries every second
        assert (await client.get("/x", headers=TRUSTED)).status == 200  # production serves on
    warnings = [r for r in caplog.records if missing in r.getMessage()]
    assert len(warnings) == 1 and seen["/x"] == 1
