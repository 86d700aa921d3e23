"""Throughput: thread-mode /echo at concurrency 50 against the bare aiohttp floor, with 1 and 2 workers.

Same run, loopback: the floor (bench/bare_server.py: the echo handler called inline in a bare aiohttp
server, one process); the skeleton (bench/skeleton_server.py: the gateway's middleware, response stamp and
thread executor around the same handler, and none of its logic: the ceiling of this design); then isogate
in thread mode with a trusted token (config.yaml as shipped: no debug headers for it), `server.workers` 1
and 2. wrk -t1 -c50, rounds interleaved, medians. Targets (issue 13): one process at >= 0.5x the floor's
req/s, with p99 no worse than 3x the floor's. wrk runs on the same 2 cores, so 2 workers share them with
the load.

Writes bench/results/throughput.{md,json}.
"""

from __future__ import annotations

import functools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import Server, bare, bench_env, gateway, publish, run_in_rounds, skeleton  # noqa: E402
from bench.scenarios import token  # noqa: E402
from bench.upstream import wrk  # noqa: E402

PATH = "/echo?x=1"
SKELETON = "skeleton (middleware + thread hop, no logic)"


async def main(rounds: int, seconds: int) -> None:
    env = bench_env()
    tmp = Path(tempfile.mkdtemp(prefix="isogate-throughput-"))
    common = {"execution_mode": "thread", "docker": {"enabled": False}}
    shipped = functools.partial(gateway, debug_headers=False)  # as config.yaml: admins only, and it is none
    servers: dict[str, Server] = {
        "floor (bare aiohttp, inline)": bare(env),
        SKELETON: skeleton(env),
        "isogate, 1 worker": shipped("tp-1", tmp, env, **common),
        "isogate, 2 workers": shipped("tp-2", tmp, env, server={"workers": 2}, **common),
        # What the OWASP CRS factor (on in config.yaml) costs here: the same process without it.
        "isogate, 1 worker, risk.crs off": shipped(
            "tp-1-nocrs", tmp, env, risk={"crs": {"enabled": False}}, **common
        ),
    }
    auth = f"Bearer {token(env['SECRET_KEY'], 'established', trust='trusted')}"
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
    try:
        async with aiohttp.ClientSession() as session:
            for server in servers.values():
                await server.ready(session, PATH)
                for _ in range(200):  # warm-up: the caller becomes established everywhere
                    async with session.get(server.url + PATH, headers={"Authorization": auth}) as response:
                        await response.read()
        for _ in range(rounds):
            for name, server in servers.items():
                runs[name].append(wrk(server.url + PATH, 50, seconds, ["-H", f"Authorization: {auth}"]))
    finally:
        for server in servers.values():
            server.stop()
    report(runs, rounds, seconds)


def report(runs: dict[str, list[dict[str, float]]], rounds: int, seconds: int) -> None:
    med = {name: {key: statistics.median(r[key] for r in rs) for key in rs[0]} for name, rs in runs.items()}
    floor = med["floor (bare aiohttp, inline)"]
    lines = [
        f"Throughput, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: GET {PATH}, thread mode,"
        f" a trusted caller; wrk -t1 -c50, {rounds} interleaved rounds of {seconds} s, medians.",
        "",
        "| server | req/s | x floor | p50 ms | p99 ms | p99 x floor | non-2xx |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, figures in med.items():
        rate, tail = figures["rps"] / floor["rps"], figures["p99_ms"] / floor["p99_ms"]
        lines.append(
            f"| {name} | {figures['rps']:,.0f} | {rate:.2f} | {figures['p50_ms']:.2f}"
            f" | {figures['p99_ms']:.2f} | {tail:.1f} | {figures['non_2xx']:.0f} |"
        )
    one = med["isogate, 1 worker"]
    ratio, tail = one["rps"] / floor["rps"], one["p99_ms"] / floor["p99_ms"]
    lines += [
        "",
        f"- {'met' if ratio >= 0.5 else 'MISSED'}: one process at {ratio:.2f}x the floor's req/s (>= 0.5x)",
        f"- {'met' if tail <= 3 else 'MISSED'}: its p99 {tail:.1f}x the floor's (<= 3x)",
        f"- 2 workers: {med['isogate, 2 workers']['rps'] / one['rps']:.2f}x one worker's req/s",
        f"- the skeleton (no gateway logic) reaches {med[SKELETON]['rps'] / floor['rps']:.2f}x the floor: the"
        f" gateway's own work costs {1 / one['rps'] * 1e6 - 1 / med[SKELETON]['rps'] * 1e6:.0f} us of the"
        f" loop a request",
    ]
    publish("throughput", lines, runs)


if __name__ == "__main__":
    run_in_rounds(main, __doc__)
