"""Faults produced for real: handlers past the time limit, raising, memory over the limit, no docker."""

import asyncio
import logging
import time

import aiohttp
import psutil
import pytest

from conftest import Gateway, bearer

NO_ENGINE = "unix:///tmp/isogate-no-engine-here.sock"  # a real, unreachable engine address
ROUTES = [
    {"path": "/sleep", "handler": "sleep"},
    {"path": "/boom", "handler": "boom"},
    {"path": "/echo", "handler": "echo"},
]


async def test_handler_past_the_time_limit_gets_504_at_once_and_a_failure(gateway: Gateway) -> None:
    client = await gateway({"routes": ROUTES, "limits": {"execution": {"max_time_ms": 200}}})
    started = time.perf_counter()
    response = await client.get("/sleep?s=3.0", headers=bearer("slow"))
    assert time.perf_counter() - started < 2.0  # at the limit, not when the handler ended
    body = await response.json()
    assert (response.status, body["error"]) == (504, "execution_timeout")
    assert "limits.execution.max_time_ms" in body["detail"]
    stats = await (await client.get("/api/stats", headers=bearer("slow"))).json()
    assert stats["stats"]["failedRequests"] == 1
    assert (await client.get("/echo")).status == 200  # the gateway keeps serving


async def test_handler_exception_is_500_with_the_type_and_no_traceback(gateway: Gateway) -> None:
    client = await gateway({"routes": ROUTES})
    response = await client.get("/boom")
    body = await response.json()
    assert (response.status, body["error"]) == (500, "handler_error")
    assert "KeyError" in body["detail"]
    assert "hunter2" not in await response.text() and "Traceback" not in await response.text()


