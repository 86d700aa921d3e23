"""Where the upstream path's CPU goes: CPU per request (every thread of the process) under wrk -c50 for the
bare aiohttp forwarder and isogate's upstream route, and for isogate with one stage taken out at a time
(a launcher patches it: the decision is computed once and reused, the request's accounting skipped, the
decision log off). Rounds interleaved, medians. req/s on this machine moves by 15-20 us of CPU a request
from run to run: read differences under that with more rounds.

A stage taken out is a measurement, never a setting: the gateway needs every one of them.

Usage: python bench/upstream_cpu.py [--rounds 3] [--seconds 5]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import Server, bare, bench_env, free_port, gateway, run_in_rounds  # noqa: E402
from bench.scenarios import token  # noqa: E402
from bench.upstream import TARGET, wrk  # noqa: E402

# Run `python -m proxy` with one stage patched out (STAGE: judge | finish | decision_log).
LAUNCHER = """
import logging, os, runpy, sys
stage = os.environ["STAGE"]
import proxy.app as app, proxy.middleware as middleware
if stage == "judge":
    first, judge = {}, app.judge
    def once(gw, trace, config, incoming, identity, route):
        if not first:
            first["decision"] = judge(gw, trace, config, incoming, identity, route)
            first["risk"] = trace.risk
        trace.risk, trace.decision = first["risk"], first["decision"]
        return first["decision"]
    app.judge = once
elif stage == "finish":
    middleware.finish = lambda *args: None
elif stage == "decision_log":
    logging.getLogger("isogate.decision").setLevel(logging.WARNING)
sys.argv = ["proxy", *sys.argv[1:]]
runpy.run_module("proxy", run_name="__main__", alter_sys=True)
"""
STAGES = ("judge", "finish", "decision_log")


def cpu_seconds(pid: int) -> float:
    """User and system CPU of every thread of `pid` so far."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


async def main(rounds: int, seconds: int) -> None:
    env = bench_env()
    tmp = Path(tempfile.mkdtemp(prefix="isogate-upstream-cpu-"))
    launcher = tmp / "launcher.py"
    launcher.write_text(LAUNCHER)
    servers: dict[str, Server] = {}
    origin = bare(env)
    try:
        port = free_port()
        command = [sys.executable, "bench/forwarder.py", "--port", str(port), "--upstream", origin.url]
        servers["bare aiohttp forwarder"] = Server(command, env, port)
        route = {"path": "/echo", "upstream": origin.url}
        for stage in ("", *STAGES):
            run = ["env", f"STAGE={stage}", sys.executable, str(launcher)] if stage else None
            name = f"isogate without {stage}" if stage else "isogate"
            servers[name] = gateway(
                f"cpu-{stage or 'all'}", tmp, env, debug_headers=False, routes=[route], launcher=run
            )
        auth = ["-H", f"Authorization: Bearer {token(env['SECRET_KEY'], 'established', trust='trusted')}"]
        async with aiohttp.ClientSession() as session:
            await origin.ready(session)
            for server in servers.values():
                await server.ready(session)
        for server in servers.values():
            wrk(server.url + TARGET, 1, 1, auth)  # warm-up: connections, the caller's history
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in servers}
        for _ in range(rounds):
            for name, server in servers.items():
                before = cpu_seconds(server.process.pid)
                figures = wrk(server.url + TARGET, 50, seconds, auth)
                spent = cpu_seconds(server.process.pid) - before
                runs[name].append((spent / (figures["rps"] * seconds) * 1e6, figures["rps"]))
    finally:
        for server in servers.values():
            server.stop()
        origin.stop()
    base = statistics.median(us for us, _ in runs["bare aiohttp forwarder"])
    whole = statistics.median(us for us, _ in runs["isogate"])
    print(f"GET {TARGET}, wrk -t1 -c50, {rounds} interleaved rounds of {seconds} s, medians\n")
    print("| server | CPU us a request | x forwarder's | less than isogate |\n|---|---|---|---|")
    for name, samples in runs.items():
        us = statistics.median(us for us, _ in samples)
        print(f"| {name} | {us:.0f} | {us / base:.2f} | {whole - us:+.0f} |")


if __name__ == "__main__":
    run_in_rounds(main, __doc__)
