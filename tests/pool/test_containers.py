"""The container pool against the real Docker engine: lifecycle, lock-down, faults and recycling."""

import asyncio
import logging
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiodocker
import orjson
import pytest

from conftest import make_config, open_pool, pool_settings
from dockerenv import kill_agent
from handlers import Request
from pool import engine
from pool.base import (
    DockerUnavailable,
    ExecutionTimeout,
    HandlerFailed,
    Job,
    MemoryLimitExceeded,
    PoolExhausted,
    SandboxCrashed,
)
from pool.containers import ContainerPool
from pool.sandbox import container_name, remove
from pool.workload import Workload

pytestmark = pytest.mark.docker


@pytest.fixture
async def pool(docker_settings: dict[str, Any]) -> AsyncIterator[ContainerPool]:
    pool = await open_pool(docker_settings, warm_pool_size=2)
    yield pool
    await pool.aclose()


def job(handler: str, timeout_s: float = 5.0, body: bytes = b"", **query: str) -> Job:
    return Job(handler, Request("GET", "/p", tuple(query.items()), body=body, entity_id="e"), timeout_s)


async def until(predicate: Any, timeout_s: float = 10.0, pool: ContainerPool | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"condition not reached in time {pool.status() if pool else ''}"
        await asyncio.sleep(0.05)


def labelled(pool_name: str) -> list[str]:
    out = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=isogate.pool={pool_name}"], capture_output=True, text=True
    )
    return out.stdout.split()


async def test_warm_containers_are_ready_and_locked_down(
    pool: ContainerPool, docker_settings: dict[str, Any], runtime: str
) -> None:
    assert pool.available and pool.status()["idle"] == 2
    ids = labelled(docker_settings["pool_name"])
    assert len(ids) == 2
    async with aiodocker.Docker() as client:
        info = await client.containers.get(ids[0])
        host, config = info["HostConfig"], info["Config"]
    assert info["Name"].startswith(f"/isogate-{docker_settings['pool_name']}-")
    assert config["User"] == "65534:65534" and config["NetworkDisabled"] is True
    assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges"]
    assert host["Memory"] == host["MemorySwap"] == 96 << 20
    nofile = {"Name": "nofile", "Soft": 1024, "Hard": 1024}
    if runtime == "runsc":  # processes counted inside gVisor; the host's limit also counts its threads
        nproc = {"Name": "nproc", "Soft": 64, "Hard": 64}
        assert host["PidsLimit"] == 128 + 8 * 64 and host["Ulimits"] == [nofile, nproc]
    else:
        assert host["PidsLimit"] == 64 and host["Ulimits"] == [nofile]
    assert host["NanoCpus"] == 500_000_000
    assert "/tmp" in host["Tmpfs"] and not any("docker.sock" in b for b in host.get("Binds") or [])
    assert host["Init"] is True and host["ShmSize"] == 16 << 20 and host["Runtime"] == runtime


async def test_the_kernel_confines_the_handler(pool: ContainerPool, runtime: str) -> None:
    """Seen from inside: Docker's default seccomp filter (mode 2), no_new_privs, no capabilities, user
    nobody, /dev/shm and /tmp mounted noexec, the open-files limit; under runsc, gVisor's own kernel."""
    found = orjson.loads((await pool.run(job("confinement"))).body)
    # runsc (2022-12) applies the OCI seccomp profile to the container's first process, not to exec'd
    # ones like the agent: the boundary there is gVisor's kernel, itself under runsc's host filter.
    seccomp = {"runc": 2, "runsc": 0}[runtime]
    assert (found["seccomp"], found["no_new_privs"], found["cap_eff"], found["uid"]) == (
        seccomp,
        1,
        "0000000000000000",
        "65534",
    )
    assert (found["kernel"] != os.uname().release) is (runtime == "runsc")
    assert (found["exec_shm"], found["exec_tmp"]) == ("refused", "refused")
    assert "noexec" in found["shm"] and "noexec" in found["tmp"]
    if runtime == "runc":  # gVisor's /proc/mounts omits them (no_new_privs makes setuid moot anyway)
        assert {"nosuid", "nodev"} <= set(found["shm"]) & set(found["tmp"])
    assert found["nofile"] == 1024


