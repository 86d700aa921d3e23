"""A warm container through a remote engine (TCP + mutual TLS) beside one through the local socket, same run:
a second dockerd on this machine (tests/engines.py) with a TLS listener on 127.0.0.1, a pool on each, the
example `echo` handler called in turn, interleaved rounds. The remote pool gets its image and the handler
code through the engine API (an image load, a code volume), as an engine on another machine would.

Target (issue 27): at most +1 ms p50 through the TLS engine.

Then requests a second for a CPU-bound handler (`compute`, n=60000: ~20 ms of CPU) from 8 callers at once:
a pool on the local engine alone (2 containers at most, 0.5 CPU each), against a pool over both engines
(docker.engines, shares 1:1: 2 containers on each). Both engines are on this machine's 2 cores, so the
second engine adds containers, not cores: the figure shows the pool using a second engine's share, and
stops at this machine's cores; engines on hosts of their own add theirs.

Usage: python bench/remote_engine.py [--rounds 5] [--calls 200] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
from engines import SecondEngine  # noqa: E402
from storeenv import free_port  # noqa: E402

from handlers import Request  # noqa: E402
from policy.parse import parse_config  # noqa: E402
from pool.base import Job  # noqa: E402
from pool.containers import ContainerPool  # noqa: E402
from pool.workload import Workload  # noqa: E402


def pool(name: str, **docker: object) -> ContainerPool:
    config = parse_config(
        {"auth": {"secret_key": "b" * 32}, "docker": {"pool_name": name, "warm_pool_size": 1, **docker}}
    )
    return ContainerPool(config.docker, Workload("handlers", handlers_dir=str(ROOT / "handlers"), code="b"))


async def timed(target: ContainerPool, calls: int) -> list[float]:
    job = Job("echo", Request("GET", "/echo", (("x", "1"),), (), b"", "bench"), 5.0)
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        response = await target.run(job)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status == 200
    return samples


async def throughput(target: ContainerPool, seconds: float, callers: int = 8) -> float:
    """Requests a second of `compute` from `callers` looping for `seconds` (bounded)."""
    job = Job("compute", Request("GET", "/compute", (("n", "60000"),), (), b"", "bench"), 30.0)
    done = 0
    until = time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal done
        while time.perf_counter() < until:
            assert (await target.run(job)).status == 200
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return done / (time.perf_counter() - started)


async def compare_engines(engine: SecondEngine, seconds: float) -> None:
    sizes = {"warm_pool_size": 2, "max_containers": 2}
    one = pool("bench-one", **sizes)
    local = {"host": "unix:///var/run/docker.sock"}
    remote = {"host": engine.host, "cert_path": str(engine.client_tls)}
    two = pool("bench-two", warm_pool_size=4, max_containers=4, engines=[local, remote])
    try:
        await asyncio.gather(one.start(), two.start())
        assert one.available and two.available, (one.status(), two.status())
        rates: dict[str, list[float]] = {"one engine": [], "two engines": []}
        for _ in range(2):  # interleaved
            rates["one engine"].append(await throughput(one, seconds / 2))
            rates["two engines"].append(await throughput(two, seconds / 2))
    finally:
        await asyncio.gather(one.aclose(), two.aclose())
    print(f"\n`compute` (n=60000) from 8 callers, {seconds:.0f} s each, 2 interleaved halves (req/s)\n")
    print("| pool | containers | req/s |\n|---|---|---|")
    mean = {name: statistics.mean(values) for name, values in rates.items()}
    print(f"| one engine (local) | 2 | {mean['one engine']:.1f} |")
    print(f"| two engines (local + TLS), shares 1:1 | 2 + 2 | {mean['two engines']:.1f} |")
    print(f"\n- two engines against one: {mean['two engines'] / mean['one engine']:.2f}x")


async def latency(engine: SecondEngine, rounds: int, calls: int) -> None:
    pools = {"local socket": pool("bench-local"), "remote, TCP + TLS": pool("bench-tls")}
    try:
        started = time.perf_counter()
        remote = pool("bench-tls", host=engine.host, cert_path=str(engine.client_tls))
        pools["remote, TCP + TLS"] = remote
        await remote.start()  # the image and the code volume are sent here
        sent_s = time.perf_counter() - started
        await pools["local socket"].start()
        assert all(p.available for p in pools.values()), [p.status() for p in pools.values()]
        for target in pools.values():
            await timed(target, 20)  # warm-up: the agent's session
        samples: dict[str, list[float]] = {name: [] for name in pools}
        for _ in range(rounds):
            for name, target in pools.items():
                samples[name] += await timed(target, calls)
    finally:
        await asyncio.gather(*(p.aclose() for p in pools.values()))
    print(f"A warm container's echo call, {rounds} interleaved rounds of {calls} (ms)\n")
    print("| engine | p50 | p99 |\n|---|---|---|")
    p50 = {}
    for name, values in samples.items():
        values.sort()
        p50[name] = statistics.median(values)
        print(f"| {name} | {p50[name]:.3f} | {values[int(len(values) * 0.99)]:.3f} |")
    extra = p50["remote, TCP + TLS"] - p50["local socket"]
    verdict = "met" if extra <= 1.0 else "MISSED"
    print(f"\n- {verdict}: the TLS engine adds {extra:+.3f} ms p50 (target at most +1 ms)")
    print(f"- the remote pool's start, image and code volume sent included: {sent_s:.1f} s")


async def main(rounds: int, calls: int, seconds: float) -> None:
    engine = SecondEngine(free_port())
    engine.start()
    try:
        await latency(engine, rounds, calls)
        await compare_engines(engine, seconds)
    finally:
        engine.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.calls, args.seconds))
