"""Existing Python apps behind isogate, against their own servers, same run, loopback.

The Flask app (tests/apps/flask_shop.py) under gunicorn (sync workers, one per core) and the FastAPI app
(tests/apps/fastapi_shop.py) under uvicorn, direct; then both behind one isogate in thread mode and one in
docker mode (a warm container), with a trusted caller. GET <mount>/items/7?q=x (JSON).
p50 at concurrency 1 (aiohttp, sequential; rounds interleaved, medians) and req/s + p99 at concurrency 50
(wrk -t1).

Writes bench/results/apps.{md,json}. Needs the engine, wrk, gunicorn and uvicorn: `make bench` sets them up.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import ROOT, Server, bench_env, free_port, gateway, publish, summary, timed  # noqa: E402
from bench.scenarios import DOCKER, token  # noqa: E402
from bench.upstream import wrk  # noqa: E402

APPS_DIR = ROOT / "tests" / "apps"
APPS = {
    "flaskshop": {"source": str(APPS_DIR), "target": "flask_shop:app"},
    "fastshop": {"source": str(APPS_DIR), "target": "fastapi_shop:app"},
}
ROUTES = [
    {"path": "/flask/*", "app": "flaskshop"},
    {"path": "/fast/*", "app": "fastshop"},
]
TARGET = "/items/7?q=x"
IMAGE = "isogate-runner:bench-apps"  # the runner image with the test apps' packages


def build_image() -> None:
    """The runner image with tests/requirements-apps.txt installed, as `make image` does with yours."""
    env = {**os.environ, "RUNNER_IMAGE": IMAGE, "RUNNER_REQUIREMENTS": "tests/requirements-apps.txt"}
    subprocess.run(["scripts/runner-image.sh"], cwd=ROOT, env=env, check=True)


def direct_servers(env: dict[str, str]) -> dict[str, tuple[Server, str]]:
    bin_dir = Path(sys.executable).parent
    env = {**env, "PYTHONPATH": str(APPS_DIR)}
    gunicorn_port, uvicorn_port = free_port(), free_port()
    gunicorn = [str(bin_dir / "gunicorn"), "-w", str(os.cpu_count() or 1), "-b", f"127.0.0.1:{gunicorn_port}"]
    uvicorn = [str(bin_dir / "uvicorn"), "--host", "127.0.0.1", "--port", str(uvicorn_port), "--log-level"]
    return {
        "flask: gunicorn (sync) direct": (Server([*gunicorn, "flask_shop:app"], env, gunicorn_port), ""),
        "fastapi: uvicorn direct": (Server([*uvicorn, "warning", "fastapi_shop:app"], env, uvicorn_port), ""),
    }


async def main(rounds: int, per_round: int, seconds: int) -> None:
    env = bench_env()
    build_image()
    tmp = Path(tempfile.mkdtemp(prefix="isogate-apps-"))
    servers = direct_servers(env)
    for mode in ("thread", "docker"):
        docker = {**DOCKER, "image": IMAGE}
        server = gateway(
            f"apps-{mode}", tmp, env, execution_mode=mode, docker=docker, apps=APPS, routes=ROUTES
        )
        servers[f"flask: isogate {mode}"] = (server, "/flask")
        servers[f"fastapi: isogate {mode}"] = (server, "/fast")
    headers = {"Authorization": f"Bearer {token(env['SECRET_KEY'], 'established', trust='trusted')}"}
    latency: dict[str, list[float]] = {name: [] for name in servers}
    load: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
    try:
        async with aiohttp.ClientSession() as session:
            for server, mount in servers.values():
                await server.ready(session, mount + TARGET if not mount else "/healthz")
            for server, mount in servers.values():  # warm-up: imports, sessions, the caller's history
                for _ in range(20):
                    await timed(session, "GET", server.url + mount + TARGET, headers=headers)
            for _ in range(rounds):
                for name, (server, mount) in servers.items():
                    for _ in range(per_round):
                        url = server.url + mount + TARGET
                        latency[name].append(await timed(session, "GET", url, headers=headers))
        auth = ["-H", f"Authorization: {headers['Authorization']}"]
        for name, (server, mount) in servers.items():
            load[name].append(wrk(server.url + mount + TARGET, 50, seconds, auth))
    finally:
        for server, _ in {id(s): (s, m) for s, m in servers.values()}.values():
            server.stop()
    report(latency, load, rounds, per_round, seconds)


def report(
    latency: dict[str, list[float]],
    load: dict[str, list[dict[str, float]]],
    rounds: int,
    n: int,
    seconds: int,
) -> None:
    lines = [
        f"Existing apps, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: GET <mount>{TARGET}, a trusted"
        f" caller; p50 at c=1 from {rounds} interleaved rounds of {n}; c=50: wrk -t1, {seconds} s.",
        "",
        "| path | p50 ms, c=1 | over its own server | req/s, c=50 | p99 ms, c=50 | non-2xx |",
        "|---|---|---|---|---|---|",
    ]
    p50 = {name: statistics.median(samples) for name, samples in latency.items()}
    for name, samples in latency.items():
        base = p50["flask: gunicorn (sync) direct" if name.startswith("flask") else "fastapi: uvicorn direct"]
        over = f"{p50[name] - base:+.3f}" if "isogate" in name else ""
        run = load[name][0]
        lines.append(
            f"| {name} | {summary(samples)['p50']:.3f} | {over} | {run['rps']:,.0f} | {run['p99_ms']:.2f}"
            f" | {run['non_2xx']:.0f} |"
        )
    lines += ["", "Targets:", ""]
    for app, own in (("flask", "flask: gunicorn (sync) direct"), ("fastapi", "fastapi: uvicorn direct")):
        thread, docker = p50[f"{app}: isogate thread"], p50[f"{app}: isogate docker"]
        lines.append(
            f"- {'met' if thread - p50[own] <= 1 else 'MISSED'}: {app} in isogate threads"
            f" {thread - p50[own]:+.3f} ms p50 over its own server (<= 1 ms)"
        )
        lines.append(
            f"- {'met' if docker - thread <= 2 else 'MISSED'}: {app} in a warm container"
            f" {docker - thread:+.3f} ms p50 over isogate threads (<= 2 ms)"
        )
    publish("apps", lines, {"latency_ms": latency, "c50": load})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.per_round, args.seconds))
