"""One Docker engine as a container pool sees it: the connection, this pool's containers there (leftovers of
an earlier run removed, listed, created), the engine's OOM and death events for them, and whether it is up.
The pool above (pool/containers.py) decides how many containers there are, on which engine, and who gets
which; this side only talks to the engine, every call under a deadline (pool/engine.py)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import logging
import secrets
import ssl
import tarfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiodocker
import aiohttp
from aiodocker.containers import DockerContainer
from aiodocker.volumes import DockerVolume

from pool.base import ImageMissing
from pool.engine import EngineTimeout, deadline
from pool.oom import OomWatch
from pool.sandbox import Sandbox, SandboxDied, remove
from pool.settings import ContainerLimits, EngineLimits
from pool.workload import Workload

log = logging.getLogger("isogate.pool")


class TlsFilesError(OSError):
    """docker.cert_path's files cannot be used (missing, unreadable, not PEM, a key others can read)."""


LOCAL = "unix:///var/run/docker.sock"  # this machine's engine
CODE_VOLUME = "isogate-code-"  # + the sha256 of what it holds: a remote engine's copy of handler or app code
FILLED = ".isogate-filled"  # written last into a code volume: one without it is filled again
TLS_CLOSE_S = 0.25
WARN_EVERY_S = 60.0  # an engine that stays down is said to be so again this often, not at every retry
IMAGE_S = 600.0  # sending an image to a remote engine (the runner image: 5 s here)


# What an engine call may raise when the engine is down, slow or lost a container mid-call.
ENGINE_ERRORS = (aiodocker.DockerError, aiohttp.ClientError, OSError, SandboxDied, EngineTimeout)


