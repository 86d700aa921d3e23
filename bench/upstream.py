"""Upstream routes against their anchors, same run, loopback: the upstream direct (a bare aiohttp+uvloop
JSON echo), a bare aiohttp forwarder (bench/forwarder.py), nginx `proxy_pass` with upstream keep-alive
(Debian's nginx, one worker), and isogate's upstream route with a trusted caller (a thread decision:
production).
wrk -t1: p50 at concurrency 1 and req/s + p99 at concurrency 50; rounds interleaved, medians.

Writes bench/results/upstream.{md,json}. Needs wrk and nginx: `make bench` installs them.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import Server, bare, bench_env, free_port, gateway, publish, run_in_rounds  # noqa: E402
from bench.scenarios import token  # noqa: E402

TARGET = "/echo?x=1"
NGINX = """
{modules}
worker_processes {workers};
daemon off;
pid {tmp}/nginx-{port}.pid;
error_log {tmp}/nginx-{port}.error.log error;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  upstream app {{ server 127.0.0.1:{upstream}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port} reuseport;
    {server}
    location / {{ proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }}
  }}
}}
"""


def wrk(url: str, connections: int, seconds: int, headers: list[str]) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", *headers, url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout

    def ms(percent: str) -> float:
        value, unit = re.search(rf"\s{percent}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    value, unit = re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return {
        "rps": rps,
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
        "max_ms": float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit],
        "non_2xx": float(errors[1]) if errors else 0,
    }


def nginx(tmp: Path, upstream: int, workers: int = 1, modules: str = "", server: str = "") -> Server:
    """Debian's nginx proxying to 127.0.0.1:`upstream` with keep-alive (`modules` loaded, `server` in its
    server block: bench/waf.py adds ModSecurity)."""
    port = free_port()
    for folder in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / folder).mkdir(exist_ok=True)
    conf = tmp / f"nginx-{port}.conf"
    text = NGINX.format(
        tmp=tmp, upstream=upstream, port=port, workers=workers, modules=modules, server=server
    )
    conf.write_text(text)
    binary = shutil.which("nginx", path="/usr/sbin:/usr/bin:/sbin:/bin") or "nginx"
    return Server([binary, "-p", str(tmp), "-c", str(conf)], {}, port)


async def main(rounds: int, seconds: int) -> None:
    env = bench_env()
    tmp = Path(tempfile.mkdtemp(prefix="isogate-upstream-"))
    servers: dict[str, Server] = {}
    try:
        origin = servers["direct"] = bare(env)
        port = free_port()
        command = [sys.executable, "bench/forwarder.py", "--port", str(port), "--upstream", origin.url]
        servers["bare aiohttp forwarder"] = Server(command, env, port)
        servers["nginx proxy_pass"] = nginx(tmp, origin.port)
        route = {"path": "/echo", "upstream": origin.url}
        servers["isogate upstream route"] = gateway(
            "upstream", tmp, env, execution_mode="hybrid", routes=[route]
        )
        await measure(servers, env, rounds, seconds)
    finally:
        for server in servers.values():
            server.stop()


async def measure(servers: dict[str, Server], env: dict[str, str], rounds: int, seconds: int) -> None:
    auth = ["-H", f"Authorization: Bearer {token(env['SECRET_KEY'], 'established', trust='trusted')}"]
    samples: dict[str, dict[str, list[dict[str, float]]]] = {name: {"c1": [], "c50": []} for name in servers}
    async with aiohttp.ClientSession() as session:
        for server in servers.values():
            await server.ready(session)
    for name in servers:  # warm-up: connections, the trusted caller's history
        wrk(servers[name].url + TARGET, 1, 1, auth)
    for _ in range(rounds):
        for name, server in servers.items():
            samples[name]["c1"].append(wrk(server.url + TARGET, 1, seconds, auth))
            samples[name]["c50"].append(wrk(server.url + TARGET, 50, seconds, auth))
    report(samples, rounds, seconds)


def median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def report(samples: dict[str, dict[str, list[dict[str, float]]]], rounds: int, seconds: int) -> None:
    direct = samples["direct"]
    forwarder = median(samples["bare aiohttp forwarder"]["c50"], "rps")
    lines = [
        f"Upstream routes, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: wrk -t1, {seconds} s a run,"
        f" medians of {rounds} interleaved rounds; GET {TARGET} (a JSON echo) through each.",
        "",
        "| path | p50 ms, c=1 | over direct | req/s, c=50 | x direct | x bare forwarder | p99 ms, c=50 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, runs in samples.items():
        p50, rps = median(runs["c1"], "p50_ms"), median(runs["c50"], "rps")
        lines.append(
            f"| {name} | {p50:.3f} | {p50 - median(direct['c1'], 'p50_ms'):+.3f} | {rps:,.0f}"
            f" | {rps / median(direct['c50'], 'rps'):.2f}x | {rps / forwarder:.2f}x"
            f" | {median(runs['c50'], 'p99_ms'):.2f} |"
        )
    ours = samples["isogate upstream route"]
    added = median(ours["c1"], "p50_ms") - median(direct["c1"], "p50_ms")
    share = median(ours["c50"], "rps") / forwarder
    errors = sum(run["non_2xx"] for runs in ours.values() for run in runs)
    lines += [
        "",
        "Targets:",
        "",
        f"- {'met' if added <= 1 else 'MISSED'}: isogate adds {added:.3f} ms p50 over direct, c=1 (<= 1 ms)",
        f"- {'met' if share >= 0.5 else 'MISSED'}: isogate {share:.2f}x the bare forwarder's req/s at c=50"
        " (>= 0.5x)",
        f"- non-2xx answers from isogate: {errors:.0f}",
    ]
    publish("upstream", lines, samples)


if __name__ == "__main__":
    run_in_rounds(main, __doc__)
