"""The dashboard's access and figures through a real gateway on 127.0.0.1 (the browser test is
tests/e2e/test_dashboard_browser.py): who gets in, what the cookie is and is not, the event stream's
figures, its bounds, and the path given back to the routes when the dashboard is off."""

import asyncio
import time
from typing import Any

import jwt
import orjson

from conftest import SECRET, Gateway, bearer, token
from proxy.dashboard import AUDIENCE, COOKIE, POLICY
from proxy.gateway import GATEWAY

CONFIG: dict[str, Any] = {"dashboard": {"refresh_s": 0.5}}


async def login(client: Any, bearer_token: str, **headers: str) -> Any:
    return await client.post(
        "/dashboard/login", data={"token": bearer_token}, headers=headers, allow_redirects=False
    )


async def first_event(client: Any, **headers: str) -> dict[str, Any]:
    async with client.get("/dashboard/events", headers=headers) as response:
        assert response.status == 200 and response.headers["Content-Type"] == "text/event-stream"
        line = await response.content.readline()
    assert line.startswith(b"data: ")
    return orjson.loads(line[6:])


async def test_only_an_admin_token_logs_in_and_gets_a_strict_short_cookie(gateway: Gateway) -> None:
    client = await gateway(CONFIG)
    page = await client.get("/dashboard")
    assert page.status == 200 and 'name="token"' in await page.text()  # the login form, no figures
    assert "data-total" not in await page.text()
    assert page.headers["Content-Security-Policy"] == POLICY
    assert "script-src 'self'" in POLICY and "unsafe-inline" not in POLICY
    for refused, status, words in (
        (token("alice"), 403, "not an admin"),
        (token("ops", role="admin", key="another key of 32 bytes or more.."), 401, "refused"),
        (token("ops", role="admin", exp=int(time.time()) - 5), 401, "expired"),
        ("", 401, "Paste an admin token"),
    ):
        response = await login(client, refused)
        assert response.status == status and words in await response.text()
        assert COOKIE not in response.cookies  # no cookie, and no data
    assert (await client.get("/dashboard/events")).status == 401
    assert (await client.get("/dashboard/events", headers=bearer("alice"))).status == 403

    before = time.time()
    response = await login(client, token("ops", role="admin", exp=int(before) + 3600))
    assert response.status == 303 and response.headers["Location"] == "/dashboard"
    cookie = response.cookies[COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/dashboard"
    assert 890 <= int(cookie["max-age"]) <= 900  # dashboard.session_ttl_s
    claims = jwt.decode(cookie.value, options={"verify_signature": False})
    assert claims["aud"] == AUDIENCE and claims["sub"] == "ops" and claims["exp"] <= before + 901
    page = await client.get("/dashboard")  # the client keeps the cookie
    assert page.status == 200 and 'id="totals"' in await page.text()
    # It is the dashboard's, not a bearer token: /stats refuses it (signed by another key, for its audience).
    stats = await client.get("/stats", headers={"Authorization": f"Bearer {cookie.value}"})
    assert stats.status == 401
    # Signed with the token key itself (not the key derived from it): refused.
    forged = jwt.encode({"sub": "ops", "exp": int(before) + 600, "aud": AUDIENCE}, SECRET, "HS256")
    client.session.cookie_jar.clear()
    page = await client.get("/dashboard", headers={"Cookie": f"{COOKIE}={forged}"})
    assert 'name="token"' in await page.text()
    assert (await client.get("/dashboard/events", headers={"Cookie": f"{COOKIE}={forged}"})).status == 401


async def test_a_login_ends_with_its_token_and_a_form_from_elsewhere_is_refused(gateway: Gateway) -> None:
    client = await gateway(CONFIG)
    response = await login(client, token("ops", role="admin"), Origin="http://evil.example")
    assert response.status == 403 and COOKIE not in response.cookies
    response = await login(client, "x" * 20_000)  # a form is read up to 16 KiB, no further
    assert (response.status, (await response.json())["error"]) == (413, "payload_too_large")
    response = await login(client, token("ops", role="admin", exp=int(time.time()) + 2))
    assert int(response.cookies[COOKIE]["max-age"]) <= 2  # never past the token's exp
    async with client.get("/dashboard/events") as stream:
        assert stream.status == 200
        body = await asyncio.wait_for(stream.read(), 10)  # the stream ends at the login's end
    assert body.rstrip().endswith(b"event: expired\ndata: {}")
    await asyncio.sleep(max(0.0, orjson.loads(body.split(b"\n")[0][6:])["at"] + 3 - time.time()))
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/dashboard"))
    jar_value = cookie[COOKIE].value if COOKIE in cookie else None
    headers = {"Cookie": f"{COOKIE}={jar_value or response.cookies[COOKIE].value}"}
    assert (await client.get("/dashboard/events", headers=headers)).status == 401  # expired, even if sent
    assert 'name="token"' in await (await client.get("/dashboard", headers=headers)).text()


async def test_the_stream_carries_the_figures_and_flagged_decisions_with_their_evidence(
    gateway: Gateway,
) -> None:
    client = await gateway(CONFIG)
    admin = bearer("ops", role="admin")
    for _ in range(3):
        assert (await client.get("/echo?q=hello", headers=bearer("alice", trust="trusted"))).status == 200
    attack = await client.get("/echo", params={"q": "<script>alert(1)</script>"}, headers=bearer("mallory"))
    assert attack.status == 200
    figures = await first_event(client, **admin)  # an admin's bearer header also reads the stream
    assert figures["health"] == {"status": "ok", "problems": []}
    assert figures["stats"]["requests"]["total"] == 4
    assert sum(figures["scores"]) == 4
    flagged = figures["flagged"][0]
    assert (flagged["entity"], flagged["route"], flagged["method"]) == ("mallory", "/echo", "GET")
    assert "<script" in flagged["evidence"]["suspicious"]  # what matched, as text
    top = {entity["entityId"]: entity for entity in figures["top"]}
    assert top["alice"]["totalRequests"] == 3
    assert top["alice"]["factors"] == {"new_entity": 3}  # a new caller is at medium band: flagged
    assert "suspicious" in top["mallory"]["factors"]
    watch = client.app[GATEWAY].watch
    watch.sample({"total": 0, "mode:thread": 0}, now=100.0)
    watch.sample({"total": 10, "mode:thread": 10, "status:2xx": 10}, now=105.0)
    assert watch.samples[-1]["rates"] == {"mode:thread": 2.0, "status:2xx": 2.0}
    assert watch.samples[-1]["latency_ms"] == {}  # the requests' were taken by the first sample


async def test_open_streams_are_bounded_and_end_when_the_gateway_stops(gateway: Gateway) -> None:
    client = await gateway({"dashboard": {"refresh_s": 0.5, "max_viewers": 2}})
    admin = bearer("ops", role="admin")
    streams = [await client.get("/dashboard/events", headers=admin) for _ in range(2)]
    assert [s.status for s in streams] == [200, 200]
    refused = await client.get("/dashboard/events", headers=admin)
    assert refused.status == 429 and (await refused.json())["error"] == "too_many_viewers"
    assert refused.headers["Retry-After"] == "5"
    streams[0].close()
    for _ in range(50):  # the server notices at its next write
        if len(client.app[GATEWAY].viewers) < 2:
            break
        await asyncio.sleep(0.1)
    async with client.get("/dashboard/events", headers=admin) as again:
        assert again.status == 200
    started = time.monotonic()
    await client.close()  # shutdown ends the open stream rather than waiting for it
    assert time.monotonic() - started < 5 and not client.app[GATEWAY].viewers


async def test_with_the_dashboard_off_its_paths_are_the_routes(gateway: Gateway) -> None:
    client = await gateway({"dashboard": {"enabled": False}})
    for path in ("/dashboard", "/dashboard/events", "/dashboard/dashboard.js"):
        response = await client.get(path, headers=bearer("ops", role="admin"))
        assert (response.status, (await response.json())["error"]) == (404, "not_found")
    response = await login(client, token("ops", role="admin"))
    assert response.status == 404 and COOKIE not in response.cookies
