"""One pool over two engines: this machine's, and a second dockerd reached over TCP with mutual TLS
(tests/engines.py). Warm containers are spread by share, each engine's answers are the same bytes, new code
reaches both, and an engine killed under traffic, or hung (SIGSTOP), is left out (only the requests running
there fail) and rejoins once it answers again.

Both runtimes in one pass (marked `once`): the local engine runs `--runtime`'s, the second engine gVisor
(its own `runtime: runsc`; scripts/gvisor.sh registers it with every engine on the machine). `make test`
runs these in the runc pass only: the gVisor pass would repeat them with gVisor on both sides."""

import asyncio
import json
import logging
import shutil
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from engines import SecondEngine

import dockerenv
from conftest import open_pool, pool_settings
from handlers import Request
from pool import engine as pool_engine
from pool.base import ExecutionTimeout, Job, SandboxCrashed
from pool.containers import ContainerPool
from pool.workload import CODE_LABEL, Workload

pytestmark = [pytest.mark.docker, pytest.mark.once, pytest.mark.usefixtures("tls_leftovers")]
ROOT = Path(__file__).resolve().parents[2]


def two(engine: SecondEngine, cert_path: Path | None = None, runtime: str = "") -> list[dict[str, Any]]:
    remote = {"host": engine.host, "cert_path": str(cert_path or engine.client_tls), "runtime": runtime}
    return [{"host": "unix:///var/run/docker.sock"}, remote]


def job(handler: str, timeout_s: float = 5.0, **query: str) -> Job:
    body = bytes(range(256)) * 40 if handler == "echo" else b""
    return Job(handler, Request("POST", "/p", tuple(query.items()), (("x-h", "v"),), body, "e"), timeout_s)


def callers(
    pool: ContainerPool,
    outcomes: Counter[str],
    stop: asyncio.Event,
    failures: tuple[type[Exception], ...],
    timeout_s: float,
) -> list[asyncio.Task[None]]:
    """Four callers running a short `sleep` (deadline `timeout_s`) in a loop until `stop`: answers count as
    "ok", `failures` as "failed there"; any other failure ends its caller, and the test at its gather."""

    async def caller() -> None:
        while not stop.is_set():
            try:
                await pool.run(job("sleep", timeout_s, s="0.05"))
                outcomes["ok"] += 1
            except failures:
                outcomes["failed there"] += 1

    return [asyncio.create_task(caller()) for _ in range(4)]


