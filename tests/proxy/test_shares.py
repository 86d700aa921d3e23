"""One untrusted caller's share of each pool it can hold (max_per_entity): container requests and requests
in flight to upstream routes, as thread workers already were; past it 429 too_many_concurrent_requests,
while other callers are served and the share is given back when the requests end."""

import asyncio
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from conftest import Gateway, bearer

UNTRUSTED = bearer("mallory", trust="untrusted")
TRUSTED = bearer("billing", trust="trusted")


async def status_of(client: Any, path: str, headers: dict[str, str]) -> int:
    async with client.get(path, headers=headers) as response:
        await response.read()
        if response.status == 429:
            body = await response.json()
            assert body["error"] == "too_many_concurrent_requests" and "max_per_entity" in body["detail"]
            assert response.headers["Retry-After"]
        return response.status


@pytest.fixture
async def slow_upstream() -> Any:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.4)
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/api/{tail:.*}", slow)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}"
    await server.close()


async def test_an_untrusted_caller_holds_at_most_its_share_of_upstream_requests(
    gateway: Gateway, slow_upstream: str
) -> None:
    client = await gateway(
        {
            "execution_mode": "thread",
            "routes": [{"path": "/api/*", "upstream": slow_upstream}],
            "upstream_pool": {"max_per_entity": 2},
        }
    )
    answers = await asyncio.gather(
        *(status_of(client, "/api/x", UNTRUSTED) for _ in range(3)),
        *(status_of(client, "/api/x", TRUSTED) for _ in range(3)),  # trusted tokens: no share
    )
    assert sorted(answers[:3]) == [200, 200, 429] and answers[3:] == [200, 200, 200]
    assert await status_of(client, "/api/x", UNTRUSTED) == 200  # given back once they ended


@pytest.mark.docker
async def test_an_untrusted_caller_holds_at_most_its_share_of_container_requests(
    gateway: Gateway, docker_settings: dict[str, Any]
) -> None:
    client = await gateway(
        {
            "execution_mode": "docker",
            "docker": {**docker_settings, "max_per_entity": 1},
            "routes": [{"path": "/sleep", "handler": "sleep"}],
        }
    )
    slow = "/sleep?s=0.5"
    answers = await asyncio.gather(
        status_of(client, slow, UNTRUSTED),
        status_of(client, slow, UNTRUSTED),
        status_of(client, slow, TRUSTED),
    )
    assert sorted(answers[:2]) == [200, 429] and answers[2] == 200
    assert await status_of(client, slow, UNTRUSTED) == 200
