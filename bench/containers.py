"""Container execution, side by side in one run (concurrency 1, medians over interleaved rounds):

- `/echo` through the gateway in thread mode, with a warm container, with a fresh container per request
  from an empty pool (cold) and from a warm pool of fresh ones (arrivals paced below the refill rate);
- baselines measured here too: one new `docker exec` per request into a running container (the naive way),
  and a bare create + start + first exec answer (what a cold container cannot beat);
- recovery: the next request's latency right after a handler ran past the time limit.
Needs the engine and the runner image (`make image`). All traffic is to 127.0.0.1 and bounded.
Usage: python bench/containers.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiodocker
import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pool.frames import decode, encode  # noqa: E402
from pool.sandbox import container_config  # noqa: E402
from proxy.loader import create_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ECHO = "/echo?x=1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class GatewayProcess:
    """`python -m proxy` with config.yaml plus `docker` and `execution_mode` overrides, on its own port."""

    def __init__(self, name: str, mode: str, docker: dict[str, Any], env: dict[str, str], tmp: Path) -> None:
        config = yaml.safe_load((ROOT / "config.yaml").read_text())
        config["execution_mode"] = mode
        config["docker"].update({"pool_name": f"bench-{name}", **docker})
        config["server"]["debug_headers"] = True
        self.path = tmp / f"{name}.yaml"
        self.path.write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "proxy", "--config", str(self.path), "--port", str(self.port)]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    async def ready(self, session: aiohttp.ClientSession) -> None:
        for _ in range(300):
            try:
                async with session.get(f"{self.url}/healthz") as response:
                    health = await response.json()
                    if health["docker"].get("available", True) and health["docker"].get("creating", 0) == 0:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
        raise SystemExit(f"gateway {self.path.name} did not become ready")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


async def timed_get(session: aiohttp.ClientSession, url: str, mode: str | None = None) -> float:
    started = time.perf_counter()
    async with session.get(url) as response:
        await response.read()
        if response.status != 200 or (mode and response.headers.get("X-Isogate-Mode") != mode):
            raise SystemExit(f"{url}: {response.status} {response.headers.get('X-Isogate-Mode')}")
    return (time.perf_counter() - started) * 1000


async def naive_exec(container: Any) -> float:
    """One new exec per request: start python, import the handler, answer once."""
    started = time.perf_counter()
    code = (
        "from handlers.echo import handle; from handlers import Request, to_response;"
        "import sys; sys.stdout.buffer.write(to_response(handle(Request('GET','/echo',(('x','1'),)))).body)"
    )
    run = await container.exec(
        ["python3", "-c", code], stdout=True, stderr=True, user="65534:65534", workdir="/app"
    )
    output = await run.start(detach=True)
    assert b'"x":"1"' in output or output == b"", output
    return (time.perf_counter() - started) * 1000


async def bare_cold(client: aiodocker.Docker, config: dict[str, Any]) -> float:
    """create + start + exec the agent + first answer, straight through aiodocker (removal not timed)."""
    started = time.perf_counter()
    container = await client.containers.create(config)
    await container.start()
    agent = await container.exec(
        ["python3", "-u", "-m", "pool.agent", "handlers"],
        stdin=True,
        stdout=True,
        stderr=True,
        user="65534:65534",
        workdir="/app",
    )
    stream = agent.start(detach=False)
    buffer, frames = bytearray(), 0
    request = {
        "handler": "echo",
        "method": "GET",
        "path": "/echo",
        "query": [["x", "1"]],
        "headers": [],
        "entity_id": "",
    }
    while frames < 2:
        if frames == 0 and decode(buffer):
            frames = 1
            await stream.write_in(encode(request))
            continue
        if frames == 1 and decode(buffer):
            frames = 2
            break
        message = await stream.read_out()
        assert message is not None
        if message.stream == 1:
            buffer += message.data
    elapsed = (time.perf_counter() - started) * 1000
    await stream.close()
    await container.delete(force=True)
    return elapsed


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


async def main(rounds: int) -> None:
    env = {**os.environ, "SECRET_KEY": secrets.token_hex(32)}
    env.pop("EXECUTION_MODE", None)
    tmp = Path(tempfile.mkdtemp(prefix="isogate-bench-"))
    gateways = {
        "thread": GatewayProcess("thread", "thread", {}, env, tmp),
        "warm": GatewayProcess("warm", "docker", {"warm_pool_size": 2}, env, tmp),
        "cold": GatewayProcess("cold", "docker", {"warm_pool_size": 0, "reuse_containers": False}, env, tmp),
        "fresh": GatewayProcess(
            "fresh", "docker", {"warm_pool_size": 2, "reuse_containers": False}, env, tmp
        ),
    }
    recovery_gw = GatewayProcess(
        "recovery", "docker", {"warm_pool_size": 2}, {**env, "MAX_EXECUTION_TIME": "300"}, tmp
    )
    samples: dict[str, list[float]] = {
        k: [] for k in ("thread", "warm", "cold", "fresh", "naive", "bare", "recovery")
    }
    docker_config = create_config(path=ROOT / "config.yaml", env={"SECRET_KEY": "x" * 32}).docker
    bare_config = {**container_config(docker_config, "bench-bare"), "Image": docker_config.image}
    async with aiohttp.ClientSession() as session, aiodocker.Docker() as client:
        try:
            for gateway in [*gateways.values(), recovery_gw]:
                await gateway.ready(session)
            naive_box = await client.containers.create(bare_config)
            await naive_box.start()
            for _ in range(5):  # warm-up: imports, connections, page cache
                for name in ("thread", "warm"):
                    await timed_get(session, gateways[name].url + ECHO)
            for i in range(rounds):
                await asyncio.sleep(0.3)  # let refills and removals of the last round settle
                samples["thread"].append(await timed_get(session, gateways["thread"].url + ECHO, "thread"))
                samples["warm"].append(await timed_get(session, gateways["warm"].url + ECHO, "docker"))
                samples["naive"].append(await naive_exec(naive_box))
                if i % 2 == 0:
                    samples["cold"].append(await timed_get(session, gateways["cold"].url + ECHO, "docker"))
                    samples["bare"].append(await bare_cold(client, bare_config))
                    await gateways["fresh"].ready(session)  # arrivals below the refill rate
                    samples["fresh"].append(await timed_get(session, gateways["fresh"].url + ECHO, "docker"))
                if i % 5 == 0:
                    await recovery_gw.ready(session)
                    async with session.get(recovery_gw.url + "/compute?n=2000000") as response:
                        assert response.status == 504, response.status
                    samples["recovery"].append(await timed_get(session, recovery_gw.url + ECHO, "docker"))
            await naive_box.delete(force=True)
        finally:
            for gateway in [*gateways.values(), recovery_gw]:
                gateway.stop()
    report(samples, rounds)


def report(samples: dict[str, list[float]], rounds: int) -> None:
    thread_p50, _ = summary(samples["thread"])
    rows = [
        ("thread mode", "thread"),
        ("docker, warm container (reuse)", "warm"),
        ("docker, fresh container per request, warm pool", "fresh"),
        ("docker, fresh container per request, empty pool (cold)", "cold"),
        ("baseline: new `docker exec` per request (naive)", "naive"),
        ("baseline: bare create + start + first exec answer", "bare"),
        ("next request after a 504 timeout (docker)", "recovery"),
    ]
    print(f"/echo at concurrency 1, {rounds} rounds, {os.cpu_count()} cores; milliseconds")
    print("| path | n | p50 | p99 | p50 vs thread |\n|---|---|---|---|---|")
    for label, key in rows:
        p50, p99 = summary(samples[key])
        print(f"| {label} | {len(samples[key])} | {p50:.2f} | {p99:.2f} | {p50 / thread_p50:.1f}x |")
    warm, cold, bare = (summary(samples[k])[0] for k in ("warm", "cold", "bare"))
    fresh, recovery = summary(samples["fresh"])[0], max(samples["recovery"])
    checks = [
        (
            f"warm container adds {warm - thread_p50:.2f} ms p50 over thread (target <= 2 ms)",
            warm - thread_p50 <= 2,
        ),
        (
            f"cold per request is {cold / bare:.2f}x bare create+start+first exec (target <= 1.2x)",
            cold / bare <= 1.2,
        ),
        (f"next request after a timeout: worst {recovery:.1f} ms (target <= 100 ms)", recovery <= 100),
        (
            f"fresh-per-request from a warm pool: {fresh - warm:+.2f} ms p50 vs warm reuse"
            " (target within 5 ms)",
            abs(fresh - warm) <= 5,
        ),
    ]
    for text, ok in checks:
        print(f"- {'MET ' if ok else 'MISSED'} {text}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=30)
    asyncio.run(main(parser.parse_args().rounds))
