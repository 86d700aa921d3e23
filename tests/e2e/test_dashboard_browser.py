"""The dashboard in a real browser: Debian's chromium, headless, driven by Playwright, against a real gateway
on 127.0.0.1. It logs in, sees the figures move while a client sends traffic, sees a flagged decision appear
with its evidence shown as text (the page runs none of it), and fails on any console error or uncaught
exception. A login ends with its token, and a non-admin token gets no cookie. A pool over two real engines
has a row per engine, and one left out is named. With ISOGATE_SCREENSHOT set (docs/images/dashboard.png),
the page's screenshot is written there (`make screenshot`)."""

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from engines import SecondEngine
from playwright.async_api import Browser, Page, async_playwright

from conftest import Gateway, bearer, token
from proxy.dashboard import COOKIE

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CONFIG: dict[str, Any] = {
    "dashboard": {"refresh_s": 0.5},
    "rate_limits": [{"name": "per-caller", "rate": "100/second"}],
}


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert os.path.exists(CHROMIUM), "chromium is missing: `make test` installs Debian's"
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        await chromium.close()


def watched(page: Page) -> list[str]:
    """What the page reported as errors: console errors, uncaught exceptions, and any dialog it opened."""
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    page.on("dialog", lambda dialog: errors.append(f"a dialog opened: {dialog.message}"))
    return errors


async def log_in(page: Page, url: str, bearer_token: str) -> None:
    await page.goto(url)
    await page.fill("#token", bearer_token)
    await page.click("button[type=submit]")


async def total(page: Page) -> int:
    return int(await page.text_content('td[data-total="requests"]') or "0")


