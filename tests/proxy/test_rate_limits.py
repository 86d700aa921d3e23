"""Rate limits through a real gateway on 127.0.0.1, counted in its memory: the 429 and its headers, rates per
trust level and risk band, admins, one route's limit, an upstream route, the figures, and a live reload."""

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from conftest import BASE as SHARED
from conftest import Gateway, bearer
from proxy.gateway import GATEWAY

MODE: dict[str, Any] = {"execution_mode": "thread", "server": {"debug_headers": "all"}}


def limits(*items: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {**MODE, "rate_limits": list(items), **extra}


async def statuses(client: Any, count: int, headers: dict[str, str], path: str = "/echo") -> list[int]:
    out = []
    for _ in range(count):
        async with client.get(path, headers=headers) as response:
            out.append(response.status)
    return out


async def test_past_the_rate_a_429_names_the_limit_with_retry_after_and_ratelimit_headers(
    gateway: Gateway,
) -> None:
    client = await gateway(limits({"name": "per-caller", "rate": "3/minute"}))
    alice = bearer("alice")
    seen = []
    for _ in range(3):
        async with client.get("/echo", headers=alice) as response:
            assert response.status == 200
            assert response.headers["RateLimit-Policy"] == '"per-caller";q=3;w=60'
            seen.append(response.headers["RateLimit"])
    assert [value.split(";")[1] for value in seen] == ["r=2", "r=1", "r=0"]
    async with client.get("/echo", headers=alice) as response:
        assert response.status == 429
        body = await response.json()
        assert body == {"error": "rate_limited", "detail": "rate limit per-caller exceeded"}
        assert 1 <= int(response.headers["Retry-After"]) <= 60
        assert response.headers["RateLimit"].startswith('"per-caller";r=0;t=')
    assert await statuses(client, 2, bearer("bob")) == [200, 200]  # another caller counts apart
    gw = client.app[GATEWAY]
    async with client.get("/api/stats", headers=alice) as response:
        figures = (await response.json())["stats"]
    assert figures["failedRequests"] == 0  # a 429 is not the caller's failure
    async with client.get("/stats", headers=bearer("ops", role="admin")) as response:
        assert (await response.json())["rate_limits"] == {
            "shared": False,
            "refused": {"/echo": {"per-caller": 1}},
        }
    async with client.get("/metrics", headers=bearer("ops", role="admin")) as response:
        assert 'isogate_rate_limited_total{limit="per-caller",route="/echo"} 1.0' in await response.text()
    assert gw.limiter.problem == ""


async def test_rates_follow_trust_levels(gateway: Gateway) -> None:
    client = await gateway(
        limits({"name": "api", "rate": "6/minute", "trust": {"anonymous": "2/minute", "trusted": "9/minute"}})
    )
    assert await statuses(client, 3, {}) == [200, 200, 429]  # anonymous: 2 a minute
    assert await statuses(client, 7, bearer("carol")) == [200] * 6 + [429]  # a token: 6 a minute
    assert await statuses(client, 10, bearer("svc", trust="trusted")) == [200] * 9 + [429]  # trusted: 9
    assert await statuses(client, 1, bearer("untrusted-svc", trust="untrusted")) == [200]


async def test_rates_follow_the_requests_risk_band(gateway: Gateway) -> None:
    risk = {"keywords": ["forbidden-word"], "weights": {"new_entity": 0, "suspicious": 40}}
    client = await gateway(
        limits({"name": "api", "rate": "6/minute", "bands": {"medium": "1/minute"}}, risk=risk)
    )
    dave = bearer("dave")
    async with client.get("/echo?q=forbidden-word", headers=dave) as response:
        assert (response.status, response.headers["X-Isogate-Risk"]) == (200, "40")  # medium: 30..59
    async with client.get("/echo?q=forbidden-word", headers=dave) as response:
        assert response.status == 429  # 1 a minute for medium-risk requests, counted apart
    assert await statuses(client, 7, dave) == [200] * 6 + [429]  # low-risk ones: the caller's 6


async def test_admins_are_exempt_unless_the_limit_says_so(gateway: Gateway) -> None:
    admin = bearer("ops", role="admin")
    client = await gateway(limits({"name": "all", "rate": "1/minute"}))
    assert await statuses(client, 3, admin) == [200, 200, 200]
    client = await gateway(limits({"name": "all", "rate": "1/minute", "admins": True}))
    assert await statuses(client, 2, admin) == [200, 429]


async def test_a_routes_limit_counts_that_route_only_and_keys_by_address(gateway: Gateway) -> None:
    routes = [{"path": "/echo", "handler": "echo"}, {"path": "/other", "handler": "echo"}]
    client = await gateway(
        limits(
            {"name": "echo-by-address", "rate": "2/minute", "route": "/echo", "key": "address"}, routes=routes
        )
    )
    assert await statuses(client, 2, bearer("erin")) == [200, 200]
    assert await statuses(client, 1, bearer("frank")) == [429]  # the same address: counted together
    assert await statuses(client, 3, bearer("frank"), "/other") == [200, 200, 200]


async def test_an_upstream_route_is_limited_before_it_is_forwarded(gateway: Gateway) -> None:
    seen = []

    async def echo(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/api/{tail:.*}", echo)
    upstream = TestServer(app, host="127.0.0.1")
    await upstream.start_server()
    try:
        client = await gateway(
            limits(
                {"name": "up", "rate": "2/minute"},
                routes=[{"path": "/api/*", "upstream": f"http://127.0.0.1:{upstream.port}"}],
            )
        )
        assert await statuses(client, 3, bearer("gina"), "/api/x") == [200, 200, 429]
        assert seen == ["/api/x", "/api/x"]  # the refused one never reached the upstream
    finally:
        await upstream.close()


async def test_a_reload_changes_the_limits_at_once(live: Any) -> None:
    base = {**SHARED, **MODE, "server": {**SHARED["server"], **MODE["server"], "watch_config": False}}
    client, files = await live({**base, "rate_limits": [{"name": "per-caller", "rate": "1/minute"}]})
    henry, admin = bearer("henry"), bearer("ops", role="admin")
    assert await statuses(client, 2, henry) == [200, 429]
    files.write({**base, "rate_limits": [{"name": "per-caller", "rate": "5/minute"}]})
    assert (await (await client.post("/admin/reload", headers=admin)).json())["status"] == "applied"
    assert await statuses(client, 2, henry) == [200, 200]  # the same key and its count, a new rate
    files.write(base)
    assert (await (await client.post("/admin/reload", headers=admin)).json())["status"] == "applied"
    assert await statuses(client, 5, henry) == [200] * 5
