"""What the benchmarks share: gateway processes on loopback ports, a bare-aiohttp floor, timed requests.

Every server listens on 127.0.0.1 only, and every load is bounded in count or time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "p50": statistics.median(ordered),
        "p99": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
    }


class Server:
    """A process serving HTTP on 127.0.0.1, stopped with `stop()`."""

    def __init__(self, command: list[str], env: dict[str, str], port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    async def ready(
        self, session: aiohttp.ClientSession, path: str = "/healthz", timeout_s: float = 60
    ) -> float:
        """Seconds from start until `path` answers 200 (and the container pool, if any, is full)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                async with session.get(self.url + path) as response:
                    body = await response.json() if response.content_type == "application/json" else {}
                    docker = body.get("docker") or {}
                    if (
                        response.status == 200
                        and docker.get("available", True)
                        and not docker.get("creating")
                    ):
                        return time.perf_counter() - self.started
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)
        raise SystemExit(f"server on port {self.port} did not become ready")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def gateway(
    name: str,
    tmp: Path,
    env: dict[str, str],
    *,
    debug_headers: bool = True,
    launcher: list[str] | None = None,
    **overrides: Any,
) -> Server:
    """`python -m proxy` (or `launcher`, given the same arguments) with config.yaml plus `overrides`
    (nested), its own pool name and port; with `debug_headers`, every caller sees the X-Isogate-* headers
    (the benchmarks check the mode taken)."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    for key, value in overrides.items():
        if isinstance(value, dict):
            config.setdefault(key, {}).update(value)
        else:
            config[key] = value
    config["docker"]["pool_name"] = f"bench-{name}"
    config["docker"]["requirements"] = str(ROOT / config["docker"]["requirements"])  # the file moves away
    config["state"]["path"] = f"{name}.db"  # each benchmarked gateway its own callers
    if debug_headers:
        config["server"]["debug_headers"] = True
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    command = launcher or [sys.executable, "-m", "proxy"]
    return Server([*command, "--config", str(path), "--port", str(port)], env, port)


def bare(env: dict[str, str]) -> Server:
    """The floor: each example handler called directly inside a bare aiohttp server."""
    port = free_port()
    return Server([sys.executable, "bench/bare_server.py", "--port", str(port)], env, port)


def skeleton(env: dict[str, str]) -> Server:
    """The gateway's shape without its logic (bench/skeleton_server.py): middleware, stamp, thread hop."""
    port = free_port()
    return Server([sys.executable, "bench/skeleton_server.py", "--port", str(port)], env, port)


def bench_env() -> dict[str, str]:
    env = {**os.environ, "SECRET_KEY": os.urandom(32).hex()}
    for name in ("EXECUTION_MODE", "DOCKER_ENABLED", "MAX_EXECUTION_TIME"):
        env.pop(name, None)
    return env


async def timed(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    mode: str | None = None,
    status: int = 200,
) -> float:
    """Milliseconds for one request; exits when the answer is not the expected status and executor."""
    started = time.perf_counter()
    async with session.request(method, url, data=data, headers=headers) as response:
        await response.read()
        if response.status != status or (mode and response.headers.get("X-Isogate-Mode") != mode):
            raise SystemExit(
                f"{method} {url}: {response.status} mode {response.headers.get('X-Isogate-Mode')}"
            )
    return (time.perf_counter() - started) * 1000


def publish(name: str, lines: list[str], data: object) -> None:
    """Print a benchmark's report and keep it, with its raw figures, as bench/results/<name>.{md,json}."""
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.md").write_text(text)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=1))


def run_in_rounds(main: Callable[[int, int], Coroutine[Any, Any, None]], doc: str | None) -> None:
    """The command line of a benchmark that runs wrk in interleaved rounds: `main(--rounds, --seconds)`."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.seconds))
