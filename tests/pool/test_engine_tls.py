"""A container pool on an engine reached over TCP with mutual TLS: a second dockerd on this machine
(tests/engines.py), as a remote engine is reached. A CA that did not sign the engine's certificate is
refused, the image and the handler code reach it through the engine API, and the deployment guide's TLS
material works. (Its containers' lock-down and byte-identical answers: tests/pool/test_several_engines.py.)"""

import asyncio
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from engines import SecondEngine
from ports import free_port

import dockerenv
from conftest import open_pool, pool_settings
from handlers import Request
from pool.base import DockerUnavailable, Job
from pool.connection import CODE_VOLUME, engine_client
from pool.containers import ContainerPool
from pool.workload import Workload

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("tls_leftovers")]
ROOT = Path(__file__).resolve().parents[2]


def echo() -> Job:
    body = bytes(range(256)) * 40  # every byte value, past one frame
    return Job("echo", Request("POST", "/p", (("q", "ü"),), (("x-h", "v"),), body, "e"), 5.0)


@pytest.mark.once  # TLS verification: the same whatever the runtime
async def test_a_ca_that_did_not_sign_the_engine_is_refused(
    engine: SecondEngine, docker_settings: dict[str, Any]
) -> None:
    pool = await open_pool(docker_settings, host=engine.host, cert_path=str(engine.wrong_ca))
    try:
        assert not pool.available and "CERTIFICATE_VERIFY_FAILED" in str(pool.reason)
        with pytest.raises(DockerUnavailable):
            await pool.run(echo())
        assert engine.labelled(docker_settings["pool_name"]) == []
    finally:
        await pool.aclose()


@pytest.mark.once  # the image's transfer: the same whatever the runtime
async def test_an_engine_without_the_image_gets_it_through_the_engine_api(
    docker_ready: None, docker_settings: dict[str, Any]
) -> None:
    """No registry: the pool sends the image from this machine's engine (save, then load over TLS)."""
    fresh = SecondEngine(free_port())
    try:
        fresh.start()
        assert fresh.docker("images", "-q", dockerenv.PROBE_IMAGE).stdout == ""
        pool = await open_pool(docker_settings, host=fresh.host, cert_path=str(fresh.client_tls))
        try:
            assert pool.available, pool.status()
            assert fresh.docker("images", "-q", dockerenv.PROBE_IMAGE).stdout.strip()
            assert (await pool.run(echo())).status == 200
        finally:
            await pool.aclose()
        missing = await open_pool(
            docker_settings, host=fresh.host, cert_path=str(fresh.client_tls), image="isogate-runner:absent"
        )
        try:  # on neither engine: said, not sent
            assert not missing.available and "isogate-runner:absent is neither on" in str(missing.reason)
        finally:
            await missing.aclose()
    finally:
        await asyncio.to_thread(fresh.stop)  # the loop goes on meanwhile (closing connections)


async def test_handler_code_reaches_a_remote_engine_by_volume_and_a_reload_reaches_it_too(
    engine: SecondEngine, docker_settings: dict[str, Any], tmp_path: Path
) -> None:
    """A remote engine cannot see this machine's handler folder: the pool sends a copy as a read-only
    volume named by its digest, and new code as a new volume, which the rolled containers mount."""
    package = tmp_path / "probe_handlers"
    shutil.copytree(ROOT / "tests" / "probe_handlers", package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "version.py").write_text(VERSION.format("one"))
    chosen = pool_settings(docker_settings, host=engine.host, cert_path=str(engine.client_tls))
    first = Workload("probe_handlers", handlers_dir=str(package), code="1")
    pool = ContainerPool(chosen.docker, first)
    await pool.start()
    try:
        assert pool.available, pool.status()
        assert (await pool.run(job("version"))).body == b"one"
        [container] = engine.labelled(docker_settings["pool_name"])
        host = json.loads(engine.docker("inspect", container).stdout)[0]["HostConfig"]
        [mount] = host["Mounts"]
        assert not host.get("Binds") and mount["Type"] == "volume" and mount["ReadOnly"] is True
        assert mount["Target"] == "/app/probe_handlers" and mount["Source"].startswith(CODE_VOLUME)
        (package / "version.py").write_text(VERSION.format("two"))
        pool.update(chosen.docker, Workload("probe_handlers", handlers_dir=str(package), code="2"))
        deadline = time.monotonic() + 30
        while (await pool.run(job("version"))).body != b"two":
            assert time.monotonic() < deadline, "the new code did not reach the engine"
            await asyncio.sleep(0.2)
        volumes = engine.docker("volume", "ls", "-q").stdout.split()
        assert len([v for v in volumes if v.startswith(CODE_VOLUME)]) == 2
    finally:
        await pool.aclose()
    assert not [v for v in engine.docker("volume", "ls", "-q").stdout.split() if v.startswith(CODE_VOLUME)]