class EngineConnection:
    def __init__(self, engine: EngineLimits, label: str, prefix: str, on_die: Callable[[str], None]) -> None:
        self.host, self.cert_path = engine.host, engine.cert_path  # "" host: the local socket
        self.name = engine.host or LOCAL  # how the pool's figures and the log name it
        self.runtime = engine.runtime  # the OCI runtime its containers run under ("": docker.runtime)
        self.share = engine.share  # its part of the pool's sizes, against the other engines'
        self.label = label  # `isogate.pool=<name>`: this pool's containers only
        self.prefix = prefix  # how the names of the containers it makes begin (pool.sandbox.name_prefix)
        self.client: aiodocker.Docker | None = None
        self._events: asyncio.Task[None] | None = None  # following the engine's OOM and death events
        self.up = False  # connected, and answering: the pool places containers here
        self.reason: str | None = "not started"  # why not, when not
        self.missing_image = False  # ...because the image is on neither engine
        self.max_containers = self.warm_pool_size = 0  # the pool's sizes, this engine's part of them
        self.creating = 0  # containers being created here
        self.counts = {"created": 0, "faults": 0, "downs": 0}
        self._said_at, self._said = 0.0, ""  # when its being down was last said (logged), and why
        self._said_down = False  # ...and not yet that it serves again
        self._shared_said_at = -WARN_EVERY_S  # when another gateway's containers of this pool were last said
        self._oom = OomWatch(label, on_die)
        self._volumes: set[str] = set()  # code volumes this pool used on the engine: removed at close
        self._known: set[str] = set()  # ...known filled, on the current connection (an engine may lose them)
        self._versions: dict[tuple[str, str], str] = {}  # (folder, code version): its volume
        self._filling = asyncio.Lock()  # a burst creates many containers: one fill at a time
        # names of the code volume helpers in use (the pool's reconcile spares them)
        self.helpers: set[str] = set()

    def join(self) -> None:
        """Connected and serving: the pool places containers here."""
        self.up, self.reason, self.missing_image = True, None, False

    def leave(self, exc: BaseException) -> bool:
        """Left out of the pool for `exc` until it answers again. Whether that is to be said (logged): as it
        starts or its kind changes, then once every WARN_EVERY_S, not at every retry."""
        self.missing_image = isinstance(exc, ImageMissing)
        self.reason = str(exc) if self.missing_image else f"docker engine unreachable: {exc}"[:300]
        self.counts["downs"] += self.up
        self.up = False
        now, kind = time.monotonic(), type(exc).__name__
        if kind == self._said and now - self._said_at < WARN_EVERY_S:
            return False
        self._said_at, self._said, self._said_down = now, kind, True
        return True

    def said_shared(self) -> bool:
        """Whether to say (log) that another gateway makes containers of this pool here: once a minute."""
        now = time.monotonic()
        if now - self._shared_said_at < WARN_EVERY_S:
            return False
        self._shared_said_at = now
        return True

    def serving(self) -> bool:
        """Its part of the warm pool filled after join(). Whether to say it serves again (its being down
        was said); a later outage is said again at once."""
        said, self._said_down, self._said = self._said_down, False, ""
        return said

    def status(self, idle: int, busy: int, runtime: str) -> dict[str, object]:
        """Its part of the pool's /stats: `idle` and `busy` containers there, under `runtime`."""
        return {
            "engine": self.name,
            "up": self.up,
            "reason": self.reason,
            "runtime": runtime,
            "share": self.share,
            "warm_pool_size": self.warm_pool_size,
            "max_containers": self.max_containers,
            "idle": idle,
            "busy": busy,
            "creating": self.creating,
            **self.counts,
        }

    @property
    def remote(self) -> bool:
        """An engine over TCP: it cannot see this machine's folders, nor its images."""
        return self.host.startswith("tcp://")

    async def connect(self, image: str) -> None:
        """A new connection once the engine answers, has `image` (ImageMissing otherwise) and this pool's
        leftovers are removed; the previous one is closed then, and the engine's events followed on the
        new one."""
        client = engine_client(self.host, self.cert_path)
        try:
            await deadline(client.version())
            if not await has_image(client, image):
                if not self.remote:
                    raise ImageMissing(f"image {image} is not on the docker engine (build or load it)")
                await send_image(image, client)  # a remote engine gets it from this machine's
            await self._remove_leftovers(client)
        except BaseException:  # a cancelled supervisor too: the close must not be cut short itself
            await asyncio.shield(self._close(client))
            raise
        await self.stop_events()
        if self.client is not None:
            await self._close(self.client)
        self.client = client
        self._known.clear()  # a restarted engine may have lost its volumes: each is checked again
        self._versions.clear()
        self._events = asyncio.create_task(self._oom.run(client))

    async def stop_events(self) -> None:
        """Stop following the engine's events (no death is reported to the pool after this)."""
        if self._events is not None:
            self._events.cancel()
            await asyncio.gather(self._events, return_exceptions=True)
            self._events = None

    def made_here(self, container: DockerContainer) -> bool:
        """Whether this pool made `container` (its name begins with the pool's prefix)."""
        return any(name.lstrip("/").startswith(self.prefix) for name in container["Names"] or ())

    async def containers(self, client: aiodocker.Docker | None = None) -> list[DockerContainer]:
        """Every container of this pool the engine has, running or not."""
        client = client or self._connected()
        return await deadline(client.containers.list(all=True, filters=json.dumps({"label": [self.label]})))

    async def create(
        self, config: ContainerLimits, spec: dict[str, Any], name: str, workload: Workload
    ) -> Sandbox:
        made = await self._code_by_volume(spec, workload.code) if self.remote else spec
        sandbox = await Sandbox.create(self._connected(), config, made, name, workload)
        sandbox.spec, sandbox.engine = spec, self.name  # what the pool asked for (compared on a reload)
        return sandbox

    async def _code_by_volume(self, spec: dict[str, Any], version: str) -> dict[str, Any]:
        """A remote engine cannot see this machine's folders: each bind (the handler package, an app's
        source) becomes a read-only volume holding a copy, filled once per content digest. The digest is
        taken once per code `version` (HandlerRegistry.code_version; every time when there is none)."""
        host_config = spec["HostConfig"]
        mounts = []
        for bind in host_config.get("Binds") or ():
            source, target, _ = bind.rsplit(":", 2)
            volume = self._versions.get((source, version)) if version else None
            if volume is None:
                volume = await self._code_volume(Path(source), str(spec["Image"]))
                if version:
                    self._versions[(source, version)] = volume
            mounts.append({"Type": "volume", "Source": volume, "Target": target, "ReadOnly": True})
        if not mounts:
            return spec
        rest = {k: v for k, v in host_config.items() if k != "Binds"}
        return {**spec, "HostConfig": {**rest, "Mounts": mounts}}

    async def _code_volume(self, folder: Path, image: str) -> str:
        tarball = await asyncio.to_thread(code_tar, folder)
        name = CODE_VOLUME + hashlib.sha256(tarball).hexdigest()[:32]
        async with self._filling:
            if name not in self._known:
                if not await self._filled(name, image):
                    await self._fill(name, image, tarball)
                    log.info(
                        "code of %s sent to the docker engine at %s as volume %s", folder, self.host, name
                    )
                self._known.add(name)
                self._volumes.add(name)
        return name

    @contextlib.asynccontextmanager
    async def helper(self, volume: str, image: str) -> AsyncIterator[DockerContainer]:
        """A container never started, through which the engine API reads and writes `volume` (at /fill),
        removed after. It carries the pool's label (the leftover sweep removes it if the gateway dies here),
        so its name is in `helpers` while in use: the pool's reconcile would take it for a leftover, and
        remove it under a fill (a large code folder's upload then failed with 404, again and again)."""
        key, _, value = self.label.partition("=")
        mounts = [{"Type": "volume", "Source": volume, "Target": "/fill"}]
        config: dict[str, Any] = {
            "Image": image,
            "Cmd": ["true"],
            "NetworkDisabled": True,
            "Labels": {key: value},
            "HostConfig": {"NetworkMode": "none", "Mounts": mounts},
        }
        name = f"{self.prefix}fill-{secrets.token_hex(4)}"
        self.helpers.add(name)  # before it exists: a listing never sees it unnamed here
        try:
            container = await deadline(self._connected().containers.create(config, name=name))
            try:
                yield container
            finally:
                await remove(container)
        finally:
            self.helpers.discard(name)

    async def _filled(self, volume: str, image: str) -> bool:
        client = self._connected()
        try:
            await deadline(client.volumes.get(volume))  # type: ignore[no-untyped-call]
        except aiodocker.DockerError as exc:
            if exc.status == 404:
                return False
            raise
        async with self.helper(volume, image) as helper:
            try:
                await deadline(helper.get_archive(f"/fill/{FILLED}"))
            except aiodocker.DockerError as exc:
                if exc.status == 404:
                    return False
                raise
        return True

    async def _fill(self, volume: str, image: str, tarball: bytes) -> None:
        await deadline(self._connected().volumes.create({"Name": volume}))  # type: ignore[no-untyped-call]
        async with self.helper(volume, image) as helper:
            await deadline(helper.put_archive("/fill", tarball), IMAGE_S)  # type: ignore[no-untyped-call]
            await deadline(helper.put_archive("/fill", _member(FILLED, b"")))  # type: ignore[no-untyped-call]

    async def oom_killed(self, sandbox: Sandbox) -> bool:
        """Whether `sandbox`'s agent died of an OOM kill (pool/oom.py)."""
        return self.client is not None and await self._oom.killed(self.client, sandbox)

    def forget(self, container_id: str) -> None:
        """A container destroyed: its OOM event, if one came, is of no more use."""
        self._oom.forget(container_id)

    async def aclose(self) -> None:
        """Remove every container this pool made that the engine still has, and the code volumes it filled
        or used (one another gateway still uses stays), then close the connection."""
        if self.client is None:
            return
        try:
            ours = [c for c in await self.containers() if self.made_here(c)]  # (not another gateway's)
            await asyncio.gather(*(deadline(c.delete(force=True)) for c in ours))
        except ENGINE_ERRORS as exc:
            log.warning("could not remove this pool's containers: %s", exc)
        for volume in self._volumes:
            try:
                await deadline(DockerVolume(self.client, volume).delete())  # type: ignore[no-untyped-call]
            except ENGINE_ERRORS as exc:  # in use by another gateway's containers: theirs to remove
                log.info("code volume %s stays: %s", volume, exc)
        await self._close(self.client)

    async def _close(self, client: aiodocker.Docker) -> None:
        await client.close()
        if self.remote:  # aiohttp's advice: TLS connections finish closing in the next moments
            await asyncio.sleep(TLS_CLOSE_S)

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


def code_tar(folder: Path) -> bytes:
    """`folder`'s files as a tar the same bytes for the same contents (sorted, no times or owners; bytecode
    caches left out), readable by the containers' user."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(folder.rglob("*")):
            if "__pycache__" in path.parts or path.suffix == ".pyc" or path.is_symlink():
                continue
            info = tarfile.TarInfo(str(path.relative_to(folder)))
            if path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif path.is_file():
                data = path.read_bytes()
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _member(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


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
