"""Waiting for a container under overload: latency of a docker-pinned route when more clients than containers
keep asking (loopback, bounded in time). Prints p50/p99/max, how many waited over 2 s, how many were
refused fast (503 + Retry-After), and the ratio to the same route with no queue (one client per container),
measured in the same run.

Usage: python bench/pool_wait.py [--seconds 15] [--clients 40] [--warm 4] [--max 4]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp
import jwt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import bench_env, gateway, summary  # noqa: E402


async def load(url: str, clients: int, seconds: float, token: str) -> tuple[list[float], Counter[int]]:
    samples: list[float] = []
    statuses: Counter[int] = Counter()
    ends = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {token}"}

    async def client(session: aiohttp.ClientSession) -> None:
        for _ in range(1_000_000):  # bounded; ends at `seconds`
            if time.monotonic() > ends:
                return
            started = time.perf_counter()
            async with session.get(url, headers=headers) as response:
                await response.read()
                statuses[response.status] += 1
                if response.status == 503:
                    await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                    continue
            samples.append((time.perf_counter() - started) * 1000)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    return samples, statuses


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--warm", type=int, default=4, help="docker.warm_pool_size")
    parser.add_argument("--max", type=int, default=4, help="docker.max_containers")
    args = parser.parse_args()
    env = bench_env()
    claims = {"sub": "bench", "trust": "trusted", "exp": int(time.time()) + 3600}
    token = jwt.encode(claims, env["SECRET_KEY"], algorithm="HS256")
    with tempfile.TemporaryDirectory() as tmp:
        server = gateway(
            "pool-wait",
            Path(tmp),
            env,
            execution_mode="docker",
            docker={"warm_pool_size": args.warm, "max_containers": args.max, "timeout_ms": 30000},
        )
        try:
            async with aiohttp.ClientSession() as session:
                await server.ready(session)
            url = f"{server.url}/compute?n=20000"
            quiet, _ = await load(url, args.warm, args.seconds / 3, token)
            busy, statuses = await load(url, args.clients, args.seconds, token)
        finally:
            server.stop()
    base, over = summary(quiet), summary(busy)
    slow = sum(1 for ms in busy if ms > 2000)
    print(
        f"no queue ({args.warm} clients): p50 {base['p50']:.1f} ms, p99 {base['p99']:.1f} ms, n={base['n']}"
    )
    print(
        f"overload ({args.clients} clients, {args.warm}-{args.max} containers, {args.seconds:.0f} s):"
        f" p50 {over['p50']:.1f} ms, p99 {over['p99']:.1f} ms, max {max(busy):.1f} ms, n={over['n']};"
        f" over 2 s: {slow}; statuses {dict(statuses)}"
    )
    ratio, spread = over["p99"] / base["p99"], max(busy) / over["p50"]
    print(f"p99 overload / p99 no queue: {ratio:.1f}x; max / p50 under overload: {spread:.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
