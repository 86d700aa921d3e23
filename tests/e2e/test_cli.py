"""The real gateway process: `python -m proxy --config config.yaml` with the repo's config and handlers."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from ports import free_port

from conftest import SECRET, token

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def env(**extra: str) -> dict[str, str]:
    """The test's environment: its own key, and entity history in this process's memory only (the shipped
    config keeps it in a file beside config.yaml, which would carry callers from one run to the next)."""
    clean = {k: v for k, v in os.environ.items() if k not in {"EXECUTION_MODE", "SECRET_KEY"}}
    return {**clean, "SECRET_KEY": SECRET, "STATE_BACKEND": "memory", **extra}


@pytest.fixture
def gateway_process(runtime: str) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "proxy", "--config", "config.yaml", "--port", str(port)],
        cwd=ROOT,
        env=env(DOCKER_RUNTIME=runtime),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield port, process
    process.terminate()
    process.wait(timeout=10)


async def wait_ready(port: int) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
    raise AssertionError("gateway did not become ready in 10 s")


def mint(*args: str) -> str:
    command = [sys.executable, "-m", "proxy.mint", "--config", "config.yaml", *args]
    return subprocess.run(
        command, cwd=ROOT, env=env(), capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.mark.docker
async def test_the_tour_works_against_the_real_process(
    gateway_process: tuple[int, subprocess.Popen[str]],
) -> None:
    port, process = gateway_process
    await wait_ready(port)
    admin = mint("--sub", "ops", "--role", "admin")
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/echo?x=1") as response:  # anonymous: no debug headers
            assert response.status == 200 and "X-Isogate-Mode" not in response.headers
        as_admin = {"Authorization": f"Bearer {admin}"}
        async with session.get(f"{base}/echo?x=1", headers=as_admin) as response:  # new: a container
            assert (await response.json())["query"] == {"x": "1"}
            assert response.headers["X-Isogate-Mode"] == "docker"
        async with session.get(f"{base}/compute?n=1000") as response:
            assert (await response.json())["primes"] == 168
        async with session.get(f"{base}/whoami") as response:
            assert (await response.json())["uid"] == 65534
        async with session.get(f"{base}/stats", headers={"Authorization": f"Bearer {admin}"}) as response:
            stats = await response.json()
            assert stats["requests"]["total"] == 4 and stats["execution_mode"] == "hybrid"
    process.terminate()
    output = process.communicate(timeout=10)[0]
    assert "container pool 'isogate' ready: 3 warm" in output
    assert '"route":"/echo"' in output and admin not in output and SECRET not in output


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("", "auth.secret_key: is empty: set SECRET_KEY"),
        ("your-secret-key-here", "auth.secret_key: is the documented placeholder"),
    ],
)
def test_refuses_to_start_without_a_real_secret(secret: str, message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "--config", "config.yaml", "--port", str(free_port())],
        cwd=ROOT,
        env={**env(), "SECRET_KEY": secret},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert f"isogate: refusing to start: {message}" in result.stderr


def test_a_broken_config_file_is_refused_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("server:\n  port: 8080\n  host: [unclosed\n")
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "--config", str(bad)],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0 and f"{bad}: line" in result.stderr


def test_a_metrics_port_already_taken_is_refused_with_a_clear_reason(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = yaml.safe_load((ROOT / "config.yaml").read_text())
        config["docker"] |= {"enabled": False, "requirements": ""}
        config["metrics"] = {"listen": f"127.0.0.1:{taken.getsockname()[1]}"}
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        command = [sys.executable, "-m", "proxy", "--config", str(path), "--port", str(free_port())]
        result = subprocess.run(command, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "refusing to start: metrics.listen: cannot listen on 127.0.0.1" in result.stderr
    assert "Traceback" not in result.stderr


async def test_sighup_reloads_the_config_file(tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["docker"]["enabled"] = False
    config["server"]["watch_config"] = False  # only the signal may reload
    path = tmp_path / "config.yaml"
    (tmp_path / "requirements.txt").write_text("")  # the file the shipped config names, beside it
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    command = [sys.executable, "-m", "proxy", "--config", str(path), "--port", str(port)]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        await wait_ready(port)
        url = f"http://127.0.0.1:{port}"
        config["routes"].append({"path": "/after-hup", "handler": "echo"})
        path.write_text(yaml.safe_dump(config))
        async with aiohttp.ClientSession() as session:
            await asyncio.sleep(0.5)
            async with session.get(f"{url}/after-hup") as response:
                assert response.status == 404
            process.send_signal(signal.SIGHUP)
            for _ in range(50):
                async with session.get(f"{url}/after-hup") as response:
                    if response.status == 200:
                        break
                await asyncio.sleep(0.1)
            assert response.status == 200
            admin = {"Authorization": f"Bearer {mint('--sub', 'ops', '--role', 'admin')}"}
            async with session.get(f"{url}/stats", headers=admin) as response:
                stats = await response.json()
            assert stats["config"]["reloads"][-1]["trigger"] == "SIGHUP"
            # The served process set its collector (proxy/heap.py): what lives as long as it, frozen.
            collector = stats["memory"]["gc"]
            assert collector["frozen_objects"] > 10_000 and collector["young_threshold"] == 10_000
    finally:
        process.terminate()
        process.wait(timeout=10)


def keyed_by_file(tmp_path: Path) -> dict[str, str]:
    """A thread-mode gateway's environment whose key is in an owner-only file, not in the environment."""
    key_file = tmp_path / "secret"
    key_file.write_text(SECRET + "\n")
    key_file.chmod(0o600)
    clean = env(EXECUTION_MODE="thread", DOCKER_ENABLED="false")
    return {**{k: v for k, v in clean.items() if k != "SECRET_KEY"}, "SECRET_KEY_FILE": str(key_file)}