@pytest.mark.once  # the helper is never started: the runtime plays no part
async def test_a_code_volume_being_filled_is_not_taken_for_a_leftover(
    engine: SecondEngine, docker_settings: dict[str, Any]
) -> None:
    """A code volume is filled through a helper container labelled as the pool's (so that the sweep after a
    crash removes it). The supervisor's reconcile, which removes the pool's containers it does not hold,
    leaves it alone while in use. (Removed under a fill, the upload failed with 404: measured with a 300 MB
    code folder and a reload, new code never reached the engine, retried every 3 s for minutes.)"""
    pool = await open_pool(docker_settings, host=engine.host, cert_path=str(engine.client_tls))
    volume = f"{CODE_VOLUME}test-{docker_settings['pool_name']}"
    try:
        [remote] = pool._engines
        async with remote.helper(volume, docker_settings["image"]) as helper:
            await pool._reconcile(remote)
            await asyncio.gather(*pool._tasks)  # the removals it started
            assert engine.docker("inspect", helper.id, check=False).returncode == 0, "the helper was removed"
            assert pool.status()["idle"] == 1  # the pool's own container kept too
        assert engine.docker("inspect", helper.id, check=False).returncode != 0  # removed once used
        assert remote.helpers == set()
    finally:
        await pool.aclose()
        engine.docker("volume", "rm", volume, check=False)


VERSION = """from handlers import Request, Response


def handle(request: Request) -> Response:
    return Response(200, (), b"{}")
"""


def job(handler: str) -> Job:
    return Job(handler, Request("GET", "/p", (), (), b"", "e"), 5.0)


def guide_tls_block() -> str:
    """docs/deployment.md's block that makes the TLS material, with this machine's engine address."""
    text = (ROOT / "docs" / "deployment.md").read_text()
    block = text.split("<!-- tls-material -->\n```sh\n", 1)[1].split("```", 1)[0]
    assert 'ENGINES="10.0.0.7 10.0.0.8"' in block
    return block.replace('ENGINES="10.0.0.7 10.0.0.8"', 'ENGINES="127.0.0.1"')


@pytest.mark.once  # no container
async def test_the_deployment_guide_s_tls_material_opens_an_engine_to_the_gateway(
    docker_ready: None, tmp_path: Path
) -> None:
    """The guide's openssl commands, run as written: the engine and the gateway trust each other with them
    (and the gateway's key is its owner's only, which tls_context demands). A pool over TLS is tested
    above: here the engine answers the gateway's client."""
    made = subprocess.run(
        ["bash", "-e", "-c", guide_tls_block()], cwd=tmp_path, capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "gateway" / "key.pem").stat().st_mode & 0o777 == 0o600
    engine = SecondEngine(free_port(), tls=(tmp_path / "engines" / "127.0.0.1", tmp_path / "gateway"))
    try:
        await asyncio.to_thread(engine.start)
        client = engine_client(engine.host, str(tmp_path / "gateway"))
        try:
            assert (await client.version())["ApiVersion"]
        finally:
            await client.close()
    finally:
        await asyncio.to_thread(engine.stop)
