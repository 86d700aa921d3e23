"""runc and gVisor (runsc) side by side: the same gateway, the same handlers, only `docker.runtime` differs.

Per runtime: a warm container reused by the same caller, and by a new caller (the session switch); a fresh
container per request from a warm pool; a cold container per request (empty pool); and the bare floor of a
cold one (create + start + exec the agent + first answer, no gateway). Simple GET and JSON processing at
concurrency 1, rounds interleaved across runtimes, medians. A warm sample follows one uncounted request
(steady traffic: after 0.3 s idle every warm request costs ~2 ms more on this machine, on both runtimes).
Also memory per warm container and time to a ready warm pool of 3. Needs the engine with runsc registered
(scripts/gvisor.sh): `make bench` sets it up. Loopback only; every load bounded.

Writes bench/results/runtimes.{md,json}.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiodocker
import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import ROOT, Server, bench_env, gateway, publish, summary, timed  # noqa: E402
from bench.scenarios import DOCKER, Naive, container_memory, document, token  # noqa: E402
from pool.sandbox import container_config  # noqa: E402
from pool.workload import Workload  # noqa: E402
from proxy.loader import create_config  # noqa: E402

RUNTIMES = ("runc", "runsc")
SWITCH = "warm, new caller"  # a warm container whose session served someone else: the switch cost
KINDS = {  # column -> docker settings
    "warm": {"warm_pool_size": 3, "max_containers": 8},
    "fresh": {"warm_pool_size": 2, "reuse_containers": False},
    "cold": {"warm_pool_size": 0, "reuse_containers": False},
}


async def main(rounds: int) -> None:
    env = bench_env()
    tmp = Path(tempfile.mkdtemp(prefix="isogate-runtimes-"))
    doc = document()
    servers: dict[tuple[str, str], Server] = {
        (runtime, kind): gateway(
            f"{runtime}-{kind}",
            tmp,
            env,
            execution_mode="docker",
            docker={**DOCKER, **settings, "runtime": runtime},
        )
        for runtime in RUNTIMES
        for kind, settings in KINDS.items()
    }
    trusted = {"Authorization": f"Bearer {token(env['SECRET_KEY'], 'established', trust='trusted')}"}
    requests = {
        "Simple GET": ("GET", "/echo?x=1", None, {}),
        "JSON processing": ("POST", "/json", doc, {"Content-Type": "application/json"}),
    }
    samples: dict[str, list[float]] = {}
    extra: dict[str, Any] = {}
    docker_config = create_config(path=ROOT / "config.yaml", env={"SECRET_KEY": "x" * 32}).docker
    async with aiohttp.ClientSession() as session, aiodocker.Docker() as client:
        naive = {
            runtime: Naive(
                client,
                container_config(
                    replace(docker_config, runtime=runtime, pool_name="bench-naive"), Workload()
                ),
            )
            for runtime in RUNTIMES
        }
        try:
            for (runtime, kind), server in servers.items():
                extra[f"time_to_ready_s {runtime} {kind}"] = await server.ready(session)
            for runtime in RUNTIMES:
                await naive[runtime].start()
            for _ in range(5):  # warm imports, connections and the trusted caller's history
                for runtime in RUNTIMES:
                    await timed(session, "GET", servers[(runtime, "warm")].url + "/echo", headers=trusted)

            async def quiet() -> None:
                """Every pool refilled and the engine idle: a fresh or cold request leaves a container
                to remove and one to create, which would otherwise land in the next sample (2 cores)."""
                for server in servers.values():
                    await server.ready(session)
                await asyncio.sleep(0.3)

            for _ in range(rounds):
                for name, (method, target, body, headers) in requests.items():
                    for kind in ("warm", SWITCH, "fresh", "cold"):  # warm first: a quiet engine
                        for runtime in RUNTIMES:
                            await quiet()
                            server = servers[(runtime, "warm" if kind == SWITCH else kind)]
                            if kind in ("warm", SWITCH):  # steady traffic: not the wake-up after idling
                                await timed(session, "GET", server.url + "/echo", headers=trusted)
                            caller = trusted
                            if kind == SWITCH:
                                sub = f"caller-{uuid.uuid4().hex[:8]}"
                                signed = token(env["SECRET_KEY"], sub, trust="trusted")
                                caller = {"Authorization": f"Bearer {signed}"}
                            elapsed = await timed(
                                session,
                                method,
                                server.url + target,
                                data=body,
                                headers={**headers, **caller},
                                mode="docker",
                            )
                            samples.setdefault(f"{name}, {kind}, {runtime}", []).append(elapsed)
                for runtime in RUNTIMES:
                    await quiet()
                    samples.setdefault(f"bare cold, {runtime}", []).append(await naive[runtime].bare_cold())
            for runtime in RUNTIMES:
                extra[f"memory_per_warm_container_mb {runtime}"] = await container_memory(
                    client, f"bench-{runtime}-warm"
                )
        finally:
            for runner in naive.values():
                await runner.aclose()
            for server in servers.values():
                server.stop()
    report({key: summary(values) for key, values in samples.items()}, extra, rounds)


def report(table: dict[str, dict[str, float]], extra: dict[str, Any], rounds: int) -> None:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        f"runc vs runsc (gVisor, ptrace platform), {when}: milliseconds p50 / p99 at concurrency 1,"
        f" {rounds} interleaved rounds; the last column is runsc's p50 over runc's.",
        "",
        "| request | runc | runsc | runsc / runc |",
        "|---|---|---|---|",
    ]
    kinds = ("warm", SWITCH, "fresh", "cold")
    rows = [f"{name}, {kind}" for name in ("Simple GET", "JSON processing") for kind in kinds] + ["bare cold"]
    for row in rows:
        runc, runsc = table[f"{row}, runc"], table[f"{row}, runsc"]
        lines.append(
            f"| {row} | {runc['p50']:.1f} / {runc['p99']:.1f} | {runsc['p50']:.1f} / {runsc['p99']:.1f}"
            f" | {runsc['p50'] / runc['p50']:.2f}x |"
        )
    lines += [
        "",
        "| | runc | runsc |",
        "|---|---|---|",
        f"| memory per warm container (MB) | {extra['memory_per_warm_container_mb runc']}"
        f" | {extra['memory_per_warm_container_mb runsc']} |",
        f"| time to a ready warm pool of 3 (s) | {extra['time_to_ready_s runc warm']:.2f}"
        f" | {extra['time_to_ready_s runsc warm']:.2f} |",
    ]
    publish("runtimes", lines, {"latency_ms": table, **extra})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    asyncio.run(main(args.rounds))
