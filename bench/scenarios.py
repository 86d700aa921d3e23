"""The product's benchmark table, reproduced with baselines measured in the same run.

Rows: Simple GET (`echo`), JSON processing (`json_transform`, ~10 KB document), heavy computation (`compute`
sized to ~0.7 s), malicious request (a SQL-injection payload from a new entity). Columns: the handler called
directly in a bare aiohttp server (the floor), thread mode, a warm container, a fresh container per request
from an empty pool (cold) and from a warm pool, hybrid mode (trusted established caller; the malicious one is
new), and the naive container way (a new `docker exec` per request). Concurrency 1, rounds interleaved,
medians; then Simple GET throughput at concurrency 50 with wrk; memory, time to ready, and the next
request's latency after a handler ran past the time limit.

Writes bench/results/latest.{md,json} and bench/results/latency.png. Needs wrk, matplotlib, the engine and
the runner image: `make bench` sets them up. All traffic is on 127.0.0.1; every load is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiodocker
import aiohttp
import jwt
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import ROOT, Server, bare, bench_env, gateway, summary, timed  # noqa: E402
from handlers.compute import count_primes  # noqa: E402
from pool.frames import decode, encode  # noqa: E402
from pool.sandbox import container_config  # noqa: E402
from pool.workload import Workload  # noqa: E402
from proxy.loader import create_config  # noqa: E402

RESULTS = ROOT / "bench" / "results"
MALICIOUS = "/echo?q=1%27%20UNION%20SELECT%20password%20FROM%20users--"
COLUMNS = ["floor", "thread", "docker warm", "docker cold", "docker fresh", "hybrid", "naive exec"]
DOCKER = {
    "enabled": True,
    "cpu_limit": 1.0,
    "memory_limit": "256m",
}  # one full CPU: heavy work compares fairly


def document() -> bytes:
    """A ~10 KB JSON order document."""
    items = [
        {
            "sku": f"sku-{i:04d}",
            "name": f"Item número {i}",
            "qty": i % 7,
            "price": i * 1.25,
            "tags": ["a", "b", str(i)],
            "meta": {"warehouse": "MAD-2", "fragile": i % 3 == 0},
        }
        for i in range(66)
    ]
    return json.dumps(
        {"order": {"id": 1234, "customer": {"name": "Ana", "vip": True}, "items": items}}
    ).encode()


def heavy_n(target_s: float = 0.7) -> int:
    """The `compute` size that takes about `target_s` here (trial division grows like n^1.5)."""
    n, took = 50_000, 0.0
    while took < target_s / 4:
        n *= 2
        started = time.perf_counter()
        count_primes(n)
        took = time.perf_counter() - started
    for _ in range(2):
        n = int(n * (target_s / took) ** (1 / 1.5))
        started = time.perf_counter()
        count_primes(n)
        took = time.perf_counter() - started
    return n


class Naive:
    """One new `docker exec` of the agent per request into a running container: the naive way."""

    def __init__(self, client: aiodocker.Docker, config: dict[str, Any]) -> None:
        self._client, self._config = client, config

    async def start(self) -> None:
        self.container: Any = await self._client.containers.create(self._config)
        await self.container.start()

    async def aclose(self) -> None:
        if getattr(self, "container", None) is not None:
            await self.container.delete(force=True)
            self.container = None

    async def request(self, handler: str, method: str, target: str, body: bytes) -> float:
        path, _, query = target.partition("?")
        pairs = [p.split("=", 1) for p in query.split("&") if p]
        header = {
            "handler": handler,
            "method": method,
            "path": path,
            "query": pairs,
            "headers": [],
            "entity_id": "",
        }
        started = time.perf_counter()
        run = await self.container.exec(
            ["python3", "-u", "-m", "pool.agent", "handlers"],
            stdin=True,
            stdout=True,
            stderr=True,
            user="65534:65534",
            workdir="/app",
        )
        stream, buffer, answers = run.start(detach=False), bytearray(), 0
        while answers < 2:
            frame = decode(buffer)
            if frame is None:
                message = await stream.read_out()
                assert message is not None, "the agent ended early"
                buffer += message.data if message.stream == 1 else b""
                continue
            answers += 1
            if answers == 1:
                await stream.write_in(encode(header, body))
            elif frame[0].get("status") != 200:
                raise SystemExit(f"naive exec answered {frame[0]}")
        elapsed = (time.perf_counter() - started) * 1000
        await stream.close()
        return elapsed

    async def bare_cold(self) -> float:
        """create + start + exec the agent + first answer: what a cold container cannot beat."""
        started = time.perf_counter()
        container = await self._client.containers.create(self._config)
        await container.start()
        saved, self.container = self.container, container
        await self.request("echo", "GET", "/echo?x=1", b"")
        elapsed = (time.perf_counter() - started) * 1000
        self.container = saved
        await container.delete(force=True)
        return elapsed


def token(secret: str, sub: str, **claims: Any) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time()) + 3600, **claims}, secret, algorithm="HS256")


async def main(rounds: int, heavy_rounds: int, duration: int) -> None:
    env = bench_env()
    secret = env["SECRET_KEY"]
    tmp = Path(tempfile.mkdtemp(prefix="isogate-bench-"))
    n = heavy_n()
    doc = document()
    servers: dict[str, Server] = {
        "floor": bare(env),
        "thread": gateway("thread", tmp, env, execution_mode="thread"),
        "docker warm": gateway(
            "warm",
            tmp,
            env,
            execution_mode="docker",
            docker={**DOCKER, "warm_pool_size": 3, "max_containers": 8},
        ),
        "docker cold": gateway(
            "cold",
            tmp,
            env,
            execution_mode="docker",
            docker={**DOCKER, "warm_pool_size": 0, "reuse_containers": False},
        ),
        "docker fresh": gateway(
            "fresh",
            tmp,
            env,
            execution_mode="docker",
            docker={**DOCKER, "warm_pool_size": 2, "reuse_containers": False},
        ),
        "recovery": gateway(
            "recovery",
            tmp,
            env,
            execution_mode="docker",
            limits={"execution": {"max_time_ms": 300}},
            docker={**DOCKER, "warm_pool_size": 2},
        ),
        "hybrid": gateway(
            "hybrid",
            tmp,
            env,
            execution_mode="hybrid",
            docker={**DOCKER, "warm_pool_size": 3, "max_containers": 8},
        ),
    }
    trusted = {"Authorization": f"Bearer {token(secret, 'established', trust='trusted')}"}
    scenarios = {
        "Simple GET": ("echo", "GET", "/echo?x=1", b"", {}),
        "JSON processing": ("json_transform", "POST", "/json", doc, {"Content-Type": "application/json"}),
        "Heavy computation": ("compute", "GET", f"/compute?n={n}", b"", {}),
        "Malicious request": ("echo", "GET", MALICIOUS, b"", {}),
    }
    samples: dict[str, dict[str, list[float]]] = {s: {c: [] for c in COLUMNS} for s in scenarios}
    extra: dict[str, Any] = {"heavy_n": n, "json_bytes": len(doc)}
    docker_config = create_config(path=ROOT / "config.yaml", env={"SECRET_KEY": "x" * 32}).docker
    bare_container = container_config(replace(docker_config, pool_name="bench-naive"), Workload())
    async with aiohttp.ClientSession() as session, aiodocker.Docker() as client:
        naive = Naive(client, bare_container)
        try:
            ready = {name: await server.ready(session) for name, server in servers.items()}
            extra["time_to_ready_s_warm_pool_3"] = ready["docker warm"]
            await naive.start()
            for _ in range(10):  # the trusted caller becomes established; warm imports and connections
                for name in ("thread", "docker warm", "hybrid"):
                    await timed(session, "GET", servers[name].url + "/echo", headers=trusted)

            async def one(scenario: str, column: str) -> float:
                handler, method, target, body, headers = scenarios[scenario]
                if column == "naive exec":
                    return await naive.request(handler, method, target, body)
                if column == "docker fresh":
                    await servers[column].ready(session)  # arrivals below the refill rate
                auth = trusted
                if scenario == "Malicious request":
                    auth = {"Authorization": f"Bearer {token(secret, 'new-' + uuid.uuid4().hex[:8])}"}
                expected = {
                    "hybrid": "docker" if scenario == "Malicious request" else "thread",
                    "thread": "thread",
                    "floor": None,
                }.get(column, "docker")
                url = servers[column].url + target
                return await timed(
                    session, method, url, data=body or None, headers={**headers, **auth}, mode=expected
                )

            # Executors that leave work behind (containers to destroy and refill) go last in a round, and
            # the next round waits for them: on 2 cores that work would otherwise land in others' samples.
            quiet_first = [
                "floor",
                "thread",
                "docker warm",
                "hybrid",
                "docker fresh",
                "docker cold",
                "naive exec",
            ]
            bare_cold: list[float] = []
            for i in range(rounds):
                for scenario in scenarios:
                    if scenario == "Heavy computation" and i >= heavy_rounds:
                        continue
                    for column in quiet_first:
                        if column == "floor":
                            await servers["docker fresh"].ready(session)
                            await servers["docker cold"].ready(session)
                            await asyncio.sleep(0.3)
                        samples[scenario][column].append(await one(scenario, column))
                        if (scenario, column) == ("Simple GET", "docker cold"):  # same conditions as cold
                            bare_cold.append(await naive.bare_cold())
            extra["bare_create_start_first_exec_ms"] = summary(bare_cold)
            extra["next_request_after_timeout_ms"] = await recovery(session, servers["recovery"], n)
            extra["memory_per_warm_container_mb"] = await container_memory(client, "bench-warm")
            await naive.aclose()
            extra["throughput"] = load_runs(servers, trusted, secret, duration)
        finally:
            await naive.aclose()  # also when a round failed: no bench container outlives the run
            for server in servers.values():
                server.stop()
    report({s: {c: summary(v) for c, v in cols.items() if v} for s, cols in samples.items()}, extra, rounds)


async def recovery(
    session: aiohttp.ClientSession, server: Server, n: int, samples: int = 6
) -> dict[str, float]:
    """The next request's latency right after a handler ran past the time limit (its container killed)."""
    times = []
    for _ in range(samples):
        await server.ready(session)
        await timed(session, "GET", f"{server.url}/compute?n={n}", status=504)
        times.append(await timed(session, "GET", f"{server.url}/echo?x=1", mode="docker"))
    return summary(times)