async def ended(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def hostnames(pool: ContainerPool, count: int) -> set[str]:
    """The containers `count` requests at once got (each takes an idle one before any finishes)."""
    answers = await asyncio.gather(*(pool.run(job("whoami")) for _ in range(count)))
    return {str(orjson.loads(a.body)["hostname"]) for a in answers}


def short(ids: list[str]) -> set[str]:
    return {i[:12] for i in ids}


async def until(predicate: Any, pool: ContainerPool, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"not reached in time: {pool.status()}"
        await asyncio.sleep(0.1)


def gvisor_there(engine: SecondEngine) -> str:
    """runsc, which the second engine must offer (its containers are the pass's gVisor ones)."""
    runtimes = engine.docker("info", "--format", "{{json .Runtimes}}").stdout
    assert "runsc" in json.loads(runtimes or "{}"), "runsc is not registered: run scripts/gvisor.sh"
    return "runsc"


async def test_warm_containers_spread_over_both_engines_answer_alike_and_new_code_reaches_both(
    engine: SecondEngine, docker_settings: dict[str, Any], runtime: str, tmp_path: Path
) -> None:
    """Shares 1:1 of a warm size of 2: one on each, each under its engine's runtime."""
    name = docker_settings["pool_name"]
    theirs = gvisor_there(engine)
    package = tmp_path / "probe_handlers"
    shutil.copytree(ROOT / "tests" / "probe_handlers", package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "version.py").write_text(VERSION.format("one"))
    settings = {**docker_settings, "warm_pool_size": 2, "max_containers": 4}
    chosen = pool_settings(settings, engines=two(engine, runtime=theirs))
    pool = ContainerPool(chosen.docker, Workload("probe_handlers", handlers_dir=str(package), code="1"))
    await pool.start()
    try:
        assert pool.available and [e["idle"] for e in pool.status()["engines"]] == [1, 1], pool.status()
        here, there = dockerenv.labelled(name), engine.labelled(name)
        assert len(here) == len(there) == 1
        assert await hostnames(pool, 2) == short(here + there)  # one request on each engine
        first, second = await asyncio.gather(pool.run(job("echo", q="ü")), pool.run(job("echo", q="ü")))
        assert (first.status, first.headers, first.body) == (second.status, second.headers, second.body)
        assert first.status == 200 and b'"body_bytes":10240' in first.body
        for ids, inspect, expected in (
            (here, dockerenv.docker, runtime),
            (there, engine.docker, theirs),
        ):
            info = json.loads(inspect("inspect", ids[0]).stdout)[0]
            host, config = info["HostConfig"], info["Config"]
            assert config["User"] == "65534:65534" and config["NetworkDisabled"] is True
            assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] is True
            assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges"]
            assert host["Runtime"] == expected

        (package / "version.py").write_text(VERSION.format("two"))
        pool.update(chosen.docker, Workload("probe_handlers", handlers_dir=str(package), code="2"))
        new = f"label={CODE_LABEL}=2"
        await until(
            lambda: all(
                len(ps("ps", "-q", "--filter", f"label=isogate.pool={name}", "--filter", new).stdout.split())
                for ps in (dockerenv.docker, engine.docker)
            ),
            pool,
        )
        await until(lambda: pool.status()["code_versions"] == {"2": 2}, pool)
        answers = await asyncio.gather(pool.run(job("version")), pool.run(job("version")))
        assert [a.body for a in answers] == [b"two", b"two"]
    finally:
        await pool.aclose()
    assert engine.labelled(name) == [] and dockerenv.labelled(name) == []


async def test_an_engine_killed_under_traffic_is_left_out_and_rejoins_when_it_answers_again(
    engine: SecondEngine, docker_settings: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Four callers in a loop over two engines (two containers each at most). The TLS engine, running
    gVisor's sandboxes, is killed (SIGKILL): the requests running there get 502 sandbox_crashed, and none
    after; the local engine serves everything. Restarted, the engine rejoins: containers there again,
    serving. The log says once that the engine is down (and which running sandboxes died), not that each of
    its containers could not be removed or made."""
    name = docker_settings["pool_name"]
    settings = {**docker_settings, "warm_pool_size": 2, "max_containers": 4}
    pool = await open_pool(settings, engines=two(engine, runtime=gvisor_there(engine)))
    outcomes: Counter[str] = Counter()
    stop = asyncio.Event()
    running: list[asyncio.Task[None]] = []
    try:
        assert pool.available and len(engine.labelled(name)) == 1, pool.status()
        running = callers(pool, outcomes, stop, (SandboxCrashed,), timeout_s=5.0)
        await until(lambda: outcomes["ok"] >= 20, pool)
        await asyncio.to_thread(engine.kill)
        await until(lambda: not pool.status()["engines"][1]["up"], pool, timeout_s=15)
        served = outcomes["ok"]
        await until(lambda: outcomes["ok"] >= served + 40, pool)  # the local engine serves on its own
        status = pool.status()
        assert status["available"] and status["engines"][0]["up"]
        assert status["engines"][1]["downs"] == 1 and "unreachable" in status["engines"][1]["reason"]
        assert outcomes["failed there"] <= 2  # at most its two containers' requests
        warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert sum("docker engine unreachable" in w for w in warned) == 1, warned  # once, not per container
        assert all("docker engine unreachable" in w or f"on {engine.host} died" in w for w in warned), warned

        await asyncio.to_thread(engine.start)
        await until(lambda: pool.status()["engines"][1]["up"], pool)
        await until(lambda: len(engine.labelled(name)) >= 1, pool)
        stop.set()
        await asyncio.gather(*running)
        assert outcomes["failed there"] <= 2
        assert await hostnames(pool, 3) & short(engine.labelled(name))  # the local engine holds two at most
    finally:
        await ended(running)
        await pool.aclose()
    assert engine.labelled(name) == []


async def test_an_engine_that_hangs_is_left_out_and_rejoins_when_it_answers_again(
    engine: SecondEngine, docker_settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The TLS engine stops answering without closing a connection (dockerd SIGSTOPped: a hung daemon or a
    frozen machine). Its calls wait out their deadline (engine.CALL_S, 4 s here), and then the supervisor
    leaves it out. Only the requests running there fail (504 at their own deadline, or 502 as it is left
    out); the local engine serves the rest, meanwhile and after. Resumed, the engine rejoins and serves."""
    monkeypatch.setattr(pool_engine, "CALL_S", 4.0)
    name = docker_settings["pool_name"]
    settings = {**docker_settings, "warm_pool_size": 2, "max_containers": 4, "timeout_ms": 15000}
    pool = await open_pool(settings, engines=two(engine))
    outcomes: Counter[str] = Counter()
    stop = asyncio.Event()
    assert engine.process is not None
    running = callers(pool, outcomes, stop, (ExecutionTimeout, SandboxCrashed), timeout_s=2.0)
    try:
        await until(lambda: outcomes["ok"] >= 20, pool)
        engine.process.send_signal(signal.SIGSTOP)
        await until(lambda: not pool.status()["engines"][1]["up"], pool, timeout_s=20)
        served = outcomes["ok"]
        await until(lambda: outcomes["ok"] >= served + 40, pool)  # the local engine serves on its own
        assert "did not answer" in pool.status()["engines"][1]["reason"]
        engine.process.send_signal(signal.SIGCONT)
        await until(lambda: pool.status()["engines"][1]["up"], pool)
        await until(lambda: len(engine.labelled(name)) >= 1, pool)
        stop.set()
        await asyncio.gather(*running)
        assert outcomes["failed there"] <= 2, outcomes  # at most its two containers' requests
        assert await hostnames(pool, 3) & short(engine.labelled(name))
    finally:
        engine.process.send_signal(signal.SIGCONT)
        await ended(running)
        await pool.aclose()
    assert engine.labelled(name) == []


async def test_an_isolated_replica_spreads_over_both_engines_its_image_sent_through_the_api(
    engine: SecondEngine, docker_settings: dict[str, Any]
) -> None:
    """A replica pool (an upstream route's `isolated: {image, port}`) is spread as a handler pool is. Its
    image is not on the second engine: the pool sends it there. Two new callers at once each get a fresh
    container, one on each engine."""
    image = dockerenv.REPLICA_IMAGE
    engine.docker("rmi", "-f", image, check=False)
    settings = {**docker_settings, "warm_pool_size": 2, "max_containers": 4}
    chosen = pool_settings(settings, engines=two(engine, runtime=gvisor_there(engine)))
    pool = ContainerPool(chosen.docker, Workload(image=image, port=8080))
    await pool.start()
    try:
        assert pool.available and [e["idle"] for e in pool.status()["engines"]] == [1, 1], pool.status()
        assert engine.docker("images", "-q", image).stdout.strip()  # sent
        here, there = dockerenv.labelled(pool.name), engine.labelled(pool.name)
        assert len(here) == len(there) == 1

        async def container(caller: str) -> str:
            request = Request("GET", "/cgi-bin/echo?q=1", (), (("Host", "127.0.0.1:8080"),), b"", caller)
            answer = await pool.run(Job(f"{image} (isolated replica)", request, 10.0))
            assert answer.status == 200, answer.body
            return str(orjson.loads(answer.body)["container"])

        assert set(await asyncio.gather(container("alice"), container("bob"))) == short(here + there)
    finally:
        await pool.aclose()
    assert engine.labelled(pool.name) == []


async def test_an_engine_whose_ca_is_wrong_is_left_out_and_the_other_serves(
    engine: SecondEngine, docker_settings: dict[str, Any]
) -> None:
    pool = await open_pool(docker_settings, engines=two(engine, engine.wrong_ca))
    try:
        local, remote = pool.status()["engines"]
        assert pool.available and local["up"] and not remote["up"]
        assert "CERTIFICATE_VERIFY_FAILED" in remote["reason"]
        assert (await pool.run(job("echo"))).status == 200
        assert engine.labelled(docker_settings["pool_name"]) == []
    finally:
        await pool.aclose()


VERSION = """from handlers import Request, Response


def handle(request: Request) -> Response:
    return Response(200, (), b"{}")
"""
