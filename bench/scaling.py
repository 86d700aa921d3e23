"""Scaling with worker processes: req/s at concurrency 50 on the thread path (GET /echo, thread mode) and the
upstream path (an upstream route in front of a bare aiohttp echo), with `server.workers` 1, 2 and auto (one
per core: os.cpu_count() here), a trusted caller, config.yaml otherwise. wrk -t1 runs on the same machine,
so it takes a share of the cores it measures. Rounds interleaved, medians.

Writes bench/results/scaling.{md,json}.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import Server, bare, bench_env, gateway, publish, run_in_rounds  # noqa: E402
from bench.scenarios import token  # noqa: E402
from bench.upstream import wrk  # noqa: E402

PATH = "/echo?x=1"
WORKERS: tuple[int | str, ...] = (1, 2, "auto")


async def main(rounds: int, seconds: int) -> None:
    env = bench_env()
    tmp = Path(tempfile.mkdtemp(prefix="isogate-scaling-"))
    origin = bare(env)
    servers: dict[tuple[str, str], Server] = {}
    try:
        for workers in WORKERS:
            common = {"debug_headers": False, "server": {"workers": workers}}
            servers[("thread", str(workers))] = gateway(
                f"scale-thread-{workers}",
                tmp,
                env,
                execution_mode="thread",
                docker={"enabled": False},
                **common,
            )
            route = {"path": "/echo", "upstream": origin.url}
            servers[("upstream", str(workers))] = gateway(
                f"scale-upstream-{workers}", tmp, env, routes=[route], **common
            )
        auth = ["-H", f"Authorization: Bearer {token(env['SECRET_KEY'], 'established', trust='trusted')}"]
        async with aiohttp.ClientSession() as session:
            await origin.ready(session)
            for server in servers.values():
                await server.ready(session, PATH)
        for server in servers.values():
            wrk(server.url + PATH, 8, 1, auth)  # warm-up: every worker's connections and the caller
        runs: dict[str, list[dict[str, float]]] = {f"{path}, {n}": [] for path, n in servers}
        for _ in range(rounds):
            for (path, n), server in servers.items():
                runs[f"{path}, {n}"].append(wrk(server.url + PATH, 50, seconds, auth))
    finally:
        for server in servers.values():
            server.stop()
        origin.stop()
    med = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()}
    lines = [
        f"Scaling, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: GET {PATH}, a trusted caller,"
        f" wrk -t1 -c50, {rounds} interleaved rounds of {seconds} s, medians; {os.cpu_count()} cores"
        " (auto = one worker per core), wrk on the same cores.",
        "",
        "| path | workers | req/s | x one worker | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for name, figures in med.items():
        path, n = name.split(", ")
        one = med[f"{path}, 1"]["rps"]
        lines.append(
            f"| {path} | {n} | {figures['rps']:,.0f} | {figures['rps'] / one:.2f}"
            f" | {figures['p50_ms']:.1f} | {figures['p99_ms']:.1f} |"
        )
    publish("scaling", lines, runs)


if __name__ == "__main__":
    run_in_rounds(main, __doc__)
