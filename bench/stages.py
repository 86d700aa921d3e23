"""Where a request's time goes: CPU per request under load for the floor, the skeleton and isogate, and
isogate's own stages, each timed on the event loop while wrk drives it (thread-mode /echo, a trusted
caller, concurrency 50, as bench/throughput.py).

req/s on this shared machine moves 1.5x from minute to minute; CPU per request moves less, and issue 13's
target reads directly in it: one process at 0.5x the floor's req/s is at most twice the floor's CPU per
request (both run one core flat out; wrk has the other). The stages are the gateway view's steps, wrapped
with a timer in a gateway started by this script (`--serve`); the wrappers add ~0.3 us each.

Writes bench/results/stages.{md,json}.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import Server, bare, bench_env, gateway, publish, run_in_rounds, skeleton  # noqa: E402
from bench.scenarios import token  # noqa: E402
from bench.upstream import wrk  # noqa: E402

PATH = "/echo?x=1"
COLLECTOR = "garbage collector (wherever it ran)"
OUT = "ISOGATE_STAGES_OUT"  # where a --serve gateway writes its figures on SIGUSR1 (SIGUSR2: start again)
# (module, function, stage): the view's steps in order; a stage inside another one is indented by "  ".
STAGES = [
    ("proxy.middleware", "new_request_id", "request id"),
    ("proxy.app", "client_ip", "client address"),
    ("proxy.app", "authenticate", "identity (token cache)"),
    ("proxy.app", "check_path", "path check"),
    ("proxy.app", "match_route", "route"),
    ("proxy.app", "read_incoming", "read the request"),
    ("proxy.app", "judge", "judge"),
    ("proxy.app", "score", "  score (every factor)"),
    ("proxy.app", "decide", "  decide"),
    ("proxy.app", "handler_of", "handler lookup"),
    ("proxy.app", "handler_request", "handler request"),
    ("proxy.app", "to_web_response", "response"),
    ("proxy.middleware", "finish", "accounting"),
    ("proxy.stats", "Stats.record", "  entity stats"),
    ("proxy.metrics", "Metrics.request", "  metrics"),
    ("proxy.decisions", "DecisionLog.record", "  decision log"),
]


def serve(argv: list[str]) -> None:
    """Run `python -m proxy argv` with the stages timed; figures to $ISOGATE_STAGES_OUT on SIGUSR1."""
    import importlib
    import inspect

    spent = {stage: 0.0 for _, _, stage in STAGES}
    clock = time.perf_counter

    def timed(function: Callable[..., Any], stage: str) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(function):  # read_incoming: the body is in already, it does not wait

            @functools.wraps(function)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                started = clock()
                try:
                    return await function(*args, **kwargs)
                finally:
                    spent[stage] += clock() - started

            return timed_async

        @functools.wraps(function)
        def timed_sync(*args: Any, **kwargs: Any) -> Any:
            started = clock()
            try:
                return function(*args, **kwargs)
            finally:
                spent[stage] += clock() - started

        return timed_sync

    for module_name, name, stage in STAGES:
        owner: Any = importlib.import_module(module_name)
        *classes, attribute = name.split(".")
        for cls in classes:
            owner = getattr(owner, cls)
        setattr(owner, attribute, timed(getattr(owner, attribute), stage))
    started = [time.thread_time()]
    collecting = [0.0]
    spent[COLLECTOR] = 0.0

    def on_collect(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collecting[0] = clock()
        else:
            spent[COLLECTOR] += clock() - collecting[0]

    gc.callbacks.append(on_collect)

    def restart(*_: object) -> None:
        for stage in spent:
            spent[stage] = 0.0
        started[0] = time.thread_time()

    def report(*_: object) -> None:
        figures = {"loop_cpu_s": time.thread_time() - started[0], "stages_s": spent}
        Path(os.environ[OUT]).write_text(json.dumps(figures))

    signal.signal(signal.SIGUSR1, report)
    signal.signal(signal.SIGUSR2, restart)
    from proxy.__main__ import main as proxy_main

    proxy_main(argv)


def cpu_s(pid: int) -> float:
    """The process's CPU time so far (user + system, every thread)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def isogate(tmp: Path, env: dict[str, str]) -> Server:
    """The gateway as config.yaml ships it, in thread mode, started by `serve` below (stages timed)."""
    return gateway(
        "stages",
        tmp,
        {**env, OUT: str(tmp / "stages.json")},
        debug_headers=False,
        launcher=[sys.executable, __file__, "--serve"],
        execution_mode="thread",
        docker={"enabled": False},
    )


