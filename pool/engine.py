"""Deadlines on Docker engine calls. aiodocker's client has no total timeout, so a hung engine would freeze
whatever awaits it (the supervisor, refills, the crash path, shutdown); every call the pool makes goes
through `deadline` instead. `unreachable` tells an engine that did not answer from one that refused."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

import aiodocker
import aiohttp

T = TypeVar("T")

CALL_S = 10.0  # one API call: list, inspect, kill, delete, version
CREATE_S = 30.0  # create + start + exec + the agent's ready frame


class EngineTimeout(Exception):
    """The engine did not answer within the deadline."""


async def deadline(call: Awaitable[T], seconds: float | None = None) -> T:
    """Await one engine call; EngineTimeout when it takes longer than `seconds` (default CALL_S)."""
    seconds = CALL_S if seconds is None else seconds
    try:
        async with asyncio.timeout(seconds):
            return await call
    except TimeoutError:
        raise EngineTimeout(f"the docker engine did not answer within {seconds:.0f} s") from None


def unreachable(exc: BaseException) -> bool:
    """Whether `exc` says the engine did not answer (rather than answered with an error)."""
    if isinstance(exc, aiodocker.DockerError):
        return exc.status == 900  # aiodocker's word for a connection that failed
    return isinstance(exc, (aiohttp.ClientError, OSError, EngineTimeout))
