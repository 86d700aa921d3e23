"""Real files and free text through a real gateway on 127.0.0.1, to a handler route and to an upstream
route: served on the thread path and delivered byte for byte; disguised uploads isolated or refused with
their evidence; report-only serves everything and says what it would have done; exclusions apply on reload."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from conftest import CRS_RULES, Client, Gateway, bearer
from files import FILES, png, upload
from proxy.gateway import GATEWAY

CALLER = bearer("uploader", trust="trusted", role="admin")  # admin: the debug headers are shown
CONTENT_FACTORS = ("upload_mismatch", "active_content", "xxe", "crlf_injection", "sql_injection", "xss")


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[TestServer, list[bytes]]]:
    """An upstream that keeps every body it receives."""
    received: list[bytes] = []

    async def keep(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.json_response({"stored": len(received[-1])}, status=201)

    app = web.Application(client_max_size=8 << 20)
    app.router.add_route("*", "/{tail:.*}", keep)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server, received
    await server.close()


def config(server: TestServer, **hybrid: Any) -> dict[str, Any]:
    return {
        "execution_mode": "hybrid",
        "server": {"debug_headers": "admins"},
        "hybrid": hybrid,
        "risk": {"new_entity_requests": 0, "keywords": []},
        "routes": [
            {"path": "/files", "handler": "echo", "methods": ["POST", "PUT"]},
            {"path": "/api/*", "upstream": f"http://127.0.0.1:{server.port}"},
        ],
    }


@pytest.mark.parametrize("name", list(FILES))
async def test_a_real_file_reaches_a_handler_and_an_upstream_on_the_thread_path_byte_for_byte(
    gateway: Gateway, upstream: tuple[TestServer, list[bytes]], name: str
) -> None:
    server, received = upstream
    client = await gateway(config(server))
    data, ctype = FILES[name]
    body, form_type = upload(name, data, ctype)
    for path, sent, sent_type in (
        ("/files", body, form_type),
        ("/api/files", body, form_type),
        ("/api/raw", data, ctype),
    ):
        response = await client.post(path, data=sent, headers={**CALLER, "Content-Type": sent_type})
        assert response.status in (200, 201), await response.text()
        assert response.headers["X-Isogate-Mode"] == "thread"
        factors = response.headers["X-Isogate-Factors"]
        assert not any(factor in factors for factor in CONTENT_FACTORS), factors
    assert received == [body, data]  # the upstream got what was sent, framing and all


async def test_a_disguised_upload_is_refused_on_an_upstream_without_isolation_and_says_why(
    gateway: Gateway, upstream: tuple[TestServer, list[bytes]]
) -> None:
    server, received = upstream
    client = await gateway(config(server))
    body, ctype = upload("avatar.png", b"<?php system($_GET['c']); ?>", "image/png")
    response = await client.post("/api/avatar", data=body, headers={**CALLER, "Content-Type": ctype})
    assert response.status == 403 and (await response.json())["error"] == "isolation_unavailable"
    evidence = response.headers["X-Isogate-Evidence"]
    assert "upload_mismatch: FILES:file: application/x-httpd-php content declared as image/png" in evidence
    assert received == []  # production never saw it


async def test_evidence_is_header_safe_and_redacts_long_runs(
    gateway: Gateway, upstream: tuple[TestServer, list[bytes]]
) -> None:
    server, _ = upstream
    client = await gateway(config(server))
    comment = "Привет\r\n<script>alert('sk_live_4eC39HqLyjWDarjtT1zdp7dc')</script>"
    response = await client.post("/files", json={"comment": comment}, headers=CALLER)
    evidence = response.headers["X-Isogate-Evidence"]
    assert evidence.startswith("xss: ARGS:json.comment: ") and evidence.isascii()
    assert "sk_live_4eC39HqLyjWDarjtT1zdp7dc" not in evidence


async def test_report_only_serves_everything_and_logs_counts_and_tells_what_it_would_have_done(
    gateway: Gateway, upstream: tuple[TestServer, list[bytes]], caplog: pytest.LogCaptureFixture
) -> None:
    server, received = upstream
    client = await gateway(config(server, report_only=True, block_threshold=90))
    attack = {
        "q": "1' union select password from users--",
        "x": "<script>alert(1)</script>",
        "y": "; cat /etc/passwd",
    }
    with caplog.at_level(logging.INFO, logger="isogate.decision"):
        disguised, ctype = upload("shell.php.png", png(), "image/png")
        first = await client.post("/api/avatar", data=disguised, headers={**CALLER, "Content-Type": ctype})
        second = await client.post("/files", json=attack, headers=CALLER)
        client.app[GATEWAY].decisions.flush()
    assert (first.status, first.headers["X-Isogate-Would"]) == (201, "docker")
    assert (second.status, second.headers["X-Isogate-Would"]) == (200, "block")
    assert received == [disguised]  # production served it, as report-only promises
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "isogate.decision"]
    assert [(line["mode"], line["would"]) for line in lines] == [("thread", "docker"), ("thread", "block")]
    assert "double extension in 'shell.php.png'" in lines[0]["evidence"]["upload_mismatch"]
    stats = await (await client.get("/stats", headers=CALLER)).json()
    assert stats["requests"]["report_only_would"] == {"docker": 1, "block": 1}
    metrics = await (await client.get("/metrics", headers=CALLER)).text()
    assert 'isogate_report_only_would_total{action="block",route="/files"} 1.0' in metrics


async def test_an_exclusion_per_parameter_and_one_per_route_apply_on_reload(live: Any) -> None:
    routes = [
        {"path": "/echo", "handler": "echo", "methods": ["POST"]},
        {"path": "/other", "handler": "echo"},
    ]
    base = {
        "execution_mode": "thread",
        "handlers_package": "probe_handlers",
        "auth": {"secret_key": "test-secret-0123456789abcdef0123456789abcdef"},
        "docker": {"enabled": False},
        "server": {"debug_headers": "all"},
        "risk": {"keywords": []},
        "routes": routes,
    }
    client, files = await live(base)

    async def factors(path: str, field: str) -> str:
        response = await client.post(path, json={field: "<script>alert(1)</script>"})
        return response.headers["X-Isogate-Factors"]

    assert "xss" in await factors("/echo", "bio")
    exclusions = [
        {"factors": ["xss"], "variables": ["ARGS:json.bio"]},
        {"factors": ["xss", "suspicious"], "route": "/other"},
    ]
    files.write({**base, "risk": {"keywords": [], "exclude": exclusions}})
    await reloaded(client)
    assert "xss" not in await factors("/echo", "bio")  # the parameter excluded
    assert "xss" in await factors("/echo", "name")  # another parameter still scored
    assert "xss" not in await factors("/other", "name")  # the route excluded


async def reloaded(client: Client) -> None:
    admin = bearer("ops", role="admin")
    response = await client.post("/admin/reload", headers=admin)
    assert response.status == 200, await response.text()


async def test_the_readmes_tuning_example_from_the_log_line_to_the_exclusion(
    live: Any, crs_cache: str
) -> None:
    """README, "Tuning false positives": the evidence it shows, and the exclusion that ends the flag."""
    base = {
        "handlers_package": "probe_handlers",
        "auth": {"secret_key": "test-secret-0123456789abcdef0123456789abcdef"},
        "docker": {"enabled": False},
        "execution_mode": "thread",
        "server": {"debug_headers": "all"},
        "risk": {"crs": {"enabled": True, "rules_dir": CRS_RULES, "cache_dir": crs_cache}},
        "routes": [{"path": "/echo", "handler": "echo"}],
    }
    client, files = await live(base)
    search = "/echo?q=Here+is+a+sample%3B+alter+the+names%3A"
    evidence = (await client.get(search)).headers["X-Isogate-Evidence"]
    assert "crs: 942350 at ARGS:q: 'Here is a sample; alter the names:' (anomaly score 5)" in evidence
    exclusion = {"rules": [942350], "variables": ["ARGS:q"], "route": "/echo"}
    files.write({**base, "risk": {**base["risk"], "exclude": [exclusion]}})
    await reloaded(client)
    assert "crs" not in (await client.get(search)).headers["X-Isogate-Factors"]


DOCUMENTS = {
    "json": (
        "application/json",
        b'{"comment": "Great!\\nNote: it\'s \\"fragile\\"; 10/10", "rating": 4}',
        b'{"q": "1\' union select password from users--"}',
    ),
    "xml": (
        "application/xml",
        b'<?xml version="1.0"?><review stars="4"><text>Fine &amp; fast</text></review>',
        b'<review id="1\' union select password from users--"/>',
    ),
    "graphql": (
        "application/json",
        b'{"query": "query($id: ID!) { item(id: $id) { name } }", "variables": {"id": "42"}}',
        b'{"query": "query($id: ID!) { item(id: $id) { name } }",'
        b' "variables": {"id": "1\' union select password from users--"}}',
    ),
    "form": (
        "application/x-www-form-urlencoded",
        b"comment=Great%21+10%2F10&rating=4",
        b"q=1%27+union+select+password+from+users--",
    ),
}


@pytest.mark.parametrize("kind", list(DOCUMENTS))
async def test_documents_pass_to_a_handler_and_an_upstream_and_their_attacks_are_caught(
    gateway: Gateway, upstream: tuple[TestServer, list[bytes]], kind: str
) -> None:
    server, received = upstream
    client = await gateway(config(server))
    ctype, benign, attack = DOCUMENTS[kind]
    for path in ("/files", "/api/docs"):
        response = await client.post(path, data=benign, headers={**CALLER, "Content-Type": ctype})
        assert response.status in (200, 201) and response.headers["X-Isogate-Mode"] == "thread", kind
        assert not any(f in response.headers["X-Isogate-Factors"] for f in CONTENT_FACTORS)
        flagged = await client.post(path, data=attack, headers={**CALLER, "Content-Type": ctype})
        assert "sql_injection" in flagged.headers["X-Isogate-Factors"], kind
    assert received == [benign]  # the attack never reached the upstream (no isolated target: 403)
