"""The real Docker engine for container tests: engine and runner image checked, probe and replica images
built, and every container a test run leaves behind removed by its label."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROBE_IMAGE = "isogate-runner:probes"
REPLICA_IMAGE = "isogate-example-app:tests"  # the example replica app, plus slow and big endpoints
POOL_PREFIX = "test-"


def prepare(runtime: str) -> None:
    """Fail (never skip) with the reason when the engine, the runtime or the runner image is missing."""
    info = ["docker", "info", "--format", "{{json .Runtimes}}"]
    engine = subprocess.run(info, capture_output=True, text=True)
    if engine.returncode != 0:
        pytest.fail(
            "container tests need a Docker engine and none answers: run scripts/runner-image.sh as root"
            f" (docker info: {engine.stderr.strip()[:200]})",
            pytrace=False,
        )
    if f'"{runtime}"' not in engine.stdout:
        pytest.fail(
            f"the engine has no runtime {runtime!r} ({engine.stdout.strip()}): scripts/gvisor.sh adds runsc",
            pytrace=False,
        )
    deps = ["scripts/deps-dir.sh", "tests/requirements-apps.txt", ".build/test-deps"]
    installed = subprocess.run(deps, cwd=ROOT, capture_output=True, text=True)
    if installed.returncode != 0:
        pytest.fail(f"could not install the test apps' packages: {installed.stderr[-500:]}", pytrace=False)
    for image, dockerfile in ((PROBE_IMAGE, "probes"), (REPLICA_IMAGE, "replica")):
        if dockerfile == "replica":  # FROM the example app, built from local material
            example = subprocess.run(["scripts/example-image.sh"], cwd=ROOT, capture_output=True, text=True)
            if example.returncode != 0:
                pytest.fail(f"scripts/example-image.sh failed: {example.stderr[-500:]}", pytrace=False)
        build = subprocess.run(
            ["docker", "build", "-q", "-t", image, "-f", f"tests/{dockerfile}.Dockerfile", "."],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if build.returncode != 0:
            pytest.fail(f"could not build {image} (is the runner image built? make image): {build.stderr}")


def pool_name() -> str:
    return f"{POOL_PREFIX}{uuid.uuid4().hex[:10]}"


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    """The docker CLI against this machine's engine."""
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True)


def labelled(pool_name: str, running_only: bool = False) -> list[str]:
    """The ids of the containers the engine has for pool `pool_name` (stopped ones too, unless told)."""
    command = ["docker", "ps", "-q", "--filter", f"label=isogate.pool={pool_name}"]
    return subprocess.run(
        command + ([] if running_only else ["-a"]), capture_output=True, text=True
    ).stdout.split()


def remove_test_containers() -> None:
    listed = subprocess.run(
        ["docker", "ps", "-aq", "--filter", "label=isogate.pool"],
        capture_output=True,
        text=True,
    ).stdout.split()
    ours = [
        cid
        for cid in listed
        if subprocess.run(
            ["docker", "inspect", "-f", '{{index .Config.Labels "isogate.pool"}}', cid],
            capture_output=True,
            text=True,
        ).stdout.startswith(POOL_PREFIX)
    ]
    if ours:
        subprocess.run(["docker", "rm", "-f", *ours], capture_output=True)


class EngineForwarder:
    """A Unix socket in front of the real engine's: stopping it makes the engine unreachable for real."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._server: asyncio.AbstractServer | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._forward, path=str(self.path))

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        self._writers.clear()
        self.path.unlink(missing_ok=True)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._server is None or not self._server.is_serving():  # accepted as stop() ran: never served
            writer.close()
            return
        self._writers.append(writer)  # first: stop() closes it even while the engine connection opens
        try:
            up_reader, up_writer = await asyncio.open_unix_connection("/var/run/docker.sock")
        except OSError:  # the engine refused
            writer.close()
            return
        except BaseException:  # cancelled with the test's loop: nothing left open
            writer.close()
            raise
        self._writers.append(up_writer)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


# Run inside the container as the agent's user: under gVisor the engine's exec Pid is the sandbox's own
# pid, not one the host can signal. Everything running `-m pool.agent` is killed but this process.
KILL_AGENT = """
import os, sys
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        command = open(f"/proc/{pid}/cmdline", "rb").read()
        if b"-m\\0pool.agent" in command and int(pid) != os.getpid():
            os.kill(int(pid), int(sys.argv[1]))
    except OSError:
        pass
"""


async def kill_agent(container_id: str, signal: int = 9) -> None:
    """SIGKILL (or `signal`) the agent of a container from inside it (a container already gone is not an
    error)."""
    process = await asyncio.create_subprocess_exec(
        *("docker", "exec", "-u", "65534:65534", container_id, "python3", "-c", KILL_AGENT, str(signal)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await asyncio.wait_for(process.wait(), 30)
    except TimeoutError:
        process.kill()
        await process.wait()
