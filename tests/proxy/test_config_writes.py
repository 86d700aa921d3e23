"""Every way tools and editors write config.yaml, done for real (a shell's `>`, cp, sed -i, mv, truncate, an
editor's truncate-then-write), against a gateway watching it and serving all the while: a half-written, empty
or cut-short file is never served, and a whole one is applied once."""

import asyncio
import os
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import BASE as SHARED
from conftest import Client, bearer

ADMIN = bearer("ops", role="admin")
PATHS = [f"/r{i}" for i in range(8)]


def config(*paths: str) -> dict[str, Any]:
    routes = [{"path": "/echo", "handler": "echo"}] + [{"path": p, "handler": "echo"} for p in paths]
    return {**SHARED, "thread_pool": {"max_per_entity": 8}, "routes": routes}


async def generation_and_error(client: Client) -> tuple[int, str | None]:
    body = (await (await client.get("/stats", headers=ADMIN)).json())["config"]
    return body["generation"], body["last_error"]


async def serving_while(client: Client, write: Callable[[], Awaitable[None]]) -> list[int]:
    """The statuses of /echo and /r0 requested back to back while `write` runs, and a second after."""
    statuses: list[int] = []
    done = asyncio.Event()

    async def load() -> None:
        for _ in range(20_000):  # bounded
            if done.is_set():
                return
            for path in ("/echo", "/r0"):
                async with client.get(path) as response:
                    statuses.append(response.status)

    task = asyncio.create_task(load())
    await write()
    await asyncio.sleep(1.0)  # the settle time and a reload, with margin
    done.set()
    await task
    return statuses


def sh(command: str, folder: Path) -> None:
    subprocess.run(["sh", "-c", command], cwd=folder, check=True, timeout=10)


async def slow_redirect(folder: Path) -> None:
    """`cat > config.yaml` fed slowly: the file is truncated, then written in two parts 150 ms apart."""
    command = "head -c 120 new.yaml; sleep 0.15; tail -c +121 new.yaml"
    with open(folder / "config.yaml", "wb") as target:
        process = await asyncio.create_subprocess_exec("sh", "-c", command, cwd=folder, stdout=target)
        assert await process.wait() == 0


async def editor_in_place(folder: Path) -> None:
    """An editor that keeps the inode (vim's backupcopy=yes): truncate, then write the buffer."""
    text = (folder / "new.yaml").read_bytes()
    with open(folder / "config.yaml", "r+b") as file:
        file.truncate(0)
        file.flush()
        os.fsync(file.fileno())
        await asyncio.sleep(0.12)  # more than a poll: the watcher sees the empty file
        file.write(text)


async def cp_over(folder: Path) -> None:
    sh("cp new.yaml config.yaml", folder)


async def sed_in_place(folder: Path) -> None:
    sh("sed -i 's/r0_placeholder/r0/' config.yaml", folder)


async def atomic_rename(folder: Path) -> None:
    sh("cp new.yaml .config.yaml.tmp && mv .config.yaml.tmp config.yaml", folder)


WRITES = {
    "slow shell redirect": slow_redirect,
    "editor truncate then write": editor_in_place,
    "cp over the file": cp_over,
    "atomic rename": atomic_rename,
}


@pytest.mark.parametrize("how", WRITES)
async def test_a_whole_file_is_applied_once_and_nothing_between_is_served(live: Any, how: str) -> None:
    client, files = await live(config(*PATHS[1:]))  # /r0 comes with the edit
    (files.folder / "new.yaml").write_text(yaml.safe_dump(config(*PATHS)))
    statuses = await serving_while(client, lambda: WRITES[how](files.folder))
    echo, r0 = statuses[0::2], statuses[1::2]
    assert set(echo) == {200}, "the running routes were never dropped"
    assert r0[-1] == 200 and 404 not in r0[r0.index(200) :]
    assert await generation_and_error(client) == (2, None)


async def test_sed_in_place_is_applied(live: Any) -> None:
    client, files = await live(config(*PATHS[1:], "/r0_placeholder"))
    statuses = await serving_while(client, lambda: sed_in_place(files.folder))
    assert "/r0_placeholder" not in files.path.read_text()
    assert set(statuses[0::2]) == {200} and statuses[-1] == 200
    assert await generation_and_error(client) == (2, None)


async def test_an_empty_file_is_never_applied(live: Any) -> None:
    client, files = await live(config(*PATHS))
    statuses = await serving_while(
        client, lambda: asyncio.to_thread(sh, "truncate -s 0 config.yaml", files.folder)
    )
    assert set(statuses) == {200}
    generation, error = await generation_and_error(client)
    assert generation == 1 and error is not None and "is empty" in error


async def test_a_file_cut_short_is_refused_by_the_watcher_and_applied_on_request(live: Any) -> None:
    client, files = await live(config(*PATHS))
    whole = config(*PATHS)
    head = yaml.safe_dump({k: v for k, v in whole.items() if k != "routes"})
    (files.folder / "whole.yaml").write_text(head + yaml.safe_dump({"routes": whole["routes"]}))
    # A copy that stopped at a line boundary: valid YAML, a valid config, 7 of 9 routes gone.
    lines = len(head.splitlines()) + 1 + 2 * 2  # `routes:`, then two lines a route
    write = lambda: asyncio.to_thread(sh, f"head -n {lines} whole.yaml > config.yaml", files.folder)  # noqa: E731
    statuses = await serving_while(client, write)
    assert set(statuses) == {200}
    generation, error = await generation_and_error(client)
    assert generation == 1 and error is not None
    assert "not applied: it removes" in error and "SIGHUP or POST /admin/reload" in error
    metrics = await (await client.get("/metrics", headers=ADMIN)).text()
    assert 'isogate_reloads_total{result="refused"} 1.0' in metrics
    applied = await client.post("/admin/reload", headers=ADMIN)  # the operator means it
    assert (await applied.json())["status"] == "applied"
    assert (await client.get("/r7")).status == 404


async def test_removing_every_route_is_refused_even_when_the_share_allows_it(live: Any) -> None:
    client, files = await live({**config("/r0"), "server": {"watch_max_routes_removed": 1.0}})
    files.write({**SHARED, "server": {"watch_max_routes_removed": 1.0}, "routes": []})
    for _ in range(30):  # bounded: 3 s
        await asyncio.sleep(0.1)
        if (await generation_and_error(client))[1]:
            break
    generation, error = await generation_and_error(client)
    assert generation == 1 and error is not None and "it has no routes" in error
    assert (await client.get("/r0")).status == 200
