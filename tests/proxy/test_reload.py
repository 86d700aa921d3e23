"""Live policy against real files on disk and a real loopback server: no patched clocks, no mocked watcher."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import yaml

from conftest import BASE as SHARED
from conftest import Client, bearer

ADMIN = bearer("ops", role="admin")
BASE: dict[str, Any] = {
    **SHARED,
    "server": {"debug_headers": True, "trusted_proxies": ["127.0.0.1"]},
    "routes": [{"path": "/echo", "handler": "echo"}],
}


async def stats(client: Client) -> dict[str, Any]:
    response = await client.get("/stats", headers=ADMIN)
    body: dict[str, Any] = await response.json()
    return body


async def until(check: Callable[[], Awaitable[bool]], timeout_s: float = 3.0) -> float:
    """Wait for `check`; returns the seconds it took."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < timeout_s, "not reached in time"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def with_routes(*paths: str, **extra: Any) -> dict[str, Any]:
    routes = [{"path": "/echo", "handler": "echo"}] + [{"path": p, "handler": "echo"} for p in paths]
    return {**BASE, "routes": routes, **extra}


async def test_an_edit_on_disk_applies_within_a_second(live: Any) -> None:
    client, files = await live(BASE)
    assert (await client.get("/new")).status == 404
    files.write(with_routes("/new"))
    took = await until(lambda: status_is(client, "/new", 200))
    assert took < 1.0
    config = (await stats(client))["config"]
    assert config["generation"] == 2 and config["last_error"] is None
    assert len(config["source_sha256"]) == 64
    last = config["reloads"][-1]
    assert (last["trigger"], last["routes_added"], last["sections"]) == ("file changed", ["/new"], ["routes"])


async def status_is(client: Client, path: str, status: int, **kwargs: Any) -> bool:
    return (await client.get(path, **kwargs)).status == status


@pytest.mark.parametrize(
    ("broken", "error"),
    [
        ("routes: [unclosed\n", "config.yaml: line 2: expected ',' or ']'"),
        ({**BASE, "server": {"port": 80, "prot": 1}}, "server.prot: unknown key"),
        ({**BASE, "hybrid": {"risk_thresholds": {"low": 90}}}, "hybrid.risk_thresholds.low"),
        ({**BASE, "routes": [{"path": "/echo", "handler": "no_such_handler"}]}, "routes[0].handler"),
        ({**BASE, "ip_lists": {"deny": ["file:missing.txt"]}}, "file missing.txt: cannot read"),
    ],
)
async def test_a_bad_edit_changes_nothing_and_is_reported_once_until_fixed(
    live: Any, broken: dict[str, Any] | str, error: str, caplog: pytest.LogCaptureFixture
) -> None:
    client, files = await live(BASE)
    with caplog.at_level(logging.ERROR, logger="isogate.reload"):
        files.write(broken)
        await until(lambda: last_error_contains(client, error))
        await asyncio.sleep(0.6)  # several polls later
    assert (await client.get("/echo")).status == 200  # the running config keeps serving
    assert (await stats(client))["config"]["generation"] == 1
    assert len([r for r in caplog.records if "config not applied" in r.getMessage()]) == 1
    files.write(with_routes("/fixed"))
    await until(lambda: status_is(client, "/fixed", 200))
    assert (await stats(client))["config"]["last_error"] is None


async def last_error_contains(client: Client, text: str) -> bool:
    error = (await stats(client))["config"]["last_error"]
    return error is not None and text in error


async def test_errors_name_the_key_path_and_its_line(live: Any) -> None:
    client, files = await live(BASE)
    files.write(yaml.safe_dump({**BASE, "risk": {"weights": {"suspicious": 400}}}))
    await until(lambda: last_error_contains(client, "risk.weights.suspicious: must be within 0..100"))
    error = (await stats(client))["config"]["last_error"]
    line = next(
        i for i, text in enumerate(files.path.read_text().splitlines(), 1) if "suspicious: 400" in text
    )
    assert f"(config.yaml line {line})" in error


