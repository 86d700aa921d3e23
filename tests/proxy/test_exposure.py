"""What a caller can learn or forge about the gateway: debug headers, forwarded addresses, paths read two
ways, tokens named like addresses, log lines, the .env file, and who teaches the learned profile."""

import asyncio
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import Client, Gateway, bearer

ROOT = Path(__file__).resolve().parents[2]
ROUTES = [
    {"path": "/echo", "handler": "echo"},
    {"path": "/public/*", "handler": "echo"},
    {"path": "/boom", "handler": "boom"},
]


async def test_debug_headers_go_to_admin_tokens_only_when_so_configured(gateway: Gateway) -> None:
    client = await gateway({"routes": ROUTES, "server": {"debug_headers": "admins"}})
    for headers in ({}, bearer("alice"), bearer("bob", trust="trusted")):
        response = await client.get("/echo?q=<script>", headers=headers)
        assert not [name for name in response.headers if name.startswith("X-Isogate")], headers
    admin = await client.get("/echo?q=<script>", headers=bearer("ops", role="admin"))
    assert admin.headers["X-Isogate-Factors"] and admin.headers["X-Isogate-Mode"] == "thread"


async def test_every_x_forwarded_for_line_is_read(gateway: Gateway) -> None:
    """A client's forged first line must not hide the address the trusted proxy appended on its own line."""
    config = {
        "routes": ROUTES,
        "server": {"trusted_proxies": ["127.0.0.1"]},
        "ip_lists": {"deny": ["203.0.113.9"]},
    }
    client = await gateway(config)
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    writer.write(
        b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 192.0.2.1\r\n"
        b"X-Forwarded-For: 203.0.113.9\r\nConnection: close\r\n\r\n"
    )
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 403") and b"203.0.113.9 is in ip_lists.deny" in answer


async def raw_get(client: Client, target: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return answer


@pytest.mark.parametrize(
    "target",
    [
        "/public/%2e%2e/admin/x",
        "/public/%2E%2E/%2e%2e/etc",
        "/public/./x",
        "/public//x",
        "/public/a%2Fb",
        "/public/a%5cb",
        "/public/%252e%252e/admin/x",  # %2e%2e once decoded: `..` to a server that decodes again
        "/public/%252E./x",
        "/public/a%252fb",
    ],
)
async def test_a_path_read_two_ways_is_refused_before_routing(gateway: Gateway, target: str) -> None:
    client = await gateway({"routes": ROUTES})
    answer = await raw_get(client, target)
    assert answer.startswith(b"HTTP/1.1 400") and b'"invalid_path"' in answer


async def test_plain_paths_and_a_trailing_slash_still_route(gateway: Gateway) -> None:
    client = await gateway({"routes": ROUTES})
    for target in ("/public/a/b", "/public/a/", "/echo?next=../../x", "/public/100%25/x", "/public/%25.x"):
        assert (await raw_get(client, target)).startswith(b"HTTP/1.1 200"), target


async def test_a_token_subject_that_is_an_address_is_refused(gateway: Gateway) -> None:
    """Anonymous callers are named by their address: a token must not share (or poison) that history."""
    client = await gateway({"routes": ROUTES})
    response = await client.get("/echo", headers=bearer("127.0.0.1"))
    assert response.status == 401 and "must not be an IP address" in (await response.json())["detail"]


@pytest.mark.parametrize("sub", ["alice\r\nX-Forged: 1", "bob\n", "eve\x00", "mallory\x1b[2J", "x\u2028y"])
async def test_a_token_subject_with_control_characters_is_refused(gateway: Gateway, sub: str) -> None:
    """The subject names the caller in logs, stats and the store: a line break there forges lines."""
    client = await gateway({"routes": ROUTES})
    response = await client.get("/echo", headers=bearer(sub))
    assert response.status == 401
    assert "control characters" in (await response.json())["detail"]


async def test_a_handler_exception_cannot_forge_log_lines(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    client = await gateway({"routes": [{"path": "/boom", "handler": "boom"}]})
    with caplog.at_level(logging.INFO):
        response = await client.get("/boom?msg=x%0A2026-11-28 INFO isogate forged line")
    assert response.status == 500
    for record in caplog.records:
        assert "\n" not in record.getMessage(), record.getMessage()


def test_make_writes_the_key_and_env_readable_by_their_owner_only(tmp_path: Path) -> None:
    for name in ("Makefile", ".env.example"):
        shutil.copy(ROOT / name, tmp_path / name)
    subprocess.run(["make", "-s", ".env", ".secret_key"], cwd=tmp_path, check=True, capture_output=True)
    assert (tmp_path / ".env").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / ".secret_key").stat().st_mode & 0o777 == 0o600
    assert re.fullmatch(r"[0-9a-f]{64}\n", (tmp_path / ".secret_key").read_text())
    active = [line for line in (tmp_path / ".env").read_text().splitlines() if not line.startswith("#")]
    assert not any(line.startswith("SECRET_KEY=") for line in active)  # the key is in .secret_key only


async def test_anonymous_callers_never_teach_the_profile(tmp_path: Path, live: object) -> None:
    from conftest import LiveConfig  # noqa: F401  (the fixture's type)

    start = live  # type: ignore[assignment]
    profile = tmp_path / "learned.json"
    data = {
        "auth": {"secret_key": "test-secret-0123456789abcdef0123456789abcdef"},
        "docker": {"enabled": False},
        "handlers_package": "probe_handlers",
        "execution_mode": "thread",
        "risk": {"profile": {"file": str(profile), "learn_requests": 3}},
        "routes": [{"path": "/echo", "handler": "echo"}],
    }
    client, _ = await start(data)  # type: ignore[operator]
    for i in range(5):
        assert (await client.get(f"/echo?anon={i}")).status == 200
    await asyncio.sleep(0.3)
    assert not profile.exists()  # five anonymous requests taught it nothing
    for i in range(3):
        assert (await client.get(f"/echo?known={i}", headers=bearer("alice"))).status == 200
    for _ in range(50):
        if profile.exists():
            break
        await asyncio.sleep(0.05)
    learned = profile.read_text()
    assert "known" in learned and "anon" not in learned
    os.remove(profile)