async def test_round_trip_keeps_binary_bodies_and_repeated_headers(pool: ContainerPool) -> None:
    payload = bytes(range(256)) * 300
    response = await pool.run(job("raw", body=payload, status="201"))
    assert (response.status, response.body) == (201, payload)
    assert [v for k, v in response.headers if k == "X-Probe"] == ["one", "two"]


async def test_timeout_answers_at_once_kills_the_container_and_a_spare_serves_next(
    pool: ContainerPool,
) -> None:
    started = time.perf_counter()
    with pytest.raises(ExecutionTimeout, match="its container was killed"):
        await pool.run(job("sleep", timeout_s=0.3, s="5"))
    assert time.perf_counter() - started < 3.0  # at the limit, not when the handler would end
    assert (await pool.run(job("echo"))).status == 200  # served by the spare
    await until(lambda: pool.counts["destroyed"] == 1 and pool.status()["idle"] == 2)
    assert pool.counts["timeouts"] == 1 and pool.counts["replaced"] == 1


async def test_memory_past_the_limit_is_an_oom_kill_and_the_container_is_replaced(
    pool: ContainerPool,
) -> None:
    with pytest.raises(MemoryLimitExceeded):
        await pool.run(job("memory_hog", mb="300"))
    assert pool.counts["oom_kills"] == 1
    assert (await pool.run(job("memory_hog", mb="8"))).status == 200
    await until(lambda: pool.counts["destroyed"] == 1)


async def test_agent_death_is_a_crash_and_the_broken_container_never_serves_again(
    pool: ContainerPool,
) -> None:
    with pytest.raises(SandboxCrashed):
        await pool.run(job("exit_now"))
    assert pool.counts["crashes"] == 1
    for _ in range(4):
        assert (await pool.run(job("echo"))).status == 200
    await until(lambda: pool.counts["destroyed"] == 1)


async def test_container_killed_from_outside_mid_request_is_a_crash(docker_settings: dict[str, Any]) -> None:
    pool = await open_pool(docker_settings, warm_pool_size=1, max_containers=1)
    try:
        running = asyncio.create_task(pool.run(job("sleep", s="5")))
        await asyncio.sleep(0.5)
        subprocess.run(
            ["docker", "kill", *labelled(docker_settings["pool_name"])], check=True, capture_output=True
        )
        with pytest.raises(SandboxCrashed):
            await running
        assert (await pool.run(job("echo"))).status == 200  # a new container took its place
    finally:
        await pool.aclose()


async def test_handler_exception_is_500_and_the_container_is_kept(pool: ContainerPool) -> None:
    with pytest.raises(HandlerFailed, match="KeyError"):
        await pool.run(job("boom"))
    assert (await pool.run(job("echo"))).status == 200
    assert pool.counts["destroyed"] == 0 and pool.counts["created"] == 2


async def test_beyond_max_containers_a_request_waits_then_gets_pool_exhausted(
    docker_settings: dict[str, Any],
) -> None:
    pool = await open_pool(docker_settings, warm_pool_size=1, max_containers=1, timeout_ms=300)
    try:
        busy = asyncio.create_task(pool.run(job("sleep", s="3")))
        await asyncio.sleep(0.2)
        started = time.perf_counter()
        with pytest.raises(PoolExhausted, match="docker.timeout_ms"):
            await pool.run(job("echo"))
        assert 0.25 < time.perf_counter() - started < 2.5  # waited timeout_ms, not for the busy one
        assert (await busy).status == 200
    finally:
        await pool.aclose()


async def test_back_to_back_requests_without_reuse_wait_for_the_refill_in_flight(
    docker_settings: dict[str, Any],
) -> None:
    pool = await open_pool(docker_settings, warm_pool_size=1, reuse_containers=False)
    try:
        names = [await hostname(pool) for _ in range(3)]
        assert len(set(names)) == 3 and pool.counts["cold_starts"] == 0
        assert pool.counts["created"] <= 4
    finally:
        await pool.aclose()


async def test_bursts_create_containers_up_to_the_maximum(docker_settings: dict[str, Any]) -> None:
    pool = await open_pool(docker_settings, warm_pool_size=1, max_containers=3)
    try:
        results = await asyncio.gather(*(pool.run(job("sleep", s="0.5")) for _ in range(3)))
        assert all(r.status == 200 for r in results)
        assert pool.counts["cold_starts"] == 2 and pool.status()["size"] == 3
    finally:
        await pool.aclose()