async def test_admin_reload_needs_an_admin_token_and_reports_the_outcome(live: Any) -> None:
    client, files = await live({**BASE, "server": {**BASE["server"], "watch_config": False}})
    assert (await client.post("/admin/reload")).status == 401
    assert (await client.post("/admin/reload", headers=bearer("plain"))).status == 403
    unchanged = await client.post("/admin/reload", headers=ADMIN)
    assert (await unchanged.json())["status"] == "unchanged"
    files.write(with_routes("/api-added"))
    await asyncio.sleep(0.6)
    assert (await client.get("/api-added")).status == 404  # not watching: nothing happens by itself
    applied = await client.post("/admin/reload", headers=ADMIN)
    body = await applied.json()
    assert (applied.status, body["status"], body["generation"]) == (200, "applied", 2)
    assert body["detail"]["routes_added"] == ["/api-added"] and body["detail"]["trigger"] == "admin"
    assert (await client.get("/api-added")).status == 200
    files.write("{")
    invalid = await client.post("/admin/reload", headers=ADMIN)
    assert invalid.status == 422 and (await invalid.json())["status"] == "invalid"


async def test_admin_reload_without_a_config_file_is_409(gateway: Any) -> None:
    client = await gateway()
    response = await client.post("/admin/reload", headers=ADMIN)
    assert (response.status, (await response.json())["error"]) == (409, "no_config_file")


async def test_ip_list_files_deny_and_reload_when_the_list_changes(live: Any) -> None:
    client, files = await live(BASE)
    files.write_file("deny.txt", "# published blocklist\n203.0.113.0/24\n\n198.51.100.7  # one host\n")
    files.write({**BASE, "ip_lists": {"deny": ["192.0.2.1", "file:deny.txt"]}})
    forwarded = {"X-Forwarded-For": "198.51.100.7"}
    await until(lambda: status_is(client, "/echo", 403, headers=forwarded))
    assert (await client.get("/echo", headers={"X-Forwarded-For": "203.0.113.99"})).status == 403
    assert (await client.get("/echo", headers={"X-Forwarded-For": "198.51.100.8"})).status == 200
    assert (await stats(client))["config"]["reloads"][-1]["ip_lists"]["deny"] == 3
    files.write_file("deny.txt", "203.0.113.0/24\n")  # only the list file changes
    await until(lambda: status_is(client, "/echo", 200, headers=forwarded))


async def test_a_bad_line_in_a_list_file_is_named_by_file_and_line(live: Any) -> None:
    client, files = await live(BASE)
    files.write_file("flagged.txt", "10.0.0.1\n10.0.0.0/8\nnot-an-ip\n")
    files.write({**BASE, "ip_lists": {"flagged": ["file:flagged.txt"]}})
    await until(lambda: last_error_contains(client, "ip_lists.flagged[0] (flagged.txt line 3)"))


async def test_trusted_addresses_do_not_trip_the_untrusted_trigger(live: Any) -> None:
    config = {
        **BASE,
        "execution_mode": "hybrid",
        "docker": {"enabled": True, "host": "unix:///tmp/isogate-no-engine-here.sock"},
        "hybrid": {"docker_for": {"new": False}},
        "ip_lists": {"trusted": ["198.51.100.0/24"]},
    }
    client, _ = await live(config)
    trusted = await client.get("/echo", headers={"X-Forwarded-For": "198.51.100.4"})
    assert (trusted.status, trusted.headers["X-Isogate-Mode"]) == (200, "thread")
    stranger = await client.get("/echo", headers={"X-Forwarded-For": "203.0.113.4"})
    assert (stranger.status, stranger.headers["X-Isogate-Mode"]) == (503, "docker")


async def test_restart_only_keys_keep_their_running_value(live: Any) -> None:
    client, files = await live(BASE)
    files.write({**BASE, "server": {**BASE["server"], "port": 9999}, "routes": with_routes("/x")["routes"]})
    await until(lambda: status_is(client, "/x", 200))
    last = (await stats(client))["config"]["reloads"][-1]
    assert last["restart_needed"] == ["server.port"]
    assert client.app is not None
    from proxy.gateway import GATEWAY

    assert client.app[GATEWAY].config.server.port == 8080


