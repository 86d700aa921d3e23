"""The request path against a real loopback server: routing, limits, transparency, headers, logging."""

import logging
import os

import pytest

from conftest import Gateway, bearer
from proxy.gateway import GATEWAY

ROUTES = [
    {"path": "/echo", "handler": "echo", "methods": ["GET", "POST"]},
    {"path": "/raw/*", "handler": "raw"},
    {"path": "/json", "handler": "json_transform", "methods": ["POST"]},
]


async def test_echo_answers_with_the_handlers_response(gateway: Gateway) -> None:
    client = await gateway({"routes": ROUTES})
    response = await client.get("/echo?x=1", headers={"User-Agent": "t/1"})
    assert response.status == 200
    body = await response.json()
    assert body["query"] == {"x": "1"} and body["headers"]["user-agent"] == "t/1"
    assert body["entity"] == "127.0.0.1"


async def test_unknown_route_is_404_and_wrong_method_is_405(gateway: Gateway) -> None:
    client = await gateway({"routes": ROUTES})
    missing = await client.get("/nope")
    assert (missing.status, (await missing.json())["error"]) == (404, "not_found")
    wrong = await client.delete("/echo")
    assert (wrong.status, (await wrong.json())["error"]) == (405, "method_not_allowed")
    assert wrong.headers["Allow"] == "GET, POST"


async def test_body_over_the_limit_is_413_without_being_read(gateway: Gateway) -> None:
    client = await gateway({"routes": ROUTES, "server": {"max_body_bytes": 1000}})
    declared = await client.post("/echo", data=b"x" * 1001)
    assert declared.status == 413
    assert (await declared.json())["error"] == "payload_too_large"

    async def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(100):
            yield b"y" * 100

    streamed = await client.post("/echo", data=chunks())
    assert streamed.status == 413
    fits = await client.post("/echo", data=b"z" * 1000)
    assert (await fits.json())["body_bytes"] == 1000


async def test_status_headers_and_binary_body_pass_through_unchanged(gateway: Gateway) -> None:
    client = await gateway({"routes": ROUTES})
    payload = os.urandom(70_000) + bytes(range(256))
    response = await client.post("/raw/x?status=418", data=payload, headers=bearer("bin"))
    assert response.status == 418
    assert await response.read() == payload
    assert response.headers["Content-Type"] == "application/x-probe"
    assert response.headers.getall("X-Probe") == ["one", "two"]
    assert response.headers.getall("Set-Cookie") == ["a=1", "b=2"]
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers.get("Connection") != "x-should-be-dropped"  # hop-by-hop removed
    assert "chunked" not in response.headers.get("Transfer-Encoding", "")
    assert response.headers["X-Seen-Authorization"] == "absent"  # credentials are withheld


async def test_every_response_carries_a_request_id(gateway: Gateway) -> None:
    client = await gateway({"routes": ROUTES})
    ids = {(await client.get(path)).headers["X-Request-Id"] for path in ("/echo", "/nope", "/healthz")}
    assert len(ids) == 3 and all(len(i) == 32 for i in ids)


async def test_debug_headers_show_score_mode_and_factors(gateway: Gateway) -> None:
    client = await gateway({"routes": ROUTES})
    response = await client.get("/echo?q=1%20UNION%20SELECT%201")
    assert response.headers["X-Isogate-Risk"] == "90"
    assert response.headers["X-Isogate-Mode"] == "thread"
    assert response.headers["X-Isogate-Factors"] == "new_entity=30,suspicious=20,sql_injection=40"


async def test_debug_headers_are_off_unless_configured(gateway: Gateway) -> None:
    client = await gateway({"routes": ROUTES, "server": {"debug_headers": False}})
    response = await client.get("/echo")
    assert not any(name.startswith("X-Isogate") for name in response.headers)


async def test_json_transform_parses_and_rejects_invalid_json(gateway: Gateway) -> None:
    client = await gateway({"routes": ROUTES})
    good = await client.post("/json", json={"a": {"b": [1, "x"]}, "c": True})
    assert (await good.json())["flat"] == {"a.b.0": 1, "a.b.1": "x", "c": True}
    bad = await client.post("/json", data=b"{not json")
    assert (bad.status, (await bad.json())["error"]) == (400, "invalid_json")


async def test_ip_deny_list_is_403_before_anything_runs(gateway: Gateway) -> None:
    client = await gateway({"routes": ROUTES, "ip_lists": {"deny": ["127.0.0.0/8"]}})
    response = await client.get("/nope", headers=bearer())
    assert (response.status, (await response.json())["error"]) == (403, "ip_denied")


async def test_spoofed_forwarded_for_changes_nothing(gateway: Gateway) -> None:
    client = await gateway({"routes": ROUTES, "ip_lists": {"deny": ["198.51.100.7"]}})
    response = await client.get("/echo", headers={"X-Forwarded-For": "203.0.113.9"})
    assert (await response.json())["entity"] == "127.0.0.1"


async def test_forwarded_for_is_believed_from_a_trusted_proxy(gateway: Gateway) -> None:
    config = {"routes": ROUTES, "server": {"trusted_proxies": ["127.0.0.1"]}}
    client = await gateway({**config, "ip_lists": {"flagged": ["203.0.113.0/24"]}})
    response = await client.get("/echo", headers={"X-Forwarded-For": "203.0.113.9"})
    assert (await response.json())["entity"] == "203.0.113.9"
    assert "ip_flagged=25" in response.headers["X-Isogate-Factors"]


async def test_block_threshold_answers_403(gateway: Gateway) -> None:
    client = await gateway({"execution_mode": "hybrid", "routes": ROUTES, "hybrid": {"block_threshold": 50}})
    response = await client.get("/echo?q=<script>")
    assert (response.status, (await response.json())["error"]) == (403, "risk_blocked")
    assert response.headers["X-Isogate-Risk"] == "90"  # new_entity 30, suspicious 20, xss 40


async def test_each_decision_is_one_structured_log_line_without_credentials(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    client = await gateway({"routes": ROUTES})
    headers = bearer("logger")
    with caplog.at_level(logging.INFO, logger="isogate.decision"):
        await client.get("/echo?x=1", headers=headers)
        await client.get("/echo", headers={"Authorization": "Bearer forged.token.value"})
        client.app[GATEWAY].decisions.flush()  # lines are written by the log's own thread
    lines = [r.getMessage() for r in caplog.records if r.name == "isogate.decision"]
    assert len(lines) == 2
    assert '"entity":"logger"' in lines[0] and '"mode":"thread"' in lines[0] and '"status":200' in lines[0]
    assert '"score":30' in lines[0] and '"factors":"new_entity=30"' in lines[0] and "elapsed_ms" in lines[0]
    assert '"status":401' in lines[1]
    token = headers["Authorization"].split()[1]
    assert not any(token in text or "forged.token" in text for text in caplog.text.splitlines())


async def test_route_to_module_without_handle_refuses_to_start(gateway: Gateway) -> None:
    from policy.errors import ConfigError

    with pytest.raises(ConfigError, match=r"routes\[0\].handler: .*defines no handle"):
        await gateway({"routes": [{"path": "/x", "handler": "not_a_handler"}]})