async def hostname(pool: ContainerPool) -> str:
    import orjson

    return str(orjson.loads((await pool.run(job("whoami"))).body)["hostname"])


async def test_without_reuse_every_request_gets_a_fresh_warm_container(
    docker_settings: dict[str, Any],
) -> None:
    pool = await open_pool(docker_settings, warm_pool_size=2, reuse_containers=False)
    try:
        names = []
        for _ in range(4):  # arrivals below the refill rate: each finds a fresh warm container
            await until(lambda: pool.status()["idle"] == 2)
            names.append(await hostname(pool))
        assert len(set(names)) == 4
        await until(lambda: pool.status()["idle"] == 2 and pool.counts["destroyed"] == 4)
        assert pool.counts["cold_starts"] == 0
    finally:
        await pool.aclose()


async def test_containers_are_recycled_after_max_uses(docker_settings: dict[str, Any]) -> None:
    pool = await open_pool(docker_settings, max_uses=2)
    try:
        first, second = await hostname(pool), await hostname(pool)
        await until(lambda: pool.status()["idle"] == 1)
        assert first == second != await hostname(pool)
    finally:
        await pool.aclose()


async def test_idle_containers_are_recycled_after_idle_ttl(docker_settings: dict[str, Any]) -> None:
    pool = await open_pool(docker_settings, idle_ttl_s=1)
    try:
        before = await hostname(pool)
        await until(lambda: pool.counts["destroyed"] >= 1 and pool.status()["idle"] == 1, timeout_s=6)
        assert await hostname(pool) != before
    finally:
        await pool.aclose()


async def test_start_removes_leftovers_and_close_removes_its_own(docker_settings: dict[str, Any]) -> None:
    crashed = await open_pool(docker_settings, warm_pool_size=2)
    assert crashed._supervisor is not None  # a crashed gateway supervises nothing, follows no events
    crashed._supervisor.cancel()
    for side in crashed._engines:
        await side.stop_events()
    leftovers = labelled(docker_settings["pool_name"])
    assert len(leftovers) == 2  # the "crashed" gateway never closes its pool
    successor = await open_pool(docker_settings, warm_pool_size=1)
    now = labelled(docker_settings["pool_name"])
    assert len(now) == 1 and not set(now) & set(leftovers)
    await successor.aclose()
    assert labelled(docker_settings["pool_name"]) == []
    await crashed.aclose()


async def test_reconfigure_grows_and_drains_without_killing_busy_containers(
    docker_settings: dict[str, Any],
) -> None:
    pool = await open_pool(docker_settings, warm_pool_size=1, max_containers=3)
    try:
        pool.reconfigure(pool_settings(docker_settings, warm_pool_size=3, max_containers=3))
        await until(lambda: pool.status()["idle"] == 3)
        busy = asyncio.create_task(pool.run(job("sleep", s="1")))
        await asyncio.sleep(0.3)
        pool.reconfigure(pool_settings(docker_settings, warm_pool_size=0, max_containers=1))
        assert (await busy).status == 200  # the busy container finished its request
        await until(lambda: pool.status()["size"] == 0)  # then it and the idle ones were drained
        assert labelled(docker_settings["pool_name"]) == [] or await_removal(docker_settings["pool_name"])
    finally:
        await pool.aclose()


def await_removal(pool_name: str) -> bool:
    for _ in range(50):
        if not labelled(pool_name):
            return True
        time.sleep(0.1)
    return False


async def test_a_changed_container_spec_replaces_idle_containers(docker_settings: dict[str, Any]) -> None:
    pool = await open_pool(docker_settings, warm_pool_size=1)
    try:
        before = labelled(docker_settings["pool_name"])
        pool.reconfigure(pool_settings(docker_settings, memory_limit="128m"))
        await until(lambda: pool.counts["destroyed"] == 1 and pool.status()["idle"] == 1)
        after = labelled(docker_settings["pool_name"])
        assert len(after) == 1 and after != before
        async with aiodocker.Docker() as client:
            info = await client.containers.get(after[0])
        assert info["HostConfig"]["Memory"] == 128 << 20
    finally:
        await pool.aclose()


# Deaths and leaks: whatever happens to a sandbox, its slot is released or destroyed, never leaked.