async def main(rounds: int, seconds: int) -> None:
    env = bench_env()
    tmp = Path(tempfile.mkdtemp(prefix="isogate-stages-"))
    servers = {"floor": bare(env), "skeleton": skeleton(env), "isogate": isogate(tmp, env)}
    auth = f"Bearer {token(env['SECRET_KEY'], 'established', trust='trusted')}"
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
    try:
        async with aiohttp.ClientSession() as session:
            for server in servers.values():
                await server.ready(session, PATH)
                for _ in range(200):  # warm-up: the caller becomes established
                    async with session.get(server.url + PATH, headers={"Authorization": auth}) as response:
                        await response.read()
        for _ in range(rounds):
            for name, server in servers.items():
                gateway = name == "isogate"
                if gateway:
                    server.process.send_signal(signal.SIGUSR2)
                    await asyncio.sleep(0.2)
                before = cpu_s(server.process.pid)
                figures: dict[str, Any] = wrk(
                    server.url + PATH, 50, seconds, ["-H", f"Authorization: {auth}"]
                )
                figures["requests"] = figures["rps"] * seconds
                figures["cpu_us"] = (cpu_s(server.process.pid) - before) / figures["requests"] * 1e6
                if gateway:
                    server.process.send_signal(signal.SIGUSR1)
                    await asyncio.sleep(0.5)
                    figures.update(json.loads((tmp / "stages.json").read_text()))
                runs[name].append(figures)
    finally:
        for server in servers.values():
            server.stop()
    report(runs, rounds, seconds)


def report(runs: dict[str, list[dict[str, Any]]], rounds: int, seconds: int) -> None:
    def median(name: str, get: Callable[[dict[str, Any]], float]) -> float:
        return statistics.median(get(run) for run in runs[name])

    cpu = {name: median(name, lambda run: float(run["cpu_us"])) for name in runs}
    rps = {name: median(name, lambda run: float(run["rps"])) for name in runs}
    lines = [
        f"Stages, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: GET {PATH}, thread mode, a trusted"
        f" caller; wrk -t1 -c50, {rounds} interleaved rounds of {seconds} s, medians.",
        "",
        "| server | req/s | x floor | CPU us/request | x floor |",
        "|---|---|---|---|---|",
    ]
    for name in runs:
        lines.append(
            f"| {name} | {rps[name]:,.0f} | {rps[name] / rps['floor']:.2f} | {cpu[name]:.0f}"
            f" | {cpu[name] / cpu['floor']:.2f} |"
        )
    loop = median("isogate", lambda run: run["loop_cpu_s"] / run["requests"] * 1e6)
    lines += ["", f"isogate's event loop: {loop:.0f} us CPU a request, of which its stages:", ""]
    lines += ["| stage | us/request |", "|---|---|"]
    top = 0.0
    for stage in [*(stage for _, _, stage in STAGES), COLLECTOR]:
        us = median("isogate", lambda run: run["stages_s"][stage] / run["requests"] * 1e6)  # noqa: B023
        top += 0.0 if stage.startswith(" ") or stage == COLLECTOR else us
        lines.append(f"| {stage.replace('  ', '- ')} | {us:.1f} |")
    budget = 2 * cpu["floor"]
    lines += [
        f"| all stages (the collector aside) | {top:.1f} |",
        "",
        f"- 0.5x the floor's req/s allows {budget:.0f} us of CPU a request; the skeleton (middleware, thread"
        f" hop, no logic) uses {cpu['skeleton']:.0f}, leaving {budget - cpu['skeleton']:.0f} us for the"
        f" stages, which take {top:.0f}",
    ]
    publish("stages", lines, runs)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2:])
    else:
        run_in_rounds(main, __doc__)
