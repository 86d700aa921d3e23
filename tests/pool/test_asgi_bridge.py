"""pool.apps: a retired ASGI app (a reload replaced it) finishes its running requests, gets lifespan shutdown,
and its loop thread ends; nothing of it keeps running in the gateway."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from handlers import Request
from pool.apps import AsgiBridge

Scope = dict[str, Any]


class Recorder:
    """A bare ASGI app: lifespan events in `events`; `/slow` answers once `release` is set."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.release = threading.Event()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                self.events.append(message["type"])
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        if scope["path"] == "/slow":
            await asyncio.to_thread(self.release.wait, 5)
        self.events.append(f"answered {scope['path']}")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def asgi_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "isogate-asgi"]


def test_a_closed_app_finishes_its_requests_then_shuts_down_and_its_thread_ends() -> None:
    before = len(asgi_threads())
    app = Recorder()
    bridge = AsgiBridge(app)
    assert bridge.call(Request("GET", "/fast"), "").body == b"ok"
    assert len(asgi_threads()) == before + 1
    slow = bridge.submit(Request("GET", "/slow"), "")
    stopper = bridge.close()
    assert stopper is not None
    stopper.join(0.3)
    assert stopper.is_alive() and "lifespan.shutdown" not in app.events  # waits for the running request
    app.release.set()
    assert slow.result(5).body == b"ok"
    stopper.join(10)
    assert app.events == ["lifespan.startup", "answered /fast", "answered /slow", "lifespan.shutdown"]
    assert len(asgi_threads()) == before
    with pytest.raises(RuntimeError, match="replaced by a reload"):
        bridge.call(Request("GET", "/fast"), "")


def test_closing_an_app_that_never_ran_starts_nothing() -> None:
    assert AsgiBridge(Recorder()).close() is None
