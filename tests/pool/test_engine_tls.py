"""A container pool on an engine reached over TCP with mutual TLS: a second dockerd on this machine
(tests/engines.py), as a remote engine is reached. Its containers get the same lock-down, its answers are
byte for byte the local engine's, and a CA that did not sign the engine's certificate is refused."""

import json
from collections.abc import Iterator
from typing import Any

import pytest
from engines import SecondEngine
from storeenv import free_port

import dockerenv
from conftest import open_pool
from handlers import Request
from pool.base import DockerUnavailable, Job

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def engine(docker_ready: None) -> Iterator[SecondEngine]:
    second = SecondEngine(free_port())
    try:
        second.start()
        second.load(dockerenv.PROBE_IMAGE)
        yield second
    finally:
        second.stop()


def echo() -> Job:
    body = bytes(range(256)) * 40  # every byte value, past one frame
    return Job("echo", Request("POST", "/p", (("q", "ü"),), (("x-h", "v"),), body, "e"), 5.0)


async def test_a_pool_on_a_tls_engine_serves_what_the_local_one_does(
    engine: SecondEngine, docker_settings: dict[str, Any], runtime: str
) -> None:
    name = docker_settings["pool_name"]
    remote = await open_pool(docker_settings, host=engine.host, cert_path=str(engine.client_tls))
    local = await open_pool({**docker_settings, "pool_name": f"{name}-local"})
    try:
        assert remote.available, remote.status()
        ids = engine.labelled(name)
        assert len(ids) == 1 and dockerenv.labelled(name) == []  # on the TLS engine, not the local one
        there, here = await remote.run(echo()), await local.run(echo())
        assert (there.status, there.headers, there.body) == (here.status, here.headers, here.body)
        info = json.loads(engine.docker("inspect", ids[0]).stdout)[0]
        host, config = info["HostConfig"], info["Config"]
        assert config["User"] == "65534:65534" and config["NetworkDisabled"] is True
        assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] is True
        assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges"]
        assert host["Runtime"] == runtime and host["Init"] is True
    finally:
        await remote.aclose()
        await local.aclose()
    assert engine.labelled(name) == []  # closed: its containers removed there


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
        fresh.stop()