async def test_thread_pool_size_and_limits_apply_live(live: Any) -> None:
    client, files = await live(BASE)
    files.write(
        {**BASE, "thread_pool": {"min_workers": 1, "max_workers": 2}, "limits": {"memory_limit_mb": 77}}
    )
    await until(lambda: thread_pool_size_is(client, 2))
    body = await stats(client)
    assert body["memory"]["limit_mb"] == 77


async def thread_pool_size_is(client: Client, size: int) -> bool:
    return bool((await stats(client))["thread_pool"]["size"] == size)


INVALID_EDITS = [
    "routes: [unclosed\n",
    yaml.safe_dump({**BASE, "bogus_key": 1}),
    yaml.safe_dump({**BASE, "hybrid": {"risk_thresholds": {"low": 99, "medium": 10}}}),
]


def version(n: int) -> dict[str, Any]:
    """Valid version n: routes /v0../vn, one denied client address, thresholds moved."""
    routes = [{"path": "/echo", "handler": "echo"}] + [
        {"path": f"/v{i}", "handler": "echo"} for i in range(n + 1)
    ]
    return {
        **BASE,
        "execution_mode": "hybrid",
        "hybrid": {"risk_thresholds": {"low": 10 + n, "medium": 70, "high": 90}},
        "ip_lists": {"deny": [f"198.51.100.{n % 10}"]},
        "thread_pool": {"max_per_entity": 8},  # the 4 load workers are one anonymous caller
        "routes": routes,
    }


async def test_fifty_rewrites_under_load_never_fail_a_request(live: Any) -> None:
    client, files = await live(version(0))
    seen: dict[str, list[int]] = {}
    stop = asyncio.Event()

    async def load_loop(worker: int) -> None:
        for i in range(100_000):  # bounded; ends when the rewrites are done
            if stop.is_set():
                return
            ip = f"198.51.100.{(worker + i) % 10}"
            route = f"/v{i % 50}"
            for path in (route, "/echo"):
                response = await client.get(path, headers={"X-Forwarded-For": ip})
                await response.read()
                seen.setdefault(path, []).append(response.status)

    from proxy.gateway import GATEWAY

    assert client.app is not None
    live = client.app[GATEWAY].live
    workers = [asyncio.create_task(load_loop(w)) for w in range(4)]
    last_valid = 0
    for n in range(50):
        if n % 2 == 0:
            files.write(version(n))
            last_valid = n
        else:
            files.write(INVALID_EDITS[n % len(INVALID_EDITS)])
        # Each edit is seen before the next (a loaded machine may take longer than a poll to reload, and the
        # watcher rightly reads only the latest file).
        for _ in range(100):  # bounded: 10 s
            await asyncio.sleep(0.1)
            refused = live.last_error is not None
            if refused if n % 2 else not refused and live.config.hybrid.risk_thresholds.low == 10 + n:
                break
    for _ in range(100):  # the last valid version applies (a loaded machine may take longer than a poll)
        if client.app[GATEWAY].config.hybrid.risk_thresholds.low == 10 + last_valid:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)
    stop.set()
    await asyncio.gather(*workers)

    statuses = {status for codes in seen.values() for status in codes}
    assert statuses <= {200, 403, 404}, statuses  # old or new behaviour, never a reload-made error
    for path, codes in seen.items():
        if path.startswith("/v") and 200 in codes:
            first_ok = codes.index(200)
            assert 404 not in codes[first_ok:], f"{path} vanished after it appeared"
    assert sum(len(codes) for codes in seen.values()) > 200
    final = (await stats(client))["config"]
    assert final["last_error"] is not None  # the last write was invalid
    assert (await client.get(f"/v{last_valid}")).status == 200
    denied = f"198.51.100.{last_valid % 10}"
    assert (await client.get("/echo", headers={"X-Forwarded-For": denied})).status == 403
    assert client.app[GATEWAY].config.hybrid.risk_thresholds.low == 10 + last_valid