def settled(pool: ContainerPool, size: int) -> bool:
    """Nothing busy or being made, and at least `size` idle (a spare made while one was busy stays until
    idle_ttl_s)."""
    status = pool.status()
    return status["busy"] == 0 and status["idle"] >= size and status["creating"] == 0


async def test_an_idle_container_killed_from_outside_is_replaced_before_a_request_finds_it(
    docker_settings: dict[str, Any],
) -> None:
    pool = await open_pool(docker_settings, warm_pool_size=1)
    try:
        victim = pool._idle[0].id
        subprocess.run(["docker", "kill", victim], capture_output=True, check=True)
        await until(lambda: pool.counts["died_idle"] == 1 and settled(pool, 1))
        assert pool._idle[0].id != victim
        assert (await pool.run(job("echo"))).status == 200
    finally:
        await pool.aclose()


async def test_an_idle_agent_killed_costs_no_request_and_leaks_no_slot(
    docker_settings: dict[str, Any],
) -> None:
    pool = await open_pool(docker_settings, warm_pool_size=1, max_containers=2)
    try:
        for _ in range(10):  # ten deaths used to leave every slot busy for good
            await until(lambda: settled(pool, 1))
            await kill_agent(pool._idle[0].id)
            await asyncio.sleep(0.2)  # let the engine close the exec stream
            assert (await pool.run(job("echo"))).status == 200  # served by another sandbox
        await until(lambda: settled(pool, 1) and not pool._tasks, pool=pool)  # removals done too
        assert pool.counts["died_idle"] == 10 and pool.status()["size"] <= 2
        assert len(labelled(docker_settings["pool_name"])) == pool.status()["size"]  # none leaked
    finally:
        await pool.aclose()


async def test_every_idle_agent_killed_at_once_costs_the_next_request_nothing(
    docker_settings: dict[str, Any],
) -> None:
    """kill -9 of every idle agent, the containers left running: the next request is served (it used to get
    502 sandbox_crashed naming an AssertionError after meeting three dead agents)."""
    pool = await open_pool(docker_settings, warm_pool_size=3, max_containers=4)
    try:
        await asyncio.gather(*(kill_agent(s.id) for s in list(pool._idle)))
        response = await pool.run(job("echo"))  # at once: no time given to the supervisor
        assert response.status == 200
        assert pool.counts["died_idle"] == 3 and pool.counts["crashes"] == 0
        await until(lambda: settled(pool, 3), pool=pool)
    finally:
        await pool.aclose()


async def test_a_hung_idle_agent_is_found_by_a_ping_and_replaced(docker_settings: dict[str, Any]) -> None:
    pool = await open_pool(docker_settings, warm_pool_size=1)
    try:
        victim = pool._idle[0]
        before = victim.checked_at
        await until(lambda: victim.checked_at > before, pool=pool)  # idle agents are pinged, and answer
        await kill_agent(victim.id, signal.SIGSTOP)  # alive to the engine, its stream open, silent
        await until(lambda: pool.counts["died_idle"] == 1 and settled(pool, 1), timeout_s=15, pool=pool)
        assert victim not in pool._idle
        assert (await pool.run(job("echo"))).status == 200
    finally:
        await pool.aclose()


# Waiting for a container: oldest first, bounded, refused fast past the bound.


async def test_a_freed_container_goes_to_the_oldest_waiter(docker_settings: dict[str, Any]) -> None:
    pool = await open_pool(docker_settings, warm_pool_size=1, max_containers=1)
    finished: list[int] = []

    async def request(number: int) -> None:
        await pool.run(job("sleep", s="0.15"))
        finished.append(number)

    try:
        tasks = []
        for number in range(6):
            tasks.append(asyncio.create_task(request(number)))
            await asyncio.sleep(0.03)  # arrivals spaced apart: each joins the queue after the last
        await asyncio.gather(*tasks)
        assert finished == list(range(6))
    finally:
        await pool.aclose()


