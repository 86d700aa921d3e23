"""Handler code changed on disk reaches callers on `POST /admin/reload`, without a restart: threads import it
again, and the container pool rolls to containers that mount the new code while the old ones keep serving.
Code that does not import changes nothing. Real files, a real gateway, the real engine."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import BASE, Client, bearer

ADMIN = bearer("ops", role="admin")
TRUSTED = bearer("caller", trust="trusted")
HANDLER = "def handle(request: object) -> dict[str, int]:\n    return {{'v': {v}}}\n"


@pytest.fixture
def package() -> Iterator[tuple[str, Path]]:
    """A handler package of its own in a world-readable folder (containers read it as uid 65534)."""
    folder = Path(tempfile.mkdtemp(prefix="isogate-code-"))
    folder.chmod(0o755)
    name = f"codepkg_{uuid.uuid4().hex[:8]}"
    (folder / name).mkdir(mode=0o755)
    (folder / name / "__init__.py").write_text("")
    write(folder / name / "version.py", 1)
    sys.path.insert(0, str(folder))
    yield name, folder / name
    sys.path.remove(str(folder))


def write(path: Path, version: int | str) -> None:
    path.write_text(HANDLER.format(v=version) if isinstance(version, int) else version)
    path.chmod(0o644)
    stamp = path.stat().st_mtime_ns + 10**9 * (1 + (int(version) if isinstance(version, int) else 9))
    os.utime(path, ns=(stamp, stamp))  # a new mtime even within the clock's resolution


async def version(client: Client) -> int:
    response = await client.get("/v", headers=TRUSTED)
    assert response.status == 200, await response.text()
    return int((await response.json())["v"])


async def reload(client: Client) -> tuple[int, dict[str, Any]]:
    response = await client.post("/admin/reload", headers=ADMIN)
    return response.status, await response.json()


def config(name: str, **extra: Any) -> dict[str, Any]:
    return {**BASE, "handlers_package": name, "routes": [{"path": "/v", "handler": "version"}], **extra}


async def test_threads_import_changed_code_on_reload_and_keep_it_when_new_code_breaks(
    live: Any, package: tuple[str, Path]
) -> None:
    name, folder = package
    client, _ = await live(config(name))
    assert await version(client) == 1
    write(folder / "version.py", 2)
    status, body = await reload(client)
    assert (status, body["status"]) == (200, "applied") and body["detail"]["code_version"]
    assert await version(client) == 2
    write(folder / "version.py", "def handle(request:\n")  # a syntax error
    status, body = await reload(client)
    assert (status, body["status"]) == (422, "invalid") and "version" in body["detail"]
    assert await version(client) == 2  # what imported keeps serving
    assert (await reload(client))[1]["status"] == "invalid"  # ...until the code is fixed


async def test_the_watcher_reloads_changed_code_when_asked_to(live: Any, package: tuple[str, Path]) -> None:
    name, folder = package
    client, _ = await live(config(name, server={"watch_config": False, "watch_code": True}))
    assert await version(client) == 1
    write(folder / "version.py", 2)
    for _ in range(100):  # bounded: the code is looked at about once a second
        if await version(client) == 2:
            break
        await asyncio.sleep(0.1)
    assert await version(client) == 2
    write(folder / "version.py", "def handle(request:\n")  # broken: the old code keeps serving
    await asyncio.sleep(2.5)
    stats = await (await client.get("/stats", headers=ADMIN)).json()
    assert await version(client) == 2 and "version" in stats["config"]["last_error"]
    reloads = stats["config"]["reloads"]
    assert [(r["trigger"], r["generation"]) for r in reloads] == [("code changed", 1)]  # the same config


async def test_without_watch_code_changed_code_waits_for_a_reload(
    live: Any, package: tuple[str, Path]
) -> None:
    name, folder = package
    client, _ = await live(config(name))
    write(folder / "version.py", 2)
    await asyncio.sleep(1.5)  # past the code watcher's interval, were it on
    assert await version(client) == 1
    assert (await reload(client))[0] == 200 and await version(client) == 2


@pytest.mark.docker
async def test_the_container_pool_rolls_to_new_code_without_failing_a_request(
    live: Any, package: tuple[str, Path], docker_settings: dict[str, Any]
) -> None:
    name, folder = package
    docker = {**docker_settings, "warm_pool_size": 2, "max_containers": 4}
    client, _ = await live(config(name, execution_mode="docker", docker=docker))
    assert await version(client) == 1
    seen: Counter[int] = Counter()
    rolled = asyncio.Event()

    async def traffic() -> None:
        for _ in range(2000):  # bounded; ends once the new code has answered a while
            seen[await version(client)] += 1  # any failure fails the test
            if rolled.is_set() and seen[2] >= 20:
                return

    load = asyncio.create_task(traffic())
    await asyncio.sleep(0.3)
    write(folder / "version.py", 2)
    status, body = await reload(client)
    assert (status, body["status"]) == (200, "applied")
    rolled.set()
    await asyncio.wait_for(load, 60)
    assert seen[1] >= 1 and seen[2] >= 20
    for _ in range(300):  # bounded: every container of the old code goes
        pool = (await (await client.get("/stats", headers=ADMIN)).json())["docker"]
        if pool["code_versions"] == {body["detail"]["code_version"]: pool["size"]} and not pool["creating"]:
            break
        await asyncio.sleep(0.1)
    assert pool["code_versions"] == {body["detail"]["code_version"]: pool["size"]}, pool


ASGI_APP = """
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({{"type": "lifespan.startup.complete"}})
        await send({{"type": "lifespan.shutdown.complete"}})
        return
    headers = [(b"content-type", b"application/json")]
    await send({{"type": "http.response.start", "status": 200, "headers": headers}})
    await send({{"type": "http.response.body", "body": b'{{"v": {v}}}'}})
"""


def asgi_threads() -> int:
    return sum(t.name == "isogate-asgi" for t in threading.enumerate())


async def test_a_replaced_asgi_app_stops_and_a_failed_reload_keeps_the_app_it_had(
    live: Any, tmp_path: Path
) -> None:
    source = tmp_path / f"asgisrc_{uuid.uuid4().hex[:8]}"
    source.mkdir()
    module = f"asgiv_{uuid.uuid4().hex[:8]}"
    write(source / f"{module}.py", ASGI_APP.format(v=1))
    write(source / "other.py", ASGI_APP.format(v=3))
    apps = {"a": {"source": str(source), "target": f"{module}:app"}}
    routes = [{"path": "/a/*", "app": "a"}]
    client, files = await live({**BASE, "apps": apps, "routes": routes})
    before = asgi_threads()

    async def answer() -> int:
        response = await client.get("/a/x", headers=TRUSTED)
        assert response.status == 200, await response.text()
        return int((await response.json())["v"])

    assert await answer() == 1 and asgi_threads() == before + 1
    write(source / f"{module}.py", ASGI_APP.format(v=2))
    assert (await reload(client))[0] == 200
    assert await answer() == 2
    for _ in range(100):  # bounded: the old app's loop thread ends in the background
        if asgi_threads() == before + 1:
            break
        await asyncio.sleep(0.05)
    assert asgi_threads() == before + 1  # only the new app's loop is left
    # A new target for `a` and a broken app `b` in one edit: refused, and `a` keeps its running code.
    broken = {"a": {**apps["a"], "target": "other:app"}, "b": {"source": str(source), "target": "nope:app"}}
    files.write({**BASE, "apps": broken, "routes": [*routes, {"path": "/b/*", "app": "b"}]})
    assert (await reload(client))[0] == 422
    assert await answer() == 2 and asgi_threads() == before + 1