async def container_memory(client: aiodocker.Docker, pool: str) -> float:
    listed = await client.containers.list(filters=json.dumps({"label": [f"isogate.pool={pool}"]}))
    usages = []
    for container in listed:
        stats = await container.stats(stream=False)
        memory = (stats[0] if isinstance(stats, list) else stats)["memory_stats"]
        usages.append((memory.get("usage", 0) - memory.get("stats", {}).get("cache", 0)) / 2**20)
    return round(sum(usages) / len(usages), 1) if usages else 0.0


WRK_MIX = """
local n = 0
request = function()
  n = n + 1
  if n % 10 == 0 then
    return wrk.format("GET", "{malicious}", {{["Authorization"] = "Bearer {bad}"}})
  end
  return wrk.format("GET", "/echo?x=1", {{["Authorization"] = "Bearer {good}"}})
end
"""


def wrk(url: str, duration: int, args: list[str]) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t1", "-c50", f"-d{duration}s", "--latency", *args, url],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 60,
    ).stdout
    figures = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])}  # type: ignore[index]
    value, unit = re.search(r"\s99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    figures["p99_ms"] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    figures["non_2xx"] = float(errors[1]) if errors else 0.0
    return figures


def load_runs(
    servers: dict[str, Server], trusted: dict[str, str], secret: str, duration: int
) -> dict[str, Any]:
    """Simple GET at concurrency 50 (wrk, its own process), gateway RSS sampled meanwhile."""
    mix = Path(tempfile.mkstemp(suffix=".lua")[1])
    bad = token(secret, "attacker")
    mix.write_text(WRK_MIX.format(malicious=MALICIOUS, bad=bad, good=trusted["Authorization"].split()[1]))
    runs = {
        "floor": ("floor", []),
        "thread": ("thread", ["-H", f"Authorization: {trusted['Authorization']}"]),
        "docker warm": ("docker warm", ["-H", f"Authorization: {trusted['Authorization']}"]),
        "hybrid 90/10": ("hybrid", ["-s", str(mix)]),
    }
    results: dict[str, Any] = {}
    for label, (name, args) in runs.items():
        process = psutil.Process(servers[name].process.pid)
        idle = process.memory_info().rss / 2**20
        peak, stop = [idle], threading.Event()

        def sample(
            proc: psutil.Process = process, into: list[float] = peak, done: threading.Event = stop
        ) -> None:
            while not done.wait(0.1):
                into.append(proc.memory_info().rss / 2**20)

        sampler = threading.Thread(target=sample)
        sampler.start()
        figures = wrk(servers[name].url + ("/echo?x=1" if name != "hybrid" else "/"), duration, args)
        stop.set()
        sampler.join()
        results[label] = {**figures, "rss_idle_mb": round(idle, 1), "rss_load_mb": round(max(peak), 1)}
    mix.unlink()
    return results


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?")
    memory = psutil.virtual_memory().total / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB, Python {platform.python_version()}"


def targets(table: dict[str, dict[str, dict[str, float]]], extra: dict[str, Any]) -> list[tuple[str, bool]]:
    get, heavy, tp = table["Simple GET"], table["Heavy computation"], extra["throughput"]
    ratio = tp["thread"]["rps"] / tp["floor"]["rps"]
    added = get["thread"]["p50"] - get["floor"]["p50"]
    warm = get["docker warm"]["p50"] - get["thread"]["p50"]
    cold = get["docker cold"]["p50"] / extra["bare_create_start_first_exec_ms"]["p50"]
    fresh = get["docker fresh"]["p50"] - get["docker warm"]["p50"]
    recovered = extra["next_request_after_timeout_ms"]["p99"]
    checks = [
        (f"thread Simple GET throughput {ratio:.2f}x the floor (target >= 0.5x)", ratio >= 0.5),
        (f"thread adds {added:.2f} ms p50 at concurrency 1 (target <= 1 ms)", added <= 1),
        (f"a warm container adds {warm:.2f} ms p50 over thread (target <= 2 ms)", warm <= 2),
        (
            f"cold container per request {cold:.2f}x bare create+start+first exec (target <= 1.2x)",
            cold <= 1.2,
        ),
        (
            f"fresh container from a warm pool {fresh:+.2f} ms p50 vs warm reuse (target within 5 ms)",
            abs(fresh) <= 5,
        ),
        (f"next request after a timeout within {recovered:.1f} ms (target <= 100 ms)", recovered <= 100),
    ]
    for column in COLUMNS[1:-1]:
        overhead = heavy[column]["p50"] / heavy["floor"]["p50"] - 1
        checks.append(
            (f"heavy computation overhead in {column}: {overhead:+.1%} (target <= 3%)", overhead <= 0.03)
        )
    return checks


def report(table: dict[str, dict[str, dict[str, float]]], extra: dict[str, Any], rounds: int) -> None:
    RESULTS.mkdir(exist_ok=True)
    host = machine()
    engine = subprocess.run(
        ["docker", "version", "-f", "{{.Server.Version}}"], capture_output=True, text=True
    )
    docker, when = engine.stdout.strip(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    heavy_rounds = table["Heavy computation"]["floor"]["n"]
    lines = [
        f"Machine: {host}; Docker engine {docker}; {when}.",
        "",
        f"Latency at concurrency 1, milliseconds p50 / p99 (x the floor's p50); {rounds} interleaved rounds"
        f" ({heavy_rounds:.0f} for heavy computation: compute n={extra['heavy_n']});"
        f" JSON document {extra['json_bytes']} bytes.",
        "",
        "| scenario | " + " | ".join(COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    for scenario, columns in table.items():
        floor = columns["floor"]["p50"]
        cells = [
            f"{c['p50']:.1f} / {c['p99']:.1f} ({c['p50'] / floor:.2f}x)"
            for c in (columns[k] for k in COLUMNS)
        ]
        lines.append(f"| {scenario} | " + " | ".join(cells) + " |")
    tp = extra["throughput"]
    lines += [
        "",
        "Simple GET at concurrency 50 (wrk, 1 thread, its own process):",
        "",
        "| executor | req/s | x floor | p99 ms | non-2xx | gateway RSS idle / under load (MB) |",
        "|---|---|---|---|---|---|",
    ]
    for label, f in tp.items():
        rss = "-" if label == "floor" else f"{f['rss_idle_mb']} / {f['rss_load_mb']}"
        share = f["rps"] / tp["floor"]["rps"]
        lines.append(
            f"| {label} | {f['rps']:.0f} | {share:.2f}x | {f['p99_ms']:.1f} | {f['non_2xx']:.0f} | {rss} |"
        )
    lines += [
        "",
        f"Memory per warm container: {extra['memory_per_warm_container_mb']} MB."
        f" Time to ready with a warm pool of 3: {extra['time_to_ready_s_warm_pool_3']:.2f} s."
        f" Bare create + start + first exec: {extra['bare_create_start_first_exec_ms']['p50']:.1f} ms p50."
        f" Next request after a 504 timeout: {extra['next_request_after_timeout_ms']['p99']:.1f} ms worst.",
        "",
        "Targets:",
        "",
    ]
    checks = targets(table, extra)
    lines += [f"- {'met' if ok else 'MISSED'}: {text}" for text, ok in checks]
    text = "\n".join(lines) + "\n"
    print(text)
    (RESULTS / "latest.md").write_text(text)
    summary_json = {"machine": host, "docker": docker, "latency_ms": table, **extra, "targets": dict(checks)}
    (RESULTS / "latest.json").write_text(json.dumps(summary_json, indent=1))
    chart(table)


def chart(table: dict[str, dict[str, dict[str, float]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(11, 5))
    width = 0.8 / len(COLUMNS)
    for i, column in enumerate(COLUMNS):
        values = [table[s][column]["p50"] for s in table]
        axes.bar([x + i * width for x in range(len(table))], values, width, label=column)
    axes.set_yscale("log")
    axes.set_ylabel("p50 latency, ms (log scale)")
    axes.set_xticks([x + width * (len(COLUMNS) - 1) / 2 for x in range(len(table))], list(table))
    axes.set_title("isogate: latency per scenario and executor, concurrency 1")
    axes.legend(ncol=4, fontsize=8)
    axes.grid(axis="y", which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(RESULTS / "latency.png", dpi=110)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--heavy-rounds", type=int, default=7)
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.heavy_rounds, args.duration))
