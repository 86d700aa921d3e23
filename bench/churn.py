"""Identity churn: 200,000 distinct callers against one gateway, and what it does to its memory.

One gateway process (thread mode, config.yaml otherwise) per state backend, each sent GET /echo from
200,000 distinct anonymous client addresses (X-Forwarded-For from 127.0.0.1, a trusted proxy here),
64 at a time. The process's RSS is sampled every second; the table's size and the store's figures are read
from /stats at the end. Target: RSS stays under limits.memory_limit_mb throughout.

Writes bench/results/churn.{md,json}.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import bench_env, gateway, publish  # noqa: E402
from bench.scenarios import token  # noqa: E402

LIMIT_MB = 120


async def churn(backend: str, callers: int, tmp: Path, env: dict[str, str]) -> dict[str, object]:
    server = gateway(
        f"churn-{backend}",
        tmp,
        env,
        execution_mode="thread",
        docker={"enabled": False},
        state={"backend": backend},
        server={"trusted_proxies": ["127.0.0.1/32"]},
        limits={"memory_limit_mb": LIMIT_MB},
    )
    process = psutil.Process(server.process.pid)
    peak, samples = 0.0, []
    admin = {"Authorization": f"Bearer {token(env['SECRET_KEY'], 'ops', role='admin')}"}
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
            await server.ready(session)
            base = int(ipaddress.IPv4Address("10.0.0.0"))
            sent = 0

            async def caller(worker: int) -> None:
                nonlocal sent
                for i in range(worker, callers, 64):
                    forwarded = {"X-Forwarded-For": str(ipaddress.IPv4Address(base + i))}
                    async with session.get(f"{server.url}/echo", headers=forwarded) as response:
                        await response.read()
                    sent += 1

            async def sample() -> None:
                nonlocal peak
                while True:
                    rss = process.memory_info().rss / 2**20
                    peak = max(peak, rss)
                    samples.append((sent, round(rss, 1)))
                    await asyncio.sleep(1)

            sampler = asyncio.create_task(sample())
            started = time.perf_counter()
            await asyncio.gather(*(caller(w) for w in range(64)))
            took = time.perf_counter() - started
            await asyncio.sleep(2)  # the last flush
            sampler.cancel()
            async with session.get(f"{server.url}/stats", headers=admin) as response:
                stats = await response.json()
    finally:
        server.stop()
    return {
        "backend": backend,
        "callers": callers,
        "seconds": round(took, 1),
        "peak_rss_mb": round(peak, 1),
        "tracked": stats["entities"]["tracked"],
        "capacity": stats["entities"]["capacity"],
        "state": stats["state"],
        "memory": stats["memory"],
        "rss_samples": samples,
    }


async def main(callers: int, backends: list[str]) -> None:
    env = bench_env()
    tmp = Path(tempfile.mkdtemp(prefix="isogate-churn-"))
    runs = [await churn(backend, callers, tmp, env) for backend in backends]
    lines = [
        f"Identity churn, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {callers:,} distinct"
        f" anonymous callers, GET /echo, 64 at a time, thread mode, limits.memory_limit_mb {LIMIT_MB}.",
        "",
        "| state.backend | peak RSS MB | entities in the table (capacity) | written to the store | seconds |",
        "|---|---|---|---|---|",
    ]
    for run in runs:
        state = run["state"]
        written = state.get("written", "-") if isinstance(state, dict) else "-"
        lines.append(
            f"| {run['backend']} | {run['peak_rss_mb']} | {run['tracked']:,} ({run['capacity']:,})"
            f" | {written} | {run['seconds']} |"
        )
    worst = max(float(str(run["peak_rss_mb"])) for run in runs)
    verdict = "met" if worst < LIMIT_MB else "MISSED"
    lines += ["", f"- {verdict}: peak RSS {worst} MB under limits.memory_limit_mb {LIMIT_MB}"]
    publish("churn", lines, runs)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--callers", type=int, default=200_000)
    parser.add_argument("--backends", nargs="+", default=["memory", "sqlite"])
    args = parser.parse_args()
    asyncio.run(main(args.callers, args.backends))
