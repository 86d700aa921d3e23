"""Per-route policy through the real gateway: auth, body limit, weights, thresholds, keywords."""

from typing import Any

from conftest import Gateway, bearer

ROUTES: list[dict[str, Any]] = [
    {"path": "/open", "handler": "echo", "methods": ["GET", "POST"]},
    {"path": "/private", "handler": "boom", "auth": "required"},
    {"path": "/small", "handler": "echo", "methods": ["POST"], "max_body_bytes": 10},
    {"path": "/lenient", "handler": "echo", "weights": {"new_entity": 0, "suspicious": 5, "xss": 0}},
    {"path": "/strict", "handler": "echo", "block_threshold": 30},
    {"path": "/db", "handler": "echo", "keywords": ["drop database"]},
    {"path": "/tight", "handler": "echo", "risk_thresholds": {"low": 10, "medium": 20, "high": 25}},
]


async def test_auth_required_answers_401_before_the_handler_runs(gateway: Gateway) -> None:
    client = await gateway({"routes": ROUTES})
    response = await client.get("/private")
    assert (response.status, (await response.json())["error"]) == (401, "missing_token")
    assert (await client.get("/private", headers=bearer())).status == 500  # now the handler runs (and raises)


async def test_a_route_body_limit_beats_the_global_one(gateway: Gateway) -> None:
    client = await gateway({"routes": ROUTES})
    assert (await client.post("/small", data=b"x" * 11)).status == 413
    assert (await client.post("/open", data=b"x" * 11)).status == 200


async def test_route_weights_override_the_gateway_weights(gateway: Gateway) -> None:
    client = await gateway({"routes": ROUTES})
    lenient = await client.get("/lenient?q=<script>")
    assert lenient.headers["X-Isogate-Factors"] == "suspicious=5"
    regular = await client.get("/open?q=<script>")
    assert regular.headers["X-Isogate-Factors"] == "new_entity=30,suspicious=20,xss=40"


async def test_a_route_block_threshold(gateway: Gateway) -> None:
    client = await gateway({"routes": ROUTES})
    assert (await client.get("/strict")).status == 403  # a new entity scores 30
    assert (await client.get("/open")).status == 200


async def test_route_keywords_add_to_the_global_ones_on_that_route_only(gateway: Gateway) -> None:
    client = await gateway({"routes": ROUTES})
    on_route = await client.get("/db?sql=DROP%20DATABASE%20shop", headers=bearer("k"))
    assert "suspicious=20" in on_route.headers["X-Isogate-Factors"]
    elsewhere = await client.get("/open?sql=DROP%20DATABASE%20shop", headers=bearer("k"))
    assert "suspicious" not in elsewhere.headers["X-Isogate-Factors"]


async def test_route_thresholds_change_the_band(gateway: Gateway) -> None:
    config = {"execution_mode": "hybrid", "docker": {"enabled": True, "host": "unix:///tmp/no-engine.sock"}}
    client = await gateway({**config, "routes": ROUTES, "hybrid": {"docker_for": {"new": False}}})
    token = bearer("t", trust="trusted")
    tight = await client.get("/tight", headers=token)  # 30 >= high 25: docker, which is unreachable
    assert (tight.status, tight.headers["X-Isogate-Mode"]) == (503, "docker")
    regular = await client.get("/open", headers=token)  # 30 is medium, no trigger applies: thread
    assert (regular.status, regular.headers["X-Isogate-Mode"]) == (200, "thread")
