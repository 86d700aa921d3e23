"""The runner image's dependency layer, rebuilt through the engine when `docker.requirements` changes.

`make run` builds the runner image with the file as it is then. When a reload finds the file changed,
the host's pip installs it into a folder (`--target`: the image's Python is 3.11, as the venv's), and the
engine builds `FROM docker.image` with that folder added at /opt/deps (no registry, and no network in the
build). The container pool then rolls to the new image, new containers warm before old ones go. Until
then a container's handler that imports a package the image lacks answers 503 dependency_missing.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from policy.config import DockerConfig
from pool.connection import engine_client

log = logging.getLogger("isogate.deps")
PIP_TIMEOUT_S = 600.0


def digest_of(requirements: Path) -> str | None:
    """The file's sha256 when it names packages (comments and blank lines alone name none)."""
    try:
        text = requirements.read_text(encoding="utf-8")
    except OSError:
        return None
    lines = [line.strip() for line in text.splitlines()]
    if not any(line and not line.startswith("#") for line in lines):
        return None
    return hashlib.sha256(text.encode()).hexdigest()


class DependencyLayer:
    """The image the handler containers run, when a requirements edit made one since the gateway started."""

    def __init__(self) -> None:
        self.image: str | None = None  # the built image in use (None: docker.image as configured)
        self.state = "as built by make"
        self._digest: str | None = None  # what the image in use was built from
        self._started = False
        self._task: asyncio.Task[None] | None = None

    def status(self) -> dict[str, object]:
        return {"image": self.image, "state": self.state}

    def follow(self, docker: DockerConfig, base_dir: Path, ready: Callable[[], None]) -> None:
        """Build a layer for the file as it is now, if it changed since the last one (at start: the image
        as make built it); `ready` once the layer is the image in use."""
        if not docker.enabled or not docker.requirements:
            return
        path = base_dir / docker.requirements
        digest = digest_of(path)
        if not self._started:  # the gateway's start: the image was built from the file as it is
            self._started, self._digest = True, digest
            return
        if digest == self._digest or digest is None:
            return
        if self._task is not None:
            self._task.cancel()  # a newer edit: its layer is the one wanted
        self._task = asyncio.create_task(self._build(path, digest, docker, ready))

    async def _build(self, path: Path, digest: str, docker: DockerConfig, ready: Callable[[], None]) -> None:
        base = docker.image
        tag = f"{base.rpartition(':')[0] or base}:deps-{digest[:12]}"
        self.state = f"building {tag} from {path.name}"
        log.info("docker.requirements changed: building %s", tag)
        try:
            with tempfile.TemporaryDirectory(prefix="isogate-deps-") as folder:
                await self._pip(path, Path(folder) / "deps")
                context = await asyncio.to_thread(_context, Path(folder), base, digest)
                async with engine_client(docker.host, docker.cert_path) as client:
                    await client.images.build(fileobj=context, encoding="identity", tag=tag, rm=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # pip, the engine, the file system: said, and the old image serves on
            self.state = f"failed: {type(exc).__name__}: {exc}"[:300]
            log.warning("docker.requirements: %s (the image in use serves on)", self.state)
            return
        self.image, self._digest, self.state = tag, digest, f"{tag} in use"
        log.info("docker.requirements: %s built; the container pool rolls to it", tag)
        ready()

    async def _pip(self, requirements: Path, target: Path) -> None:
        pip = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-compile"]
        process = await asyncio.create_subprocess_exec(
            *pip, "--target", str(target), "-r", str(requirements),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            output, _ = await asyncio.wait_for(process.communicate(), PIP_TIMEOUT_S)
        except BaseException:
            process.kill()
            raise
        if process.returncode != 0:
            raise RuntimeError(f"pip install failed: {output.decode(errors='replace').strip()[-200:]}")


def _context(folder: Path, base: str, digest: str) -> io.BytesIO:
    """The build context: a Dockerfile adding deps/ at /opt/deps (the runner's PYTHONPATH has it)."""
    (folder / "Dockerfile").write_text(
        f"FROM {base}\nCOPY deps/ /opt/deps/\nLABEL isogate.requirements={digest}\n", encoding="utf-8"
    )
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        tar.add(folder, arcname=".")
    out.seek(0)
    return out
