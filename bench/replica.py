"""An isolated replica against a warm handler container, same gateway, same run, loopback.

One gateway in docker mode: `/echo` runs the echo handler in a warm runner container; every other path is an
upstream route whose docker decisions go to the example replica app (examples/replica: busybox httpd, built
by scripts/example-image.sh) through the relay agent. One trusted caller, concurrency 1, rounds interleaved,
medians. Also the app alone, timed inside its own container (python3 http.client on 127.0.0.1:8080), so
what the relay and the gateway add can be told from what busybox httpd itself costs (it forks per
connection and closes it; the CGI endpoint forks a shell on top).

Writes bench/results/replica.{md,json}. Needs the engine: `make bench` sets it up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import ROOT, bare, bench_env, gateway, publish, summary, timed  # noqa: E402
from bench.scenarios import DOCKER, token  # noqa: E402

IMAGE = "isogate-example-app:latest"
PATHS = {
    "warm handler container (echo handler)": "/echo?x=1",
    "replica: static file": "/index.html",
    "replica: shell CGI API": "/cgi-bin/echo?x=1",
}
BASELINE = "warm handler container (echo handler)"
# Run inside the replica container: the app alone, n GETs of each path, milliseconds each.
APP_ALONE = """
import http.client, json, sys, time
out = {}
for path in sys.argv[2:]:
    samples = []
    for _ in range(int(sys.argv[1])):
        started = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", 8080)
        connection.request("GET", path)
        connection.getresponse().read()
        connection.close()
        samples.append((time.perf_counter() - started) * 1000)
    out[path] = samples
print(json.dumps(out))
"""


async def main(rounds: int, per_round: int) -> None:
    env = bench_env()
    tmp = Path(tempfile.mkdtemp(prefix="isogate-replica-"))
    subprocess.run(["scripts/example-image.sh"], cwd=ROOT, check=True)
    origin = bare(env)
    routes = [
        {"path": "/echo", "handler": "echo"},
        {
            "path": "/*",
            "upstream": origin.url,  # production: never reached, the route's decisions are all docker
            "mode": "docker",
            "isolated": {"image": IMAGE, "port": 8080, "warm_pool_size": 2, "max_containers": 4},
        },
    ]
    server = gateway("replica", tmp, env, execution_mode="docker", docker=DOCKER, routes=routes)
    headers = {"Authorization": f"Bearer {token(env['SECRET_KEY'], 'established', trust='trusted')}"}
    samples: dict[str, list[float]] = {name: [] for name in PATHS}
    try:
        async with aiohttp.ClientSession() as session:
            await origin.ready(session, "/echo")
            await server.ready(session)
            for path in PATHS.values():  # warm-up: the caller's containers and sessions
                for _ in range(20):
                    await timed(session, "GET", server.url + path, headers=headers, mode="docker")
            for _ in range(rounds):
                for name, path in PATHS.items():
                    for _ in range(per_round):
                        samples[name].append(
                            await timed(session, "GET", server.url + path, headers=headers, mode="docker")
                        )
            alone = app_alone(rounds * per_round)
    finally:
        server.stop()
        origin.stop()
    report(samples, alone, rounds, per_round)


def app_alone(count: int) -> dict[str, list[float]]:
    """The app's own latency, from inside one of the replica's containers."""
    listed = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"ancestor={IMAGE}"], capture_output=True, text=True, check=True
    ).stdout.split()
    paths = [p for name, p in PATHS.items() if name != BASELINE]
    command = ["docker", "exec", "-u", "65534:65534", listed[0], "python3", "-c", APP_ALONE, str(count)]
    out = subprocess.run([*command, *paths], capture_output=True, text=True, check=True).stdout
    return dict(json.loads(out))


def report(samples: dict[str, list[float]], alone: dict[str, list[float]], rounds: int, n: int) -> None:
    base = statistics.median(samples[BASELINE])
    lines = [
        f"Isolated replica, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: one trusted caller,"
        f" concurrency 1, {rounds} interleaved rounds of {n} requests, ms.",
        "",
        "| path | p50 | p99 | over warm handler container, p50 | the app alone (inside), p50 |",
        "|---|---|---|---|---|",
    ]
    for name, path in PATHS.items():
        figures = summary(samples[name])
        inside = f"{statistics.median(alone[path]):.3f}" if path in alone else ""
        over = f"{figures['p50'] - base:+.3f}" if name != BASELINE else ""
        lines.append(f"| {name} | {figures['p50']:.3f} | {figures['p99']:.3f} | {over} | {inside} |")
    static = statistics.median(samples["replica: static file"]) - base
    lines += [
        "",
        f"- {'met' if static <= 2 else 'MISSED'}: the replica (static file) adds {static:.3f} ms p50"
        " over a warm handler container (<= 2 ms)",
    ]
    publish("replica", lines, {"gateway": samples, "app_alone": alone})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.per_round))