async def test_the_key_can_come_from_a_file_and_never_sits_in_the_environment(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "proxy", "--config", "config.yaml", "--port", str(port)],
        cwd=ROOT,
        env=keyed_by_file(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await wait_ready(port)
        headers = {"Authorization": f"Bearer {token('file-user')}"}
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/api/stats", headers=headers) as response:
                assert response.status == 200
        assert SECRET.encode() not in Path(f"/proc/{process.pid}/environ").read_bytes()
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "secret"
    key_file.write_text(SECRET)
    key_file.chmod(0o644)
    clean = {k: v for k, v in env().items() if k != "SECRET_KEY"}
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "--config", "config.yaml", "--port", str(free_port())],
        cwd=ROOT,
        env={**clean, "SECRET_KEY_FILE": str(key_file)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0 and "readable by others (mode 644): chmod 600" in result.stderr


async def test_a_client_that_leaves_frees_its_place_in_the_queue(tmp_path: Path) -> None:
    """The real server cancels the handler of a client that disconnected: its job leaves the thread pool's
    queue at once (it would otherwise hold a place and run for nobody)."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config |= {
        "execution_mode": "thread",
        "limits": {**config["limits"], "execution": {"max_time_ms": 30000}},
    }
    config["docker"] |= {"enabled": False, "requirements": ""}
    config["thread_pool"] = {"min_workers": 1, "max_workers": 1, "max_per_entity": 8, "max_queue": 8}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    command = [sys.executable, "-m", "proxy", "--config", str(path), "--port", str(port)]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    admin = {"Authorization": f"Bearer {mint('--sub', 'ops', '--role', 'admin')}"}
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(port)
        async with aiohttp.ClientSession() as session:

            async def pool() -> dict[str, Any]:
                async with session.get(f"{url}/stats", headers=admin) as response:
                    return dict((await response.json())["thread_pool"])

            slow = asyncio.create_task(session.get(f"{url}/compute?n=2000000"))  # holds the one worker
            for _ in range(50):
                if (await pool())["busy"] == 1:
                    break
                await asyncio.sleep(0.05)
            gone = aiohttp.ClientTimeout(total=0.3)
            for _ in range(3):  # queued behind it, then the clients leave
                with pytest.raises(TimeoutError):
                    await session.get(f"{url}/compute?n=10", timeout=gone)
            for _ in range(50):
                if (await pool())["busy"] == 1:
                    break
                await asyncio.sleep(0.05)
            assert (await pool())["busy"] == 1 and not slow.done()  # only the running job is left
            response = await slow
            assert response.status == 200
            response.release()
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_started_as_root_it_becomes_server_user_and_handlers_never_run_as_root(tmp_path: Path) -> None:
    """As make run starts it (as root, SERVER_USER set): the key file root alone reads is read first, and
    a thread-mode handler then reports nobody's uid; a reload still has the key."""
    assert os.geteuid() == 0, "this test starts the gateway as root, as make run does"
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "proxy", "--config", "config.yaml", "--port", str(port)],
        cwd=ROOT,
        env={**keyed_by_file(tmp_path), "SERVER_USER": "nobody"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        await wait_ready(port)
        admin = {"Authorization": f"Bearer {token('ops', role='admin')}"}
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/whoami") as response:
                assert (await response.json())["uid"] == 65534
            async with session.post(f"http://127.0.0.1:{port}/admin/reload", headers=admin) as response:
                assert response.status == 200, await response.text()
        status = Path(f"/proc/{process.pid}/status").read_text()
        assert "\nUid:\t65534\t65534\t65534\t65534\n" in status
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    assert "running as nobody (uid 65534), not root" in output


def test_a_server_user_that_does_not_exist_is_refused() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "--config", "config.yaml", "--port", str(free_port())],
        cwd=ROOT,
        env=env(EXECUTION_MODE="thread", DOCKER_ENABLED="false", SERVER_USER="isogate-no-such-user"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "refusing to start: server.user: isogate-no-such-user: no such user" in result.stderr
