"""One Docker engine as a container pool sees it: the connection, this pool's containers there (leftovers of
an earlier run removed, listed, created), and the engine's OOM and death events for them. The pool above
(pool/containers.py) decides how many containers there are and who gets which; this side only talks to
the engine, every call under a deadline (pool/engine.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiodocker
import aiohttp
from aiodocker.containers import DockerContainer

from pool.base import ImageMissing
from pool.engine import EngineTimeout, deadline
from pool.oom import OomWatch
from pool.sandbox import Sandbox, SandboxDied
from pool.settings import ContainerLimits
from pool.workload import Workload

log = logging.getLogger("isogate.pool")


class TlsFilesError(OSError):
    """docker.cert_path's files cannot be used (missing, unreadable, not PEM, a key others can read)."""


LOCAL = "unix:///var/run/docker.sock"  # this machine's engine
IMAGE_S = 600.0  # sending an image to a remote engine (the runner image: 5 s here)


# What an engine call may raise when the engine is down, slow or lost a container mid-call.
ENGINE_ERRORS = (aiodocker.DockerError, aiohttp.ClientError, OSError, SandboxDied, EngineTimeout)


class EngineConnection:
    def __init__(self, host: str, cert_path: str, label: str, on_die: Callable[[str], None]) -> None:
        self.host, self.cert_path = host, cert_path  # docker.host ("": the local socket), docker.cert_path
        self.label = label  # `isogate.pool=<name>`: this pool's containers only
        self.client: aiodocker.Docker | None = None
        self._oom = OomWatch(label, on_die)

    async def connect(self, image: str) -> asyncio.Task[None]:
        """A new connection once the engine answers, has `image` (ImageMissing otherwise) and this pool's
        leftovers are removed; the previous one is closed then. Returns the task that follows the
        engine's events on it."""
        client = engine_client(self.host, self.cert_path)
        try:
            await deadline(client.version())
            if not await has_image(client, image):
                if not self.host.startswith("tcp://"):
                    raise ImageMissing(f"image {image} is not on the docker engine (build or load it)")
                await send_image(image, client)  # a remote engine gets it from this machine's
            await self._remove_leftovers(client)
        except BaseException:
            await client.close()
            raise
        if self.client is not None:
            await self.client.close()
        self.client = client
        return asyncio.create_task(self._oom.run(client))

    async def containers(self, client: aiodocker.Docker | None = None) -> list[DockerContainer]:
        """Every container of this pool the engine has, running or not."""
        client = client or self._connected()
        return await deadline(client.containers.list(all=True, filters=json.dumps({"label": [self.label]})))

    async def create(
        self, config: ContainerLimits, spec: dict[str, Any], name: str, workload: Workload
    ) -> Sandbox:
        return await Sandbox.create(self._connected(), config, spec, name, workload)

    async def oom_killed(self, sandbox: Sandbox) -> bool:
        """Whether `sandbox`'s agent died of an OOM kill (pool/oom.py)."""
        return self.client is not None and await self._oom.killed(self.client, sandbox)

    def forget(self, container_id: str) -> None:
        """A container destroyed: its OOM event, if one came, is of no more use."""
        self._oom.forget(container_id)

    async def aclose(self) -> None:
        """Remove every container of this pool the engine still has, then close the connection."""
        if self.client is None:
            return
        try:
            await self._remove_leftovers(self.client)
        except ENGINE_ERRORS as exc:
            log.warning("could not remove this pool's containers: %s", exc)
        await self.client.close()

    def _connected(self) -> aiodocker.Docker:
        assert self.client is not None, "EngineConnection.connect() first"
        return self.client

    async def _remove_leftovers(self, client: aiodocker.Docker) -> None:
        """Containers of this pool from an earlier run (crashed gateway, restarted engine) are removed."""
        leftovers = await self.containers(client)
        await asyncio.gather(*(deadline(c.delete(force=True)) for c in leftovers))  # one at a time: seconds
        if leftovers:
            log.info("removed %d containers left by an earlier run", len(leftovers))


def engine_client(host: str, cert_path: str) -> aiodocker.Docker:
    """A client of the engine at `host`: the local socket when empty, TLS verified both ways for tcp://."""
    if host.startswith("tcp://"):
        return aiodocker.Docker(url="https://" + host[len("tcp://") :], ssl_context=tls_context(cert_path))
    return aiodocker.Docker(url=host or LOCAL)


def tls_context(cert_path: str) -> ssl.SSLContext:
    """The engine's CA (ca.pem) and the gateway's certificate and key (cert.pem, key.pem), Docker's names.
    TlsFilesError when one is missing or unreadable, or when the key is readable by others than its owner."""
    folder = Path(cert_path)
    key = folder / "key.pem"
    try:
        mode = key.stat().st_mode
        if mode & 0o077:
            raise TlsFilesError(f"{key} is readable by others (mode {mode & 0o777:o}): chmod 600")
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(folder / "ca.pem"))
        context.load_cert_chain(folder / "cert.pem", key)
    except TlsFilesError:
        raise
    except OSError as exc:  # ssl.SSLError included: a file that is not what its name says
        raise TlsFilesError(f"{cert_path}: {exc.strerror or exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


async def has_image(client: aiodocker.Docker, image: str) -> bool:
    try:
        await deadline(client.images.inspect(image))
    except aiodocker.DockerError as exc:
        if exc.status == 404:
            return False
        raise
    return True


async def send_image(image: str, to: aiodocker.Docker) -> None:
    """`image` from this machine's engine to `to`, through the engine API (`docker save | docker load`, no
    registry), within IMAGE_S. ImageMissing when this machine's engine lacks it too."""
    async with aiodocker.Docker(url=LOCAL) as local:
        if not await has_image(local, image):
            raise ImageMissing(f"image {image} is neither on the docker engine nor on this machine's to send")
        log.info("sending image %s to the docker engine at %s", image, to.docker_host)
        started = time.monotonic()

        async def send() -> None:
            async with local.images.export_image(image) as tarball:
                await to.images.import_image(data=tarball)

        await deadline(send(), IMAGE_S)
    if not await has_image(to, image):
        raise ImageMissing(f"image {image} was sent to the docker engine, which did not keep it")
    log.info("image %s sent in %.1f s", image, time.monotonic() - started)
