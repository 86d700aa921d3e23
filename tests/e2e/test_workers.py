"""Worker processes, for real: `server.workers: 2` runs two gateways on one port under a supervisor that
restarts a worker killed from outside, passes SIGHUP to both, and drains both on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import orjson
import psutil
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from ports import free_port

from conftest import SECRET, bearer
from proxy.dashboard import COOKIE

ROOT = Path(__file__).resolve().parents[2]
ADMIN = bearer("ops", role="admin")


def config(folder: Path, **server: Any) -> Path:
    data = yaml.safe_load((ROOT / "config.yaml").read_text())
    data |= {"execution_mode": "thread"}
    data["docker"] |= {"enabled": False, "requirements": ""}
    data["server"] |= {"workers": 2, "watch_config": False, **server}
    data["limits"]["execution"] = {"max_time_ms": 20000}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def start(path: Path, port: int, secret: str | None = SECRET) -> subprocess.Popen[bytes]:
    env = {
        k: v for k, v in os.environ.items() if k not in {"EXECUTION_MODE", "SECRET_KEY", "SECRET_KEY_FILE"}
    }
    command = [sys.executable, "-m", "proxy", "--config", str(path), "--port", str(port)]
    if secret is not None:
        env["SECRET_KEY"] = secret
    return subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)


async def stats(url: str) -> dict[str, Any]:
    """/stats from whichever worker the kernel picks (a new connection each time)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        for _ in range(100):  # bounded: up within 10 s
            try:
                async with session.get(f"{url}/stats", headers=ADMIN) as response:
                    return dict(await response.json())
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
    raise AssertionError("no worker answered")


async def workers_seen(url: str) -> dict[int, int]:
    """Worker index -> pid, from /stats over fresh connections until both answered (bounded)."""
    seen: dict[int, int] = {}
    for _ in range(300):  # bounded: ~15 s, workers start one after the other on a busy machine
        worker = (await stats(url))["worker"]
        seen[worker["index"]] = worker["pid"]
        if len(seen) == 2:
            break
        await asyncio.sleep(0.05)
    return seen


def children(supervisor: subprocess.Popen[bytes]) -> list[int]:
    return sorted(child.pid for child in psutil.Process(supervisor.pid).children())


async def test_two_workers_serve_one_port_and_a_killed_one_is_replaced(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    supervisor = start(config(tmp_path), port)
    try:
        seen = await workers_seen(url)
        assert set(seen) == {0, 1} and sorted(seen.values()) == children(supervisor)
        for pid in seen.values():  # the keys reached them on stdin, not in their environment
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            assert SECRET.encode() not in environ and b"SECRET_KEY=" not in environ
        assert (await stats(url))["worker"]["of"] == 2
        os.kill(seen[0], signal.SIGKILL)  # from outside, no goodbye
        for _ in range(100):  # bounded: restarted within 10 s
            pids = children(supervisor)
            if len(pids) == 2 and seen[0] not in pids:
                break
            await asyncio.sleep(0.1)
        again = await workers_seen(url)
        assert set(again) == {0, 1} and again[0] != seen[0] and again[1] == seen[1]
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
            for _ in range(20):  # every new connection is served, whichever worker takes it
                async with session.get(f"{url}/echo") as response:
                    assert response.status == 200
            for _ in range(4):  # /metrics from any worker counts every worker's requests
                async with session.get(f"{url}/metrics", headers=ADMIN) as response:
                    text = await response.text()
                served = sum(
                    float(line.rsplit(" ", 1)[1])
                    for line in text.splitlines()
                    if line.startswith("isogate_requests_total{") and 'route="/echo"' in line
                )
                assert served == 20, text
    finally:
        supervisor.terminate()
        supervisor.wait(timeout=30)
    assert not psutil.pid_exists(seen[1]) or psutil.Process(seen[1]).status() == psutil.STATUS_ZOMBIE


async def test_sighup_reaches_every_worker_and_sigterm_drains_them(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    path = config(tmp_path)
    supervisor = start(path, port)
    try:
        seen = await workers_seen(url)
        data = yaml.safe_load(path.read_text())
        data["routes"].append({"path": "/after-hup", "handler": "echo"})
        path.write_text(yaml.safe_dump(data))
        supervisor.send_signal(signal.SIGHUP)
        generations: dict[int, int] = {}
        for _ in range(200):  # bounded: both workers reloaded
            answer = await stats(url)
            generations[answer["worker"]["index"]] = answer["config"]["generation"]
            if generations == {0: 2, 1: 2}:
                break
            await asyncio.sleep(0.05)
        assert generations == {0: 2, 1: 2}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
            trusted = bearer("batch", trust="trusted")
            slow = [
                asyncio.create_task(session.get(f"{url}/compute?n=800000", headers=trusted)) for _ in range(4)
            ]
            await asyncio.sleep(0.3)  # in flight in the workers
            supervisor.send_signal(signal.SIGTERM)
            answers = await asyncio.gather(*slow)
            assert [answer.status for answer in answers] == [200] * 4  # drained, not cut
        assert supervisor.wait(timeout=60) == 0
        assert not any(psutil.pid_exists(pid) for pid in seen.values())
    finally:
        if supervisor.poll() is None:
            supervisor.kill()


async def test_a_dashboard_login_holds_at_every_worker_under_public_key_auth(tmp_path: Path) -> None:
    """With public-key auth the gateway holds no secret to sign its dashboard cookie with: the supervisor
    hands its workers one key, so a login made at one worker opens the page at the other."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path = config(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["auth"] = {"algorithms": ["RS256"], "public_key": public.decode()}
    path.write_text(yaml.safe_dump(data))
    admin = jwt.encode({"sub": "ops", "role": "admin", "exp": int(time.time()) + 600}, key, "RS256")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    supervisor = start(path, port, secret=None)  # no HMAC secret anywhere
    try:
        jar = aiohttp.CookieJar(unsafe=True)  # cookies from an IP address's host too
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True), cookie_jar=jar
        ) as session:
            for _ in range(100):  # bounded: up within 10 s
                try:
                    login = await session.post(f"{url}/dashboard/login", data={"token": admin})
                    break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            assert login.status == 200 and 'id="totals"' in await login.text()  # redirected to the page
            cookie = {COOKIE: session.cookie_jar.filter_cookies(login.url)[COOKIE].value}
        served: set[int] = set()
        for _ in range(300):  # bounded: fresh connections until both workers answered with figures
            async with (
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session,
                session.get(f"{url}/dashboard/events", cookies=cookie) as response,
            ):
                assert response.status == 200
                figures = orjson.loads((await response.content.readline())[6:])
            served.add(figures["stats"]["worker"]["index"])
            if served == {0, 1}:
                break
        assert served == {0, 1}
    finally:
        supervisor.terminate()
        supervisor.wait(timeout=30)