async def test_memory_already_over_the_limit_is_logged_but_charged_to_no_caller(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    limits = {"memory_limit_mb": 1, "memory_check_interval_ms": 50}
    client = await gateway({"routes": ROUTES, "limits": limits})
    with caplog.at_level(logging.WARNING, logger="isogate.gateway"):
        slow = asyncio.create_task(client.get("/sleep?s=0.4", headers=bearer("sleeper")))
        assert (await slow).status == 200
    assert any(
        "Memory limit exceeded:" in r.getMessage() and r.getMessage().endswith("MB / 1MB")
        for r in caplog.records
    )
    own = await (await client.get("/api/stats", headers=bearer("sleeper"))).json()
    assert own["stats"]["resourceViolations"] == 0  # its job did not grow the process
    admin = await (await client.get("/stats", headers=bearer("ops", role="admin"))).json()
    assert admin["memory"]["over_limit"] is True


async def test_a_thread_job_that_grows_memory_past_the_limit_is_charged_and_no_one_else(
    gateway: Gateway,
) -> None:
    rss_mb = psutil.Process().memory_info().rss / 2**20
    limits = {"memory_limit_mb": int(rss_mb) + 40, "memory_check_interval_ms": 50}
    client = await gateway(
        {"routes": [*ROUTES, {"path": "/hold", "handler": "memory_hold"}], "limits": limits}
    )
    assert (await client.get("/echo", headers=bearer("bystander"))).status == 200
    await asyncio.sleep(0.3)  # a few memory checks: the bystander's job is in an earlier interval
    hog = await client.get("/hold?mb=200&s=0.5", headers=bearer("hog"))
    assert hog.status == 200
    own = await (await client.get("/api/stats", headers=bearer("hog"))).json()
    assert own["stats"]["resourceViolations"] >= 1
    other = await (await client.get("/api/stats", headers=bearer("bystander"))).json()
    assert other["stats"]["resourceViolations"] == 0


async def test_memory_pressure_sends_hybrid_thread_work_to_docker(gateway: Gateway) -> None:
    config = {
        "execution_mode": "hybrid",
        "docker": {"enabled": True, "host": NO_ENGINE},
        "routes": ROUTES,
        "limits": {"memory_limit_mb": 1, "memory_check_interval_ms": 60000},
    }
    client = await gateway(config)
    response = await client.get("/echo", headers=bearer("calm", trust="trusted"))
    assert response.headers["X-Isogate-Mode"] == "docker"  # would be thread (score 30, trusted)


async def test_docker_decisions_fail_closed_when_the_engine_is_unreachable(gateway: Gateway) -> None:
    hybrid = {"docker_for": {"new": False}}
    client = await gateway(
        {
            "execution_mode": "hybrid",
            "docker": {"enabled": True, "host": NO_ENGINE},
            "hybrid": hybrid,
            "routes": ROUTES,
        }
    )
    anonymous = await client.get("/echo")  # score 30 (new), untrusted trigger -> docker
    assert (anonymous.status, (await anonymous.json())["error"]) == (503, "docker_unavailable")
    assert anonymous.headers["X-Isogate-Mode"] == "docker"
    trusted = await client.get("/echo", headers=bearer("known", trust="trusted"))
    assert trusted.status == 200 and trusted.headers["X-Isogate-Mode"] == "thread"
    answer = await client.get("/healthz")
    health = await answer.json()
    assert (answer.status, health["status"]) == (503, "degraded")
    assert health["docker"]["available"] is False and "reason" not in health["docker"]
    assert health["problems"] == ["docker decisions cannot run (details in /stats)"]
    admin = await (await client.get("/stats", headers=bearer("ops", role="admin"))).json()
    assert "unreachable" in admin["docker"]["reason"]


async def test_hybrid_with_docker_disabled_runs_threads_and_warns_once(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="isogate"):
        client = await gateway({"execution_mode": "hybrid", "routes": ROUTES})
        for _ in range(3):
            response = await client.get("/echo?q=<script>")
            assert response.status == 200 and response.headers["X-Isogate-Mode"] == "thread"
    warnings = [r for r in caplog.records if "docker.enabled is false" in r.getMessage()]
    assert len(warnings) == 1


# The thread pool is shared: one caller gets a share of it, and a full pool refuses instead of queueing.


async def test_an_untrusted_caller_holds_at_most_its_share_and_others_keep_being_served(
    gateway: Gateway,
) -> None:
    client = await gateway({"routes": ROUTES, "thread_pool": {"max_workers": 4, "max_per_entity": 2}})
    greedy = [asyncio.create_task(client.get("/sleep?s=1.0")) for _ in range(8)]  # one anonymous caller
    await asyncio.sleep(0.3)
    trusted = await client.get("/echo", headers=bearer("other", trust="trusted"))
    assert trusted.status == 200
    answers = [await task for task in greedy]
    statuses = sorted(answer.status for answer in answers)
    assert statuses == [200, 200] + [429] * 6
    refused = next(answer for answer in answers if answer.status == 429)
    assert (await refused.json())["error"] == "too_many_concurrent_requests"
    assert refused.headers["Retry-After"] == "1"


async def test_a_caller_that_leaves_keeps_its_share_while_its_job_runs(gateway: Gateway) -> None:
    """Leaving (the handler is cancelled) and asking again must not take more than the share: a running
    thread cannot be stopped, so the share is released when the job ends or reaches its deadline."""
    client = await gateway({"routes": ROUTES, "thread_pool": {"max_workers": 4, "max_per_entity": 1}})
    with pytest.raises(TimeoutError):
        await client.get("/sleep?s=1.0", timeout=aiohttp.ClientTimeout(total=0.2))
    admin = await (await client.get("/stats", headers=bearer("ops", role="admin"))).json()
    assert admin["thread_pool"]["busy"] == 1  # the job runs on, for nobody
    again = await client.get("/echo")
    assert again.status == 429  # and still counts against its caller
    for _ in range(40):  # bounded: the job ends after 1 s and the share is free again
        if (again := await client.get("/echo")).status == 200:
            break
        await asyncio.sleep(0.1)
    assert again.status == 200


async def test_a_full_thread_pool_refuses_at_once_with_503(gateway: Gateway) -> None:
    """The pool's own bound, when admission.slots lets more in than it holds (auto never does: the door
    waits instead, see test_admission)."""
    pool = {"max_workers": 1, "max_queue": 1}
    client = await gateway({"routes": ROUTES, "thread_pool": pool, "admission": {"slots": 10}})
    held = [
        asyncio.create_task(client.get("/sleep?s=0.7", headers=bearer(f"caller{i}", trust="trusted")))
        for i in range(2)
    ]
    await asyncio.sleep(0.3)  # one runs, one waits in the queue
    refused = await client.get("/echo", headers=bearer("late", trust="trusted"))
    assert (refused.status, (await refused.json())["error"]) == (503, "thread_pool_full")
    assert refused.headers["Retry-After"] == "1" and not any(task.done() for task in held)
    assert [(await task).status for task in held] == [200, 200]
