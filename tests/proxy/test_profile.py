"""The profile factor through the gateway: fitted from a corpus named in config, and learned live from
traffic, written to its file and picked up by the config watcher."""

import asyncio
import json
import time
from typing import Any

from conftest import BASE as SHARED
from conftest import Client, bearer

BASE: dict[str, Any] = {
    **SHARED,
    "routes": [{"path": "/shop/*", "handler": "echo", "methods": ["GET", "POST"]}],
}
TRUSTED = bearer("buyer", trust="trusted")


def corpus(count: int) -> str:
    lines = [{"method": "GET", "uri": f"/shop/item?id={i}&qty={i % 4 + 1}"} for i in range(count)]
    lines.append({"method": "GET", "uri": "/shop/item?id=1'--", "expect_attack": True})  # never learned
    return "\n".join(json.dumps(line) for line in lines) + "\n"


async def factors(client: Client, uri: str) -> str:
    return (await client.get(uri, headers=TRUSTED)).headers["X-Isogate-Factors"]


async def test_a_profile_fitted_from_a_corpus_in_config_flags_tampering(live: Any) -> None:
    config = {**BASE, "risk": {"profile": {"corpus": "normal.jsonl"}}}
    client, _ = await live(config, files_first={"normal.jsonl": corpus(50)})
    assert "profile" not in await factors(client, "/shop/item?id=9&qty=2")
    assert "profile=35" in await factors(client, "/shop/item?idA=9&qty=2")  # parameter tampering
    assert "profile=35" in await factors(client, "/shop/item.bak")


async def test_a_profile_is_learned_live_written_and_loaded(live: Any) -> None:
    config = {**BASE, "risk": {"profile": {"file": "profile.json", "learn_requests": 5}}}
    client, files = await live(config)
    assert not (files.folder / "profile.json").exists()
    await client.get("/shop/item?id=1%27--&debug=1", headers=TRUSTED)  # flagged by a detector: not learned
    for i in range(5):  # every unflagged request teaches the profile, this one included
        assert "profile" not in await factors(client, f"/shop/item?id={i}&qty=2")
    started = time.monotonic()
    while (await factors(client, "/shop/item?idA=1")).find("profile") < 0:  # tampering, after learning
        assert time.monotonic() - started < 3, "the learned profile was not loaded"
        await asyncio.sleep(0.05)
    learned = json.loads((files.folder / "profile.json").read_text())
    assert set(learned["/shop/item"]["params"]) == {"id", "qty"}  # the attack's parameters are not there
    assert "profile" not in await factors(client, "/shop/item?id=3&qty=2")