async def until(check: Any, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "the page did not show it in time"
        await asyncio.sleep(0.1)


async def test_an_admin_sees_live_figures_and_flagged_evidence(gateway: Gateway, browser: Browser) -> None:
    client = await gateway(CONFIG)
    url = str(client.make_url("/dashboard"))
    page = await browser.new_page(viewport={"width": 1280, "height": 1500})
    errors = watched(page)
    await log_in(page, url, token("ops", role="admin"))
    await page.wait_for_selector('td[data-total="requests"]')
    assert await page.text_content("#health") == "ok"
    seen = await total(page)

    async def traffic() -> None:
        for _ in range(30):
            response = await client.get("/echo?q=hello", headers=bearer("alice", trust="trusted"))
            assert response.status == 200
            await asyncio.sleep(0.02)

    await traffic()
    await until(lambda: _more(page, seen + 30))
    # An attack whose evidence is markup: the page shows it as text and runs none of it.
    payload = "<img src=x onerror=window.pwned=1>"
    response = await client.get("/echo", params={"q": payload}, headers=bearer("mallory"))
    assert response.status == 200

    async def flagged() -> bool:
        return "mallory" in (await page.text_content("#flagged tbody") or "")

    await until(flagged)
    row = page.locator("#flagged tbody tr", has_text="mallory").first
    shown = await row.text_content() or ""
    assert "xss: ARGS:q: '<img src=x onerror=" in shown  # the factor, where, and what matched
    assert await page.evaluate("window.pwned") is None
    assert await page.locator("#flagged img").count() == 0
    assert "mallory" in (await page.text_content("#top tbody") or "")
    cookies = {c["name"]: c for c in await page.context.cookies()}
    assert cookies[COOKIE]["httpOnly"] and cookies[COOKIE]["sameSite"] == "Strict"
    assert await page.evaluate("document.cookie") == ""  # HttpOnly: no script reads it
    target = os.environ.get("ISOGATE_SCREENSHOT")
    if target:  # a few minutes of mixed traffic first, for the charts
        await scenery(client, 150)
    shot = await page.screenshot(full_page=True)
    assert shot.startswith(b"\x89PNG") and len(shot) > 10_000
    if target:
        Path(target).write_bytes(shot)
    await page.click("text=Log out")
    await page.wait_for_selector("#token")  # back at the login form
    assert COOKIE not in {c["name"] for c in await page.context.cookies()}
    assert errors == []


async def scenery(client: Any, seconds: float) -> None:
    """Established callers, new ones, a few attacks and a caller past its rate limit, for `seconds`."""
    attacks = ["' OR 1=1 --", "../../etc/passwd", "<script>alert(1)</script>", "${7*7}", "; cat /etc/shadow"]
    started, round_ = time.monotonic(), 0
    while time.monotonic() - started < seconds:
        round_ += 1
        for i in range(40):
            await client.get(f"/echo?page={i}", headers=bearer(f"user{i % 5}", trust="trusted"))
        await client.get("/echo?q=hi", headers=bearer(f"newcomer{round_}"))
        if round_ % 4 == 0:
            await client.get("/echo", params={"q": attacks[round_ % len(attacks)]}, headers=bearer("mallory"))
        if round_ % 15 == 0:  # a burst past 100 a second
            await asyncio.gather(*(client.get("/echo", headers=bearer("flood")) for _ in range(130)))
        await asyncio.sleep(0.2)


async def _more(page: Page, at_least: int) -> bool:
    return await total(page) >= at_least


async def test_a_login_ends_with_its_token_and_a_non_admin_gets_nothing(
    gateway: Gateway, browser: Browser
) -> None:
    client = await gateway(CONFIG)
    url = str(client.make_url("/dashboard"))
    context = await browser.new_context()
    page = await context.new_page()
    await log_in(page, url, token("alice"))
    assert "not an admin" in (await page.text_content("#message") or "")
    assert await context.cookies() == []
    errors = watched(page)
    await log_in(page, url, token("ops", role="admin", exp=int(time.time()) + 3))
    await page.wait_for_selector('td[data-total="requests"]')
    # At the token's exp the stream says so, the page reloads, and the cookie no longer opens it.
    await page.wait_for_selector("#token", timeout=15_000)
    assert "/dashboard" in page.url and await context.cookies() == []
    assert await page.locator("#totals").count() == 0  # the login form, no figures
    assert errors == []


@pytest.mark.docker
@pytest.mark.once  # the page shows what /stats says; the runtime changes none of it
@pytest.mark.usefixtures("tls_leftovers")
async def test_a_pool_over_two_engines_has_a_row_per_engine_and_one_left_out_is_named(
    gateway: Gateway, browser: Browser, engine: SecondEngine, docker_settings: dict[str, Any]
) -> None:
    """Real engines: this machine's and the second dockerd over TLS (tests/engines.py). Both up, each
    engine's row shows its warm container; with a wrong CA for the second, its row says down, and the
    health badge is degraded, naming it."""
    local = {"host": "unix:///var/run/docker.sock"}
    for cert_path, down in ((engine.client_tls, False), (engine.wrong_ca, True)):
        remote = {"host": engine.host, "cert_path": str(cert_path)}
        docker = {**docker_settings, "warm_pool_size": 2, "engines": [local, remote]}
        client = await gateway({**CONFIG, "execution_mode": "docker", "docker": docker})
        page = await browser.new_page(viewport={"width": 1280, "height": 1500})
        errors = watched(page)
        await log_in(page, str(client.make_url("/dashboard")), token("ops", role="admin"))
        await page.wait_for_selector("#pools tbody tr")
        rows = [
            await row.locator("td").all_text_contents() for row in await page.locator("#pools tbody tr").all()
        ]
        remote_row = [f"\u2003on {engine.host} (down)", "0"] if down else [f"\u2003on {engine.host}", "1"]
        # the pool, then each engine: name, idle (its share of the two warm), busy, creating, faults
        assert [row[:2] for row in rows] == [
            ["handlers", "1" if down else "2"],
            [f"\u2003on {local['host']}", "1"],
            remote_row,
        ], rows
        assert await page.text_content("#health") == ("degraded" if down else "ok")
        problems = await page.text_content("#problems") or ""
        assert (f"docker engine {engine.host} is down" in problems) is down, problems
        assert errors == []
        await page.close()
        await client.close()
