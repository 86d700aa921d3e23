"""The `crs` factor on a labelled corpus (no HTTP): how often it fires on normal and attack requests at
paranoia levels 1 and 2, which rule families, what it adds to the scoring cost, compile time and memory.

Usage: python bench/crs.py [CORPUS.jsonl[.gz]] (default: the test fixture's CSIC sample)
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import publish  # noqa: E402
from bench.detection import CALLER, HISTORY, ROUTE, read  # noqa: E402
from policy.config import Config  # noqa: E402
from policy.corpus import to_incoming  # noqa: E402
from policy.crs import crs_factor  # noqa: E402
from policy.incoming import Incoming  # noqa: E402
from policy.risk import Factor, RiskInput, score  # noqa: E402
from proxy import crs as crs_module  # noqa: E402
from proxy.loader import create_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests/fixtures/csic2010-sample.jsonl.gz"


def cost(incomings: list[Incoming], config: Config, plugins: dict[str, Factor]) -> tuple[float, float]:
    """Median and p99 microseconds of the whole score (every factor) per request."""
    samples = []
    for incoming in incomings:
        started = time.perf_counter_ns()
        score(RiskInput(incoming, CALLER, HISTORY, ROUTE, config.risk.max_scan_bytes), config, plugins)
        samples.append((time.perf_counter_ns() - started) / 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.99 * len(samples))]


def level_row(level: int, normal: list[Incoming], attacks: list[Incoming]) -> tuple[str, Counter[str]]:
    cache = tempfile.mkdtemp(prefix="crs-bench-")
    config = create_config({"risk": {"crs": {"enabled": True, "paranoia_level": level, "cache_dir": cache}}})
    fresh = dataclasses.replace(config.risk.crs, cache_dir=tempfile.mkdtemp(prefix="crs-bench-"))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    crs_module._last = None
    started = time.perf_counter()
    engine, parsed = crs_module.load_crs(fresh, ROOT)  # nothing cached: parse and compile
    compile_s = time.perf_counter() - started
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024
    crs_module._last = None
    started = time.perf_counter()
    crs_module.load_crs(fresh, ROOT)  # a restart: parse, then the databases from the cache
    load_ms = (time.perf_counter() - started) * 1000
    factor, fired, families = crs_factor(engine), Counter[str](), Counter[str]()
    cold = cost(normal + attacks, config, {"crs": factor})  # first sight of every value
    held, capacity, missed = engine.cached()  # more misses than it holds: the next pass misses too
    warm = cost(normal + attacks, config, {"crs": factor})  # values seen before (if the cache held them)
    for kind, incomings in (("normal", normal), ("attacks", attacks)):
        for incoming in incomings:
            reason = factor(RiskInput(incoming, CALLER, HISTORY, ROUTE, 65536), config)
            if reason:
                fired[kind] += 1
                if kind == "attacks":
                    families.update({i[:3] for i in reason.split()[0].removeprefix("crs=").split(",")})
    whole_mb = len(engine.compiled.database) / 1e6
    databases_mb = sum(len(database) for _, database in engine.compiled.databases) / 1e6
    row = (
        f"| {level} | {len(engine.rules)} ({engine.expressions:,} expressions) | {compile_s:.1f}"
        f" | {load_ms:.0f} | {whole_mb:.1f} + {databases_mb:.1f} | {grown:.0f}"
        f" | {fired['normal']} ({100 * fired['normal'] / len(normal):.2f}%)"
        f" | {fired['attacks']} ({100 * fired['attacks'] / len(attacks):.1f}%)"
        f" | {cold[0]:.0f} / {cold[1]:.0f} | {warm[0]:.0f} / {warm[1]:.0f}"
        f" | {missed:,} / {held:,} of {capacity:,} |"
    )
    return row, families


def main(corpus: Path) -> None:
    records = read(corpus)
    normal = [to_incoming(r) for r in records if not r.get("expect_attack")]
    attacks = [to_incoming(r) for r in records if r.get("expect_attack")]
    base = create_config({"risk": {"crs": {"enabled": False}}})
    plain = cost(normal + attacks, base, {})
    lines = [
        f"CRS factor, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {corpus.name},"
        f" {len(normal):,} normal and {len(attacks):,} attack requests, an established trusted caller.",
        "Score: the whole score (every factor) per request, microseconds; cold: every value seen for the"
        " first time; warm: the same requests again, warm only as far as the value cache held the first"
        " pass's values (last column: the first pass's misses / values held, of the cache's capacity).",
        "",
        "| paranoia | rules | compile s | restart ms | databases MB (whole set + one a pipeline) | RSS +MB"
        " | normal flagged | attacks flagged | score p50 / p99 cold | warm | values cached |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    families = {}
    for level in (1, 2):
        row, families[level] = level_row(level, normal, attacks)
        lines.append(row)
    lines += ["", f"Without the factor: score p50 / p99 {plain[0]:.0f} / {plain[1]:.0f} us."]
    for level, found in families.items():
        listed = ", ".join(f"{family}: {n}" for family, n in sorted(found.items()))
        lines.append(f"Rule families on the attacks flagged, PL{level}: {listed}")
    publish("crs", lines, {"families": families})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("corpus", nargs="?", type=Path, default=CORPUS)
    main(parser.parse_args().corpus)
