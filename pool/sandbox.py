"""One sandbox: a locked-down container and the agent inside it, reached through one long-lived exec.

Requests travel as frames (`pool.frames`) over the exec's stdin/stdout; stderr is kept apart, bounded, and
logged. A sandbox serves one request at a time; once broken it never serves again.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

import aiodocker
import aiohttp
from aiodocker.containers import DockerContainer
from aiodocker.stream import Stream

from handlers import Request, Response
from pool.base import one_line
from pool.engine import CREATE_S, EngineTimeout, deadline, unreachable
from pool.frames import PING, decode, encode
from pool.settings import ContainerLimits
from pool.workload import LABEL, Workload

log = logging.getLogger("isogate.pool.sandbox")

UID = "65534:65534"  # nobody: the agent never runs as root
STDERR_LIMIT = 4096  # bytes of a sandbox's stderr kept for the log
GVISOR_BASE_TASKS, GVISOR_TASKS_PER_PROCESS = 128, 8  # host tasks of a runsc sandbox, with headroom


class SandboxDied(Exception):
    """The agent's stream ended: the agent or its container is gone."""


class NotDelivered(SandboxDied):
    """The request could not even be written: no handler saw it, so another sandbox may serve it."""


def name_prefix(pool: str) -> str:
    """How the names of one pool's containers begin, in this process: `pool` (its label) and a token of
    this pool object, so that containers another gateway makes under the same pool name are told apart."""
    return f"isogate-{pool}-{secrets.token_hex(3)}-"


