"""Goodput under overload: one gateway process, thread mode, a trusted caller's GET /echo. Its capacity is
measured with wrk -c50; then 1,000 connections send at once and retry as soon as they are answered (wrk
ignores Retry-After), and the successful answers a second are compared with that capacity. Same run,
loopback, rounds interleaved, medians.

Targets (issue 24): successful answers a second under the storm >= 80% of the c=50 capacity, and no answer
slower than the route's deadline (limits.execution.max_time_ms).

Writes bench/results/overload.{md,json}.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import ROOT, bench_env, gateway, publish, run_in_rounds  # noqa: E402
from bench.scenarios import token  # noqa: E402
from bench.upstream import wrk  # noqa: E402

PATH = "/echo?x=1"
STORM = 1000


async def main(rounds: int, seconds: int) -> None:
    env = bench_env()
    tmp = Path(tempfile.mkdtemp(prefix="isogate-overload-"))
    # wrk's 1,000 connections come from one address: the per-address cap is lifted for it, as for a proxy.
    server = gateway(
        "overload",
        tmp,
        env,
        debug_headers=False,
        execution_mode="thread",
        docker={"enabled": False},
        server={"max_connections": 4096, "max_connections_per_ip": 4096},
    )
    deadline_ms = float(server_deadline())
    auth = ["-H", f"Authorization: Bearer {token(env['SECRET_KEY'], 'established', trust='trusted')}"]
    runs: dict[str, list[dict[str, float]]] = {"c=50": [], f"c={STORM}": []}
    try:
        async with aiohttp.ClientSession() as session:
            await server.ready(session, PATH)
        wrk(server.url + PATH, 50, 2, auth)  # warm-up: the caller becomes established
        for _ in range(rounds):
            for name, connections in (("c=50", 50), (f"c={STORM}", STORM)):
                figures = wrk(server.url + PATH, connections, seconds, auth)
                figures["ok_per_s"] = figures["rps"] - figures["non_2xx"] / seconds
                runs[name].append(figures)
    finally:
        server.stop()
    med = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()}
    capacity, storm = med["c=50"], med[f"c={STORM}"]
    share = storm["ok_per_s"] / capacity["ok_per_s"]
    slowest = max(r["max_ms"] for r in runs[f"c={STORM}"])
    lines = [
        f"Overload, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: GET {PATH}, thread mode,"
        f" one worker, a trusted caller; wrk -t1, {rounds} interleaved rounds of {seconds} s, medians.",
        "",
        "| load | answers/s | successful/s | refused/s | p50 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, f in med.items():
        lines.append(
            f"| {name} | {f['rps']:,.0f} | {f['ok_per_s']:,.0f} | {f['non_2xx'] / seconds:,.0f}"
            f" | {f['p50_ms']:.1f} | {f['p99_ms']:.1f} | {f['max_ms']:.0f} |"
        )
    lines += [
        "",
        f"- {'met' if share >= 0.8 else 'MISSED'}: under {STORM} retrying connections, {share:.0%} of the"
        f" c=50 capacity is served successfully (>= 80%)",
        f"- {'met' if slowest <= deadline_ms else 'MISSED'}: the slowest answer took {slowest:.0f} ms"
        f" (the route's deadline: {deadline_ms:.0f} ms)",
    ]
    publish("overload", lines, runs)


def server_deadline() -> int:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    return int(config["limits"]["execution"]["max_time_ms"])


if __name__ == "__main__":
    run_in_rounds(main, __doc__)
