"""Fair admission: 120 callers (100 untrusted, 20 trusted with two requests going) on a docker route with 2
containers, for --seconds (60), each caller retrying as Retry-After says. Two gateways in the same run: the
shipped door (admission.slots auto), and the door held wide open (slots 1000: the container pool's own
first-come queue alone, as before issue 24). Loopback, bounded in time.

Targets (issue 24): every caller served; report the spread (answers per caller, the longest wait for a
caller's first answer and between two of its answers).

Writes bench/results/fairness.{md,json}.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import Server, bench_env, gateway, publish  # noqa: E402
from bench.scenarios import token  # noqa: E402

CALLERS = 120
TRUSTED_EVERY = 6  # every 6th caller is trusted: 20 of 120
PATH = "/compute?n=2000"


async def run(server: Server, secret: str, seconds: float) -> dict[str, Any]:
    """Every caller's answers, and its longest wait for one."""
    answers: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    gaps: dict[str, float] = {}
    started = time.monotonic()
    ends = started + seconds
    connector = aiohttp.TCPConnector(limit=0)  # one connection a request: no queue on this side

    async def caller(session: aiohttp.ClientSession, i: int) -> None:
        who = f"caller-{i}"
        trust = "trusted" if i % TRUSTED_EVERY == 0 else "untrusted"
        headers = {"Authorization": f"Bearer {token(secret, who, trust=trust)}"}
        last = started
        for _ in range(100_000):  # bounded; ends with the run
            if time.monotonic() > ends:
                break
            async with session.get(server.url + PATH, headers=headers) as response:
                body = await response.read()
                error = "" if response.status == 200 else " " + body.decode(errors="replace")[:40]
                statuses[f"{response.status}{error}"] += 1
                if response.status == 200:
                    answers[who] += 1
                    now = time.monotonic()
                    gaps[who] = max(gaps.get(who, 0.0), now - last)
                    last = now
                else:
                    await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
        gaps[who] = max(gaps.get(who, 0.0), min(time.monotonic(), ends) - last)

    async with aiohttp.ClientSession(connector=connector) as session:
        trusted = range(0, CALLERS, TRUSTED_EVERY)
        await asyncio.gather(
            *(caller(session, i) for i in range(CALLERS)), *(caller(session, i) for i in trusted)
        )
    return {"answers": dict(answers), "statuses": dict(statuses), "gaps": gaps}


def describe(name: str, result: dict[str, Any], seconds: float) -> str:
    counts = [result["answers"].get(f"caller-{i}", 0) for i in range(CALLERS)]
    trusted = [counts[i] for i in range(0, CALLERS, TRUSTED_EVERY)]
    others = [counts[i] for i in range(CALLERS) if i % TRUSTED_EVERY]
    served = sum(1 for c in counts if c)
    return (
        f"| {name} | {served} of {CALLERS} | {min(others)} / {statistics.median(others):.0f} / {max(others)}"
        f" | {statistics.mean(trusted):.1f} | {max(result['gaps'].values()):.1f}"
        f" | {sum(counts) / seconds:.0f} | {result['statuses']} |"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    env = bench_env()
    tmp = Path(tempfile.mkdtemp(prefix="isogate-fairness-"))
    docker = {"warm_pool_size": 2, "max_containers": 2}
    server_overrides = {"max_connections_per_ip": 1024}  # all callers come from 127.0.0.1
    results: dict[str, Any] = {}
    for name, slots in (
        ("door (admission.slots auto)", "auto"),
        ("no door (slots 1000: the pool's queue)", 1000),
    ):
        server = gateway(
            f"fair-{slots}",
            tmp,
            env,
            debug_headers=False,
            execution_mode="docker",
            docker=docker,
            admission={"slots": slots},
            server=server_overrides,
        )
        try:
            async with aiohttp.ClientSession() as session:
                await server.ready(session)
            results[name] = await run(server, env["SECRET_KEY"], args.seconds)
        finally:
            server.stop()
    lines = [
        f"Fair admission, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: GET {PATH} on a docker route,"
        f" 2 containers, {CALLERS} callers (20 trusted with two requests going), {args.seconds:.0f} s,"
        " clients waiting as Retry-After says.",
        "",
        "| gateway | callers served | untrusted answers min / median / max | trusted mean"
        " | longest wait without an answer (s) | answers/s | statuses |",
        "|---|---|---|---|---|---|---|",
        *(describe(name, result, args.seconds) for name, result in results.items()),
    ]
    door = results["door (admission.slots auto)"]
    served = sum(1 for i in range(CALLERS) if door["answers"].get(f"caller-{i}"))
    lines += ["", f"- {'met' if served == CALLERS else 'MISSED'}: {served} of {CALLERS} callers served"]
    publish("fairness", lines, results)


if __name__ == "__main__":
    asyncio.run(main())