def container_name(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


def gvisor(runtime: str) -> bool:
    """runsc, or a variant registered under a runsc-* name: gVisor's user-space kernel."""
    return runtime == "runsc" or runtime.startswith("runsc-")


def container_config(docker: ContainerLimits, workload: Workload, runtime: str = "") -> dict[str, Any]:
    """The container: no network, read-only root, no capabilities, bounded memory, CPU and processes.
    A replica keeps its image's command and working directory; every other setting is the same. `runtime`:
    the engine's own, when it names one (else docker.runtime)."""
    runtime = runtime or docker.runtime
    pids_limit, ulimits = docker.pids_limit, [{"Name": "nofile", "Soft": 1024, "Hard": 1024}]
    if gvisor(runtime):
        # gVisor's kernel counts the handler's processes itself (RLIMIT_NPROC is per sandbox there; under
        # runc it would be per host uid, shared by every container). The host's pids limit counts the
        # sandbox's own threads: measured ~60 idle and ~5 per process inside. A sandbox that cannot make
        # one dies (exit 2), so the host limit is sized for the processes the inner limit lets run.
        pids_limit = GVISOR_BASE_TASKS + GVISOR_TASKS_PER_PROCESS * docker.pids_limit
        ulimits.append({"Name": "nproc", "Soft": docker.pids_limit, "Hard": docker.pids_limit})
    own = {} if workload.replica else {"Cmd": ["sleep", "infinity"], "WorkingDir": "/app"}
    return {
        "Image": workload.image or docker.image,
        **own,
        "User": UID,
        "Labels": {LABEL: workload.pool_name(docker.pool_name), **workload.labels()},
        "NetworkDisabled": True,
        "HostConfig": {
            "Runtime": runtime,
            "Memory": docker.memory_limit_bytes,
            "MemorySwap": docker.memory_limit_bytes,  # equal to the limit: no swap to spill into
            "NanoCpus": int(docker.cpu_limit * 1e9),
            "PidsLimit": pids_limit,
            "NetworkMode": "none",
            "ReadonlyRootfs": True,
            "Tmpfs": {"/tmp": f"rw,nosuid,nodev,noexec,size={docker.tmpfs_size}"},
            "CapDrop": ["ALL"],
            "SecurityOpt": ["no-new-privileges"],
            "IpcMode": "private",
            "ShmSize": docker.tmpfs_size_bytes,  # /dev/shm: as small as /tmp, noexec (Docker's default)
            "Init": True,  # docker-init as PID 1 reaps whatever outlives its parent
            "Ulimits": ulimits,
            "Binds": workload.binds(),
        },
    }


class Sandbox:
    def __init__(self, container: DockerContainer, stream: Stream, exec_id: str, max_response: int) -> None:
        self.container = container
        self.id: str = container.id
        self._stream = stream
        self.exec_id = exec_id
        self._buffer = bytearray()
        self._stderr = bytearray()
        self.uses = 0
        self.idle_since = time.monotonic()
        self.broken = False
        self.container_died = False  # the engine reported the container's death during a call
        self.gvisor = False  # runs under gVisor (runtime runsc)
        self.engine = ""  # the name of the engine it runs on (pool.connection)
        self.spec: dict[str, Any] = {}  # the container config it was made from (the pool compares on reload)
        self.max_response = max_response  # docker.max_response_bytes, as the agent was started with
        self.entity: str | None = None  # whom the agent's session serves (see pool.agent)
        self.checked_at = time.monotonic()  # when its agent last answered (a request or a ping)
        self.acks = False  # its agent acknowledges each request frame before it serves it
        self.pinging = False

    @classmethod
    async def create(
        cls,
        client: aiodocker.Docker,
        docker: ContainerLimits,
        spec: dict[str, Any],
        name: str,
        workload: Workload,
    ) -> Sandbox:
        """Create container `name` from `spec` (container_config of `docker`), start it, exec the agent
        once, and wait for its ready frame (within engine.CREATE_S: a hung engine, or a replica's app that
        never listens, raises EngineTimeout rather than hanging the pool)."""
        container = await deadline(client.containers.create(spec, name=name))
        agent = workload.agent(docker.max_response_bytes)
        try:
            sandbox = await deadline(cls._start(container, agent, docker.max_response_bytes), CREATE_S)
        except BaseException:
            await remove(container)
            raise
        sandbox.spec, sandbox.gvisor = spec, gvisor(spec["HostConfig"]["Runtime"])
        return sandbox

    @classmethod
    async def _start(cls, container: DockerContainer, command: list[str], max_response: int) -> Sandbox:
        stream: Stream | None = None
        try:
            await container.start()
            agent = await container.exec(
                command,
                stdin=True,
                stdout=True,
                stderr=True,
                tty=False,  # a tty would echo input and rewrite newlines in binary frames
                user=UID,
            )
            stream = agent.start(detach=False)
            sandbox = cls(container, stream, agent.id, max_response)
            ready, _ = await sandbox._read_frame()
            if not ready.get("ready"):
                raise SandboxDied(f"agent did not report ready: {ready}")
            sandbox.acks = bool(ready.get("acks"))  # (an image's agent older than acknowledgements: none)
        except BaseException:
            if stream is not None:
                await stream.close()
            raise
        return sandbox

    @property
    def alive(self) -> bool:
        """Its agent's stream is still open. An agent that exits (killed, crashed) ends its exec, and the
        engine closes the stream: seen here at once, with no I/O (aiodocker keeps the connection private)."""
        response = self._stream._resp
        connection = response.connection if response is not None else None
        transport = connection.transport if connection is not None else None
        return not self.broken and transport is not None and not transport.is_closing()

    async def ping(self) -> None:
        """A ping frame answered (an idle agent that hangs or died is found before a request meets it);
        raises SandboxDied otherwise. The caller bounds the wait."""
        self.pinging = self.broken = True
        try:
            await self._write(encode(PING))
            await self._read_frame()
            self.broken = False
            self.checked_at = time.monotonic()
        finally:
            self.pinging = False

    async def _write(self, frame: bytes) -> None:
        try:
            await self._stream.write_in(frame)
        except Exception:  # the agent died while idle: aiodocker asserts on a closed transport
            raise NotDelivered("the sandbox's agent was gone before the request was written") from None

    async def call(self, handler: str, request: Request) -> tuple[dict[str, Any], bytes]:
        """One round trip: the request frame in, the response (or error) frame out."""
        self.uses += 1
        self.entity = request.entity_id
        header = {
            "handler": handler,
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "headers": request.headers,
            "entity_id": request.entity_id,
        }
        self.broken = True  # until a whole answer is back: an interrupted call leaves the stream unusable
        await self._write(encode(header, request.body))
        if self.acks:  # no acknowledgement before the stream ended: the agent was dead before the request
            try:
                ack, _ = await self._read_frame(last=False)
            except SandboxDied:
                raise NotDelivered("the sandbox's agent was gone before it read the request") from None
            if not ack.get("ack"):
                raise SandboxDied("the agent answered without acknowledging the request")
        answer = await self._read_frame()
        self.broken = False
        self.idle_since = self.checked_at = time.monotonic()
        return answer

    async def _read_frame(self, last: bool = True) -> tuple[dict[str, Any], bytes]:
        """The next frame; when it is the `last` of an exchange, nothing may follow it."""
        while True:
            try:
                frame = decode(self._buffer, self.max_response)
            except Exception as exc:  # a bad length, bad JSON, a header nested past the recursion limit
                raise SandboxDied(f"corrupt frame stream: {type(exc).__name__}: {exc}"[:200]) from None
            if frame is not None:
                # The agent writes one answer a request: anything after the last frame is hostile.
                if last and self._buffer:
                    raise SandboxDied(f"{len(self._buffer)} stray bytes after the response frame")
                return frame
            message = await self._stream.read_out()
            if message is None:
                self._flush_stderr()
                raise SandboxDied("the agent's stream ended")
            if message.stream == 2:
                self._stderr += message.data[: STDERR_LIMIT - len(self._stderr)]
                if b"\n" in message.data:
                    self._flush_stderr()
            else:
                self._buffer += message.data

    def _flush_stderr(self) -> None:
        if self._stderr:
            text = one_line(self._stderr.decode("utf-8", "replace").rstrip(), STDERR_LIMIT)
            log.info("sandbox %s stderr: %s", self.id[:12], text)
            self._stderr.clear()

    async def destroy(self) -> None:
        """Kill and remove the container (its exec stream ends with it). Never raises."""
        self.broken = True
        try:
            await deadline(self._stream.close())
        except Exception as exc:  # a stream already broken: the container goes anyway
            log.debug("sandbox %s stream close: %s", self.id[:12], exc)
        finally:
            await remove(self.container)


async def remove(container: DockerContainer) -> None:
    """Force-remove. A container left behind is removed later: by the supervisor's reconcile while its
    engine answers, by the rejoin's leftover sweep when it comes back. So an engine that did not answer is
    only noted (the pool says once that the engine is down); a refusal is a warning."""
    try:
        await deadline(container.delete(force=True))
    except (aiodocker.DockerError, OSError, aiohttp.ClientError, EngineTimeout) as exc:
        if unreachable(exc):
            log.info("could not remove container %s (no answer): %s", container.id[:12], exc)
            return
        gone = isinstance(exc, aiodocker.DockerError) and (
            exc.status == 404 or (exc.status == 409 and "already in progress" in str(exc))
        )
        if not gone:  # a removal already under way (the supervisor's and a destroy's can cross) is fine
            log.warning("could not remove container %s: %s", container.id[:12], exc)


def to_response(header: dict[str, Any], body: bytes) -> Response:
    """A response frame back to a Response (raises ValueError when the agent sent a bad one)."""
    return Response(int(header["status"]), tuple((str(k), str(v)) for k, v in header["headers"]), body)
