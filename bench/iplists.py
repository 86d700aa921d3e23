"""IP lists at scale: load time of list files, lookup cost, and how long a live reload of a large list
stalls the event loop (parsing runs in a worker thread; only the swap runs on the loop).

Usage: python bench/iplists.py [--sizes 100000 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from policy.iplist import IpSet, parse_address  # noqa: E402
from proxy.gateway import Gateway  # noqa: E402
from proxy.loader import ConfigSource, load  # noqa: E402
from proxy.reload import Reloader  # noqa: E402

SECRET = "bench-secret-0123456789abcdef0123456789"


def blocklist(size: int, seed: int) -> str:
    """A published-blocklist-shaped file: 80% single addresses, 20% /24s, some comments."""
    rng = random.Random(seed)
    lines = ["# generated blocklist"]
    for i in range(size):
        a, b, c, d = rng.randrange(1, 224), rng.randrange(256), rng.randrange(256), rng.randrange(256)
        lines.append(f"{a}.{b}.{c}.0/24" if i % 5 == 0 else f"{a}.{b}.{c}.{d}")
    return "\n".join(lines) + "\n"


def write_config(folder: Path, size: int, seed: int) -> Path:
    (folder / "deny.txt").write_text(blocklist(size, seed))
    config = {
        "execution_mode": "thread",
        "auth": {"secret_key": SECRET},
        "docker": {"enabled": False},
        "ip_lists": {"deny": ["file:deny.txt"]},
        "routes": [{"path": "/echo", "handler": "echo"}],
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def lookup_us(ipset: IpSet, count: int = 50_000) -> tuple[float, float]:
    rng = random.Random(7)
    probes = [
        f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}"
        for _ in range(count)
    ]
    parse_address.cache_clear()
    started = time.perf_counter()
    for probe in probes:
        _ = probe in ipset
    cold = (time.perf_counter() - started) / count * 1e6
    started = time.perf_counter()
    for probe in probes:
        _ = probe in ipset
    return cold, (time.perf_counter() - started) / count * 1e6


async def reload_stall(path: Path, size: int) -> tuple[float, float]:
    """(reload seconds, longest event-loop stall in ms) while the gateway reloads a new list of `size`."""
    loaded = load(ConfigSource(path, env={}))
    config = loaded.config
    gateway = Gateway.create(config, {}, path.parent)
    reloader = Reloader(gateway, loaded.source, loaded)
    write_config(path.parent, size, seed=2)  # a different list of the same size
    worst, stop = 0.0, asyncio.Event()

    async def ticker() -> None:
        nonlocal worst
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            worst = max(worst, (now - last) * 1000 - 1)
            last = now

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    outcome = await reloader.reload("bench")
    took = time.perf_counter() - started
    stop.set()
    await tick
    assert outcome.status == "applied", outcome
    return took, worst


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    args = parser.parse_args()
    header = [
        "entries",
        "load config + list (s)",
        "lookup us (uncached / cached)",
        "live reload (s)",
        "worst stall (ms)",
    ]
    print("| " + " | ".join(header) + " |")
    print("|---|---|---|---|---|")
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            path = write_config(Path(tmp), size, seed=1)
            loads = []
            for _ in range(3):
                started = time.perf_counter()
                loaded = load(ConfigSource(path, env={}))
                loads.append(time.perf_counter() - started)
            cold, warm = lookup_us(loaded.config.ip_lists.deny_set)
            took, stall = asyncio.run(reload_stall(path, size))
            figures = [f"{size:,}", f"{statistics.median(loads):.3f}", f"{cold:.2f} / {warm:.2f}"]
            print("| " + " | ".join([*figures, f"{took:.3f}", f"{stall:.1f}"]) + " |")


if __name__ == "__main__":
    main()
