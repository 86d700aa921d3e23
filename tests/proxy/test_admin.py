"""/api/stats (the caller's own figures), /stats (admins only) and /healthz."""

from conftest import Gateway, bearer

ROUTES = [{"path": "/echo", "handler": "echo"}, {"path": "/boom", "handler": "boom"}]


async def test_api_stats_has_the_documented_shape_and_counts(gateway: Gateway) -> None:
    client = await gateway({"routes": ROUTES})
    for _ in range(3):
        assert (await client.get("/echo", headers=bearer("user-123"))).status == 200
    assert (await client.get("/boom", headers=bearer("user-123"))).status == 500
    await client.get("/echo", headers=bearer("someone-else"))
    response = await client.get("/api/stats", headers=bearer("user-123"))
    body = await response.json()
    assert body["entityId"] == "user-123" and body["currentMode"] == "thread"
    stats = body["stats"]
    assert set(stats) == {
        "totalRequests",
        "successfulRequests",
        "failedRequests",
        "avgExecutionTime",
        "failureRate",
        "resourceViolations",
    }
    assert (stats["totalRequests"], stats["successfulRequests"], stats["failedRequests"]) == (4, 3, 1)
    assert stats["failureRate"] == 0.25 and stats["resourceViolations"] == 0
    assert stats["avgExecutionTime"] > 0


async def test_api_stats_for_a_caller_never_seen_is_zeros(gateway: Gateway) -> None:
    client = await gateway({"routes": ROUTES})
    body = await (await client.get("/api/stats", headers=bearer("fresh"))).json()
    assert body["stats"]["totalRequests"] == 0


async def test_api_stats_needs_a_valid_token(gateway: Gateway) -> None:
    client = await gateway({"routes": ROUTES})
    missing = await client.get("/api/stats")
    assert (missing.status, (await missing.json())["error"]) == (401, "missing_token")
    forged = await client.get("/api/stats", headers={"Authorization": "Bearer x.y.z"})
    assert forged.status == 401


async def test_stats_is_for_admins_only(gateway: Gateway) -> None:
    client = await gateway({"routes": ROUTES})
    assert (await client.get("/stats")).status == 401
    assert (await client.get("/stats", headers=bearer("plain"))).status == 403
    assert (await client.get("/stats", headers=bearer("ops", role="admin"))).status == 200


async def test_stats_shape(gateway: Gateway) -> None:
    client = await gateway({"routes": ROUTES})
    await client.get("/echo")
    await client.get("/echo?q=union select", headers=bearer("a"))
    await client.get("/nope")
    body = await (await client.get("/stats", headers=bearer("ops", role="admin"))).json()
    assert body["requests"]["total"] == 3
    assert body["requests"]["by_mode"] == {"thread": 2, "rejected": 1}
    assert body["requests"]["by_risk_band"] == {"medium": 1, "critical": 1}  # 30 (new) and 90 (new + sql)
    assert body["requests"]["by_status"] == {"2xx": 2, "4xx": 1}
    assert body["latency_ms"]["thread"]["count"] == 2
    assert {"p50", "p90", "p99"} <= set(body["latency_ms"]["thread"])
    assert body["entities"]["tracked"] == 2
    assert body["entities"]["top"][0] == {
        "entityId": "127.0.0.1",
        "totalRequests": 2,
        "successfulRequests": 2,
        "failedRequests": 0,
        "avgExecutionTime": body["entities"]["top"][0]["avgExecutionTime"],
        "failureRate": 0.0,
        "resourceViolations": 0,
    }
    assert body["memory"]["rss_mb"] > 0 and body["memory"]["limit_mb"] == 100_000
    assert body["thread_pool"] == {"size": 4, "busy": 0}
    assert body["config"]["generation"] == 1
    assert body["docker"]["enabled"] is False


async def test_healthz(gateway: Gateway) -> None:
    client = await gateway({"routes": ROUTES})
    body = await (await client.get("/healthz")).json()
    assert body["status"] == "ok" and body["thread_pool"]["size"] == 4
