"""Throughput of `/echo` through the gateway (thread mode) against bare aiohttp, measured in one run.

Load comes from wrk in its own process, on 127.0.0.1 only, bounded by --duration per run. Runs are
interleaved (bare, gateway, bare, gateway, ...) so drift on a shared machine hits both alike.
Usage: python bench/throughput.py [--duration 10] [--connections 50] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(command: list[str], port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/echo", timeout=1).read()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"server did not start: {command}")


def wrk(url: str, duration: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 30,
    ).stdout
    figures = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])}  # type: ignore[index]
    for pct in ("50", "99"):
        value, unit = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        figures[f"p{pct}_ms"] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    env = {**os.environ, "SECRET_KEY": secrets.token_hex(32), "EXECUTION_MODE": "thread"}
    bare_port, gw_port = free_port(), free_port()
    servers = [
        start([sys.executable, "bench/bare_server.py", "--port", str(bare_port)], bare_port, env),
        start(
            [sys.executable, "-m", "proxy", "--config", "config.yaml", "--port", str(gw_port)], gw_port, env
        ),
    ]
    targets = {
        "bare aiohttp hello": f"http://127.0.0.1:{bare_port}/hello",
        "bare aiohttp + echo handler": f"http://127.0.0.1:{bare_port}/echo?x=1",
        "isogate thread mode /echo": f"http://127.0.0.1:{gw_port}/echo?x=1",
    }
    results: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
    try:
        for _ in range(args.repeats):
            for name, url in targets.items():
                results[name].append(wrk(url, args.duration, args.connections))
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=10)
    floor = statistics.median(r["rps"] for r in results["bare aiohttp hello"])
    print(
        f"c={args.connections}, {args.duration}s x {args.repeats} per target, medians,"
        f" wrk -t1, {os.cpu_count()} cores"
    )
    print("| target | req/s | p50 ms | p99 ms | req/s vs bare hello |\n|---|---|---|---|---|")
    for name, runs in results.items():
        rps = statistics.median(r["rps"] for r in runs)
        p50 = statistics.median(r["p50_ms"] for r in runs)
        p99 = statistics.median(r["p99_ms"] for r in runs)
        print(f"| {name} | {rps:.0f} | {p50:.2f} | {p99:.2f} | {rps / floor:.2f}x |")


if __name__ == "__main__":
    main()
