"""The `crs` factor on a labelled corpus (no HTTP): how often it fires on normal and attack requests at
paranoia levels 1 and 2, which rule families, what it adds to the scoring cost, compile time and memory.

Usage: python bench/crs.py [CORPUS.jsonl[.gz]] (default: the test fixture's CSIC sample)
"""

from __future__ import annotations

import argparse
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
from policy.risk import Factor, RiskInput, score  # noqa: E402
from proxy import crs as crs_module  # noqa: E402
from proxy.loader import create_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def cost(incomings: list, config: Config, plugins: dict[str, Factor]) -> tuple[float, float]:
    samples = []
    for incoming in incomings:
        started = time.perf_counter_ns()
        score(RiskInput(incoming, CALLER, HISTORY, ROUTE, config.risk.max_scan_bytes), config, plugins)
        samples.append((time.perf_counter_ns() - started) / 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.99 * len(samples))]


def main(corpus: Path) -> None:
    records = read(corpus)
    normal = [to_incoming(r) for r in records if not r.get("expect_attack")]
    attacks = [to_incoming(r) for r in records if r.get("expect_attack")]
    lines = [
        f"CRS factor, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {corpus.name}, {len(normal):,} normal"
        f" and {len(attacks):,} attack requests; an established trusted caller; scoring cost per request"
        " (the whole score, all factors), each request scored once (no warm value caches), then again.",
        "",
        "| paranoia | rules | compile s | cache load ms | database MB | RSS +MB | normal flagged | attacks flagged |"
        " score p50/p99 us, cold | warm |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    base = create_config({"risk": {"crs": {"enabled": False}}})
    plain_cold = cost(normal + attacks, base, {})
    families: dict[int, Counter[str]] = {}
    for level in (1, 2):
        settings = {"enabled": True, "paranoia_level": level, "cache_dir": tempfile.mkdtemp(prefix="crs-bench-")}
        config = create_config({"risk": {"crs": settings}})
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        crs_module._last = None
        started = time.perf_counter()
        engine, _ = crs_module.load_crs(config.risk.crs, ROOT)
        compile_s = time.perf_counter() - started
        crs_module._last = None
        started = time.perf_counter()
        crs_module.load_crs(config.risk.crs, ROOT)
        load_ms = (time.perf_counter() - started) * 1000
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024
        factor = crs_factor(engine)
        fired = {"normal": 0, "attacks": 0}
        families[level] = Counter()
        for kind, incomings in (("normal", normal), ("attacks", attacks)):
            for incoming in incomings:
                reason = factor(RiskInput(incoming, CALLER, HISTORY, ROUTE, 65536), config)
                if reason:
                    fired[kind] += 1
                    if kind == "attacks":
                        ids = reason.split()[0].removeprefix("crs=").split(",")
                        families[level].update({rule_id[:3] for rule_id in ids})
        crs_module._last = None
        plugins = {"crs": crs_factor(engine)}
        cold = cost(normal + attacks, config, plugins)
        warm = cost(normal + attacks, config, plugins)
        lines.append(
            f"| {level} | {len(engine.rules)} | {compile_s:.1f} | {load_ms:.0f} | {len(engine.compiled.database) / 1e6:.1f}"
            f" | {grown:.0f} | {fired['normal']} ({100 * fired['normal'] / len(normal):.2f}%)"
            f" | {fired['attacks']} ({100 * fired['attacks'] / len(attacks):.1f}%)"
            f" | {cold[0]:.0f} / {cold[1]:.0f} | {warm[0]:.0f} / {warm[1]:.0f} |"
        )
    lines += [
        "",
        f"Without the factor: score p50/p99 {plain_cold[0]:.0f} / {plain_cold[1]:.0f} us.",
        "Rule families on the attacks flagged (PL1): "
        + ", ".join(f"{family} {n}" for family, n in sorted(families[1].items())),
        "Rule families on the attacks flagged (PL2): "
        + ", ".join(f"{family} {n}" for family, n in sorted(families[2].items())),
    ]
    publish("crs", lines, {"families": {level: dict(c) for level, c in families.items()}})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", nargs="?", type=Path, default=ROOT / "tests/fixtures/csic2010-sample.jsonl.gz")
    main(parser.parse_args().corpus)
