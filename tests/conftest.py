"""Shared fixtures: a valid config builder, real JWTs, and a real gateway on a loopback port."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient
from engines import SecondEngine, collect_tls_leftovers

import dockerenv
from policy.config import Config
from policy.parse import parse_config
from policy.schema import merge
from pool.containers import ContainerPool
from pool.settings import Settings
from pool.workload import Workload
from proxy.app import create_app
from proxy.loader import ConfigSource, load, load_factors

SECRET = "test-secret-0123456789abcdef0123456789abcdef"
BASE: dict[str, Any] = {
    "execution_mode": "thread",
    "handlers_package": "probe_handlers",
    "auth": {"secret_key": SECRET},
    "docker": {"enabled": False},
    "server": {"debug_headers": True},
    # The whole suite runs in one process: its RSS must not trip the gateway's memory monitor by accident.
    "limits": {
        "execution": {"max_time_ms": 2000},
        "memory_check_interval_ms": 60000,
        "memory_limit_mb": 100_000,
    },
    "thread_pool": {"min_workers": 1, "max_workers": 4},
    "risk": {"keywords": ["union select", "<script", "../"]},
    "routes": [{"path": "/echo", "handler": "echo", "methods": ["GET", "POST"]}],
}


def make_config(overrides: dict[str, Any] | None = None, env: dict[str, str] | None = None) -> Config:
    """BASE merged with `overrides` (lists replace, mappings merge)."""
    return parse_config(merge(BASE, overrides or {}), env or {})


def token(sub: str = "alice", key: str = SECRET, algorithm: str = "HS256", **claims: Any) -> str:
    claims.setdefault("exp", int(time.time()) + 3600)  # module-level tokens outlive a long container pass
    return jwt.encode({"sub": sub, **claims}, key, algorithm=algorithm)


def bearer(sub: str = "alice", **claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(sub, **claims)}"}


Gateway = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
def gateway(aiohttp_client: Any) -> Gateway:
    """`await gateway({...overrides})`: a client of a real gateway listening on 127.0.0.1."""

    async def start(
        overrides: dict[str, Any] | None = None, **kwargs: Any
    ) -> TestClient[web.Request, web.Application]:
        client: TestClient[web.Request, web.Application] = await aiohttp_client(
            create_app(make_config(overrides), **kwargs)
        )
        return client

    return start


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--runtime",
        default="runc",
        help="the OCI runtime of container tests: runc, or runsc (gVisor; scripts/gvisor.sh registers it)",
    )


@pytest.fixture(scope="session")
def runtime(request: pytest.FixtureRequest) -> str:
    return str(request.config.getoption("--runtime"))


@pytest.fixture(scope="session")
def docker_ready(runtime: str) -> Iterator[None]:
    """The real engine with the probe image built; test containers are removed at the end."""
    dockerenv.prepare(runtime)
    yield
    dockerenv.remove_test_containers()


@pytest.fixture(scope="session", name="engine")
def second_engine(docker_ready: None) -> Iterator[SecondEngine]:
    """`engine`: a second dockerd on this machine, over TCP with mutual TLS (tests/engines.py), the probe
    image loaded: one for the session (a test that stops it starts it again)."""
    engine = SecondEngine()
    try:
        engine.start()
        engine.load(dockerenv.PROBE_IMAGE)
        yield engine
    finally:
        engine.stop()


@pytest.fixture
def tls_leftovers() -> Iterator[None]:
    """For tests that talk TLS to an engine: see engines.collect_tls_leftovers."""
    yield
    collect_tls_leftovers()


@pytest.fixture
def docker_settings(docker_ready: None, runtime: str) -> dict[str, Any]:
    """A small pool of the probe image under a pool name of this test's own."""
    return {
        "enabled": True,
        "runtime": runtime,
        "image": dockerenv.PROBE_IMAGE,
        "pool_name": dockerenv.pool_name(),
        "warm_pool_size": 1,
        "max_containers": 3,
        "memory_limit": "96m",
        "timeout_ms": 5000,
    }


Client = TestClient[web.Request, web.Application]


def pool_settings(settings: dict[str, Any], **overrides: Any) -> Settings:
    """Executor settings running the probe handlers in containers: `docker_settings` plus `overrides`."""
    config = make_config({"docker": {**settings, **overrides}})
    return Settings(config.thread_pool, config.docker, Workload("probe_handlers"))


async def open_pool(settings: dict[str, Any], **overrides: Any) -> ContainerPool:
    """A started container pool of the probe handlers: `docker_settings` plus `overrides`."""
    chosen = pool_settings(settings, **overrides)
    pool = ContainerPool(chosen.docker, chosen.workload)
    await pool.start()
    return pool


class LiveConfig:
    """A config.yaml in a temporary folder, rewritten by the test."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / "config.yaml"

    def write(self, data: dict[str, Any] | str) -> None:
        self.path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))

    def write_file(self, name: str, text: str) -> None:
        (self.folder / name).write_text(text)


@pytest.fixture
def live(tmp_path: Path, aiohttp_client: Any) -> Callable[..., Awaitable[tuple[Client, LiveConfig]]]:
    """`await live({...})`: a gateway whose config.yaml (in tmp_path) reloads live, and that file."""

    async def start(
        data: dict[str, Any], files_first: dict[str, str] | None = None
    ) -> tuple[Client, LiveConfig]:
        files = LiveConfig(tmp_path)
        for name, text in (files_first or {}).items():
            files.write_file(name, text)
        files.write(data)
        loaded = load(ConfigSource(files.path, env={}))
        client: Client = await aiohttp_client(create_app(loaded.config, load_factors(loaded), source=loaded))
        return client, files

    return start


CRS_RULES = "/usr/share/modsecurity-crs/rules"  # Debian's modsecurity-crs (make test installs it)


@pytest.fixture(scope="session")
def crs_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One cache of compiled CRS databases for the run: the rules compile once (seconds), then load in ms."""
    return str(tmp_path_factory.mktemp("crs-cache"))