async def test_past_max_waiting_a_request_is_refused_at_once_with_retry_after(
    docker_settings: dict[str, Any],
) -> None:
    pool = await open_pool(docker_settings, warm_pool_size=1, max_containers=1, max_waiting=1)
    try:
        busy = asyncio.create_task(pool.run(job("sleep", s="1")))
        await until(lambda: pool.status()["busy"] == 1)
        waiting = asyncio.create_task(pool.run(job("echo")))
        await until(lambda: pool.status()["waiting"] == 1)
        with pytest.raises(PoolExhausted, match="docker.max_waiting") as refused:
            await pool.run(job("echo"))
        assert refused.value.retry_after == 1 and not busy.done()
        assert (await busy).status == 200 and (await waiting).status == 200
        assert pool.counts["refused"] == 1
    finally:
        await pool.aclose()


async def test_callers_that_leave_free_their_place_and_never_cost_a_container(
    docker_settings: dict[str, Any],
) -> None:
    """A caller gone (client disconnected: its handler is cancelled) while waiting leaves the queue at once;
    one gone mid-call lets the call finish, and the container serves on; one gone during a cold start
    leaves the new container to the pool."""
    pool = await open_pool(docker_settings, warm_pool_size=1, max_containers=1)
    try:
        running = asyncio.create_task(pool.run(job("sleep", s="0.6")))
        await until(lambda: pool.status()["busy"] == 1)
        waiting = [asyncio.create_task(pool.run(job("echo"))) for _ in range(5)]
        await until(lambda: pool.status()["waiting"] == 5)
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
        assert pool.status()["waiting"] == 0
        running.cancel()  # mid-call
        with pytest.raises(asyncio.CancelledError):
            await running
        assert pool.status()["busy"] == 1  # still running its request
        await until(lambda: pool.status()["idle"] == 1, pool=pool)
        assert (await pool.run(job("echo"))).status == 200
        assert (pool.counts["created"], pool.counts["destroyed"]) == (1, 0)
    finally:
        await pool.aclose()
    cold = await open_pool(docker_settings, warm_pool_size=0, max_containers=1)
    try:
        caller = asyncio.create_task(cold.run(job("echo")))
        await until(lambda: cold.status()["creating"] == 1)
        caller.cancel()
        await asyncio.gather(caller, return_exceptions=True)
        await until(lambda: cold.status()["idle"] == 1, pool=cold)  # made anyway, kept for the next caller
        assert (await cold.run(job("echo"))).status == 200
        assert (cold.counts["created"], cold.counts["destroyed"]) == (1, 0)
    finally:
        await cold.aclose()


