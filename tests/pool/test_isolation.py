"""Isolation between callers who share a reused container, attempted for real against the engine: a hostile
handler writes planted frames to every descriptor it finds and leaves markers in /tmp, /dev/shm, a module
global and a daemon process; the next caller must get its own response and find none of it."""

import asyncio
from typing import Any

import orjson
import pytest

from conftest import open_pool
from handlers import Request
from pool.base import Job, ResponseTooLarge
from pool.containers import ContainerPool

pytestmark = pytest.mark.docker


async def one_container(settings: dict[str, Any], **overrides: Any) -> ContainerPool:
    """A pool of one container, so that consecutive callers share it (unless a test allows more)."""
    return await open_pool(settings, **{"warm_pool_size": 1, "max_containers": 1, **overrides})


def job(handler: str, entity: str, **query: str) -> Job:
    return Job(handler, Request("GET", "/p", tuple(query.items()), entity_id=entity), 5.0)


async def test_markers_left_by_one_caller_are_gone_for_the_next_in_the_same_container(
    docker_settings: dict[str, Any],
) -> None:
    pool = await one_container(docker_settings)
    try:
        before = orjson.loads((await pool.run(job("leftovers", "bob"))).body)
        planted = await pool.run(job("leaky", "mallory"))
        assert planted.status == 200
        await asyncio.sleep(0.8)  # the daemon would have written its late marker by now
        after = orjson.loads((await pool.run(job("leftovers", "bob", wait="0.2"))).body)
        assert after["hostname"] == before["hostname"]  # the same container served both callers
        assert after == {**before, "hostname": before["hostname"]}
        assert (after["tmp"], after["shm"], after["global"], after["processes"]) == ([], [], None, [])
        assert pool.counts["created"] == 1
    finally:
        await pool.aclose()


async def test_a_planted_frame_never_reaches_the_next_caller(docker_settings: dict[str, Any]) -> None:
    pool = await one_container(docker_settings)
    try:
        # The only descriptor it can reach is its own answer pipe: what it plants is its own response.
        await pool.run(job("leaky", "mallory", fds="1"))
        for _ in range(3):
            answer = await pool.run(job("echo", "bob", x="1"))
            assert answer.status == 200 and orjson.loads(answer.body)["query"] == {"x": "1"}
            assert not any(name.lower() == "set-cookie" for name, _ in answer.headers)
            assert b"<script>" not in answer.body
        assert pool.counts["created"] == 1  # the same container served them all
    finally:
        await pool.aclose()


async def test_a_response_over_the_limit_is_refused_and_the_container_kept(
    docker_settings: dict[str, Any],
) -> None:
    pool = await one_container(docker_settings, max_response_bytes=1 << 20)
    try:
        with pytest.raises(ResponseTooLarge, match="max_response_bytes"):
            await pool.run(Job("raw", Request("POST", "/p", body=b"x" * (2 << 20), entity_id="big"), 5.0))
        assert (await pool.run(job("echo", "bob"))).status == 200
        assert pool.counts["created"] == 1
    finally:
        await pool.aclose()


async def test_a_caller_keeps_its_own_session_and_another_caller_starts_clean(
    docker_settings: dict[str, Any],
) -> None:
    """Consecutive requests of one entity share its session (what it left is its own); the next entity's
    request ends that session and starts from nothing."""
    pool = await one_container(docker_settings)
    try:
        await pool.run(job("leaky", "mallory"))
        own = orjson.loads((await pool.run(job("leftovers", "mallory"))).body)
        assert own["global"] == "isogate-leak-marker" and ".isogate-leak-marker" in own["tmp"]
        other = orjson.loads((await pool.run(job("leftovers", "bob"))).body)
        assert (other["tmp"], other["shm"], other["global"], other["processes"]) == ([], [], None, [])
        assert pool.counts["created"] == 1
    finally:
        await pool.aclose()


async def test_an_idle_container_whose_session_serves_the_caller_is_preferred(
    docker_settings: dict[str, Any],
) -> None:
    pool = await one_container(docker_settings, warm_pool_size=2, max_containers=2)
    try:
        alice = orjson.loads((await pool.run(job("leftovers", "alice"))).body)["hostname"]
        bob = orjson.loads((await pool.run(job("leftovers", "bob"))).body)["hostname"]
        for _ in range(3):
            assert orjson.loads((await pool.run(job("leftovers", "alice"))).body)["hostname"] == alice
            assert orjson.loads((await pool.run(job("leftovers", "bob"))).body)["hostname"] == bob
        assert alice != bob
    finally:
        await pool.aclose()