async def test_two_removals_of_one_container_crossing_are_not_an_error(
    docker_settings: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """The supervisor may remove a container a destroy is already removing (seen on a pool's roll): the
    engine answers 409 "already in progress", which is no failure to warn about."""
    label = f"isogate.pool={docker_settings['pool_name']}"
    run = [
        "docker",
        "run",
        "-d",
        "--network",
        "none",
        "--label",
        label,
        docker_settings["image"],
        "sleep",
        "60",
    ]
    container_id = subprocess.run(run, capture_output=True, text=True, check=True).stdout.strip()
    async with aiodocker.Docker() as client:
        container = await client.containers.get(container_id)
        with caplog.at_level(logging.WARNING, logger="isogate.pool.sandbox"):
            await asyncio.gather(*(remove(container) for _ in range(4)))
    assert labelled(docker_settings["pool_name"]) == []
    assert [r.getMessage() for r in caplog.records] == []


async def test_containers_of_the_pool_that_it_does_not_hold_are_removed(
    docker_settings: dict[str, Any],
) -> None:
    """A stopped one (a removal that failed) and a running one (a creation the engine finished after the
    pool gave up on it: its answer was lost), both with the pool's label and named as the pool names its
    own."""
    pool = await open_pool(docker_settings, warm_pool_size=1)
    try:
        label = f"isogate.pool={docker_settings['pool_name']}"
        run = ["docker", "run", "-d", "--network", "none", "--label", label]
        strays = [
            subprocess.run(
                [*run, "--name", container_name(pool._prefix), docker_settings["image"], *command],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            for command in (["true"], ["sleep", "600"])
        ]
        await until(
            lambda: not any(s[:12] in " ".join(labelled(docker_settings["pool_name"])) for s in strays)
        )
        assert settled(pool, 1) and (await pool.run(job("echo"))).status == 200
    finally:
        await pool.aclose()


async def test_a_hung_engine_cannot_freeze_the_pool(
    docker_settings: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An engine socket that accepts and never answers: start-up, the supervisor and close all return."""
    held: list[asyncio.StreamWriter] = []

    async def black_hole(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # read nothing, answer nothing

    socket_path = tmp_path / "hung.sock"
    server = await asyncio.start_unix_server(black_hole, path=str(socket_path))
    monkeypatch.setattr(engine, "CALL_S", 0.5)
    pool = ContainerPool(
        make_config({"docker": {**docker_settings, "host": f"unix://{socket_path}"}}).docker, Workload("x")
    )
    try:
        await asyncio.wait_for(pool.start(), 5)
        assert not pool.available and "did not answer within" in (pool.reason or "")
        with pytest.raises(DockerUnavailable):
            await pool.run(job("echo"))
    finally:
        await asyncio.wait_for(pool.aclose(), 5)
        for writer in held:
            writer.close()
        server.close()


async def test_handing_containers_to_waiters_never_churns_the_pool(docker_settings: dict[str, Any]) -> None:
    """A container handed to a waiter counts as busy at once: the pool never thinks itself short, so it
    creates and destroys nothing under a queue."""
    pool = await open_pool(docker_settings, warm_pool_size=2, max_containers=2)
    try:

        async def client() -> list[int]:  # asks again as soon as it is answered, as load generators do
            return [(await pool.run(job("sleep", s="0.02"))).status for _ in range(5)]

        results = await asyncio.gather(*(client() for _ in range(6)))
        assert all(status == 200 for statuses in results for status in statuses)
        assert (pool.counts["created"], pool.counts["destroyed"], pool.counts["cold_starts"]) == (2, 0, 0)
    finally:
        await pool.aclose()


@pytest.mark.once  # the pool's own bookkeeping: the same whatever the runtime
async def test_closed_while_warming_the_pool_leaves_nothing_and_no_engine_warning(
    docker_settings: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A gateway stopped while its pool still warms up (SIGTERM during start): the containers being made
    are removed, and the log does not call the engine down ("503 until then"): it is the pool that ends."""
    chosen = pool_settings(docker_settings, warm_pool_size=2)
    pool = ContainerPool(chosen.docker, chosen.workload)
    with caplog.at_level(logging.WARNING, logger="isogate.pool"):
        starting = asyncio.create_task(pool.start())
        await until(lambda: pool.status()["creating"] == 2, pool=pool)
        await pool.aclose()
        await starting
    assert labelled(docker_settings["pool_name"]) == []
    assert [r.getMessage() for r in caplog.records] == []
    assert not pool.available and pool.reason == "closed"


@pytest.mark.once  # names and labels: the same whatever the runtime
async def test_two_gateways_sharing_a_pool_name_leave_each_other_alone_and_say_so(
    docker_settings: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Two gateways configured with one docker.pool_name on one engine (a copied config): the second's start
    sweeps the first's containers as leftovers (it cannot tell), but after that neither removes what the
    other makes; each says, as an error naming the pool, that the name is shared. Each removes only its own
    at close. (Before, each removed the other's every second: churn, and 502 for requests there.)"""
    first = await open_pool(docker_settings, warm_pool_size=1)
    second: ContainerPool | None = None
    try:
        with caplog.at_level(logging.ERROR, logger="isogate.pool"):
            second = await open_pool(docker_settings, warm_pool_size=1)
            await until(lambda: settled(first, 1) and first.counts["created"] == 2, pool=first)  # replaced
            made = (first.counts["created"], second.counts["created"])
            await until(lambda: len([r for r in caplog.records if "another gateway" in r.getMessage()]) == 2)
            await asyncio.sleep(2.5)  # two more supervision rounds of each: nothing removed
            assert (first.counts["created"], second.counts["created"]) == made
        said = [r.getMessage() for r in caplog.records if "another gateway" in r.getMessage()]
        assert len(said) == 2 and f"docker.pool_name {docker_settings['pool_name']}" in said[0], said
        assert (await first.run(job("echo"))).status == 200 and (await second.run(job("echo"))).status == 200
        await second.aclose()
        second = None
        assert len(labelled(docker_settings["pool_name"])) == 1  # the first's, left running
        assert (await first.run(job("echo"))).status == 200
    finally:
        if second is not None:
            await second.aclose()
        await first.aclose()
    assert labelled(docker_settings["pool_name"]) == []
