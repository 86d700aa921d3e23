"""Detection quality and cost of the risk scoring, replayed on a labelled corpus (no HTTP).

Every request goes through the gateway's own pure scoring (`policy.risk.score`) with the repo's
config.yaml, as an established, trusted caller, so only the request's content counts. A request is
detected when its score reaches the hybrid `low` threshold. The profile factor is fitted on a seeded
half of the normal requests and measured on the other half (never on its training data).

Usage: python bench/detection.py CORPUS.jsonl[.gz] [--seed 0]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from policy.config import Config, RouteConfig  # noqa: E402
from policy.corpus import to_incoming  # noqa: E402
from policy.crs import crs_factor  # noqa: E402
from policy.identity import Identity, Trust  # noqa: E402
from policy.incoming import Incoming  # noqa: E402
from policy.profile import fit  # noqa: E402
from policy.risk import Factor, History, RiskInput, RiskScore, profile_factor, score  # noqa: E402
from proxy.crs import load_crs  # noqa: E402
from proxy.loader import create_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ROUTE = RouteConfig("/*", "echo")
CALLER = Identity("established", authenticated=True, trust=Trust.TRUSTED)
HISTORY = History(requests=1000, recent=50, recent_failures=0)


def read(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def fit_profile(records: list[dict[str, Any]]) -> Factor:
    return profile_factor(fit(to_incoming(r) for r in records))


def run(incoming: Incoming, config: Config, plugins: dict[str, Factor]) -> tuple[RiskScore, float]:
    started = time.perf_counter_ns()
    result = score(RiskInput(incoming, CALLER, HISTORY, ROUTE, config.risk.max_scan_bytes), config, plugins)
    return result, (time.perf_counter_ns() - started) / 1000


def measure(
    name: str, config: Config, plugins: dict[str, Factor], normal: list[Incoming], attacks: list[Incoming]
) -> list[float]:
    low = config.hybrid.risk_thresholds.low
    rows: dict[str, Counter[str]] = {"attacks": Counter(), "normal": Counter()}
    detected = {"attacks": 0, "normal": 0}
    costs: list[float] = []
    for label, requests in (("attacks", attacks), ("normal", normal)):
        for incoming in requests:
            result, cost = run(incoming, config, plugins)
            costs.append(cost)
            detected[label] += result.total >= low
            rows[label].update(hit.name for hit in result.hits)
    print(f"\n### {name}\n")
    print(
        f"detected {detected['attacks'] / len(attacks):.1%} of {len(attacks)} anomalous;"
        f" flagged {detected['normal'] / len(normal):.2%} of {len(normal)} normal (score >= {low})\n"
    )
    print("| factor | fires on anomalous | fires on normal |\n|---|---|---|")
    for factor in sorted(set(rows["attacks"]) | set(rows["normal"]), key=lambda f: -rows["attacks"][f]):
        on_attacks, on_normal = rows["attacks"][factor] / len(attacks), rows["normal"][factor] / len(normal)
        print(f"| {factor} | {on_attacks:.1%} | {on_normal:.2%} |")
    return costs


def pathological(config: Config, plugins: dict[str, Factor]) -> None:
    cases = {
        "1 MB of %25": (
            "POST",
            "/p",
            {"Content-Type": "application/x-www-form-urlencoded"},
            "a=" + "%25" * 349_525,
        ),
        "1 MB of nested quotes": ("POST", "/p", {"Content-Type": "text/plain"}, "'\"" * 524_288),
        "100k parameters": ("GET", "/p?" + "&".join(f"p{i}=1" for i in range(100_000)), {}, ""),
        "deep JSON": ("POST", "/p", {"Content-Type": "application/json"}, "[" * 900 + "]" * 900),
        "long %u escapes": ("GET", "/p?q=" + "%u0041" * 100_000, {}, ""),
    }
    print("\n| pathological input | score | cost (ms) |\n|---|---|---|")
    for name, (method, uri, headers, body) in cases.items():
        incoming = to_incoming({"method": method, "uri": uri, "headers": headers, "body": body})
        result, cost = run(incoming, config, plugins)
        print(f"| {name} | {result.total} ({result.summary() or '-'}) | {cost / 1000:.2f} |")


def size(incoming: Incoming) -> int:
    """Bytes on the wire, roughly: target, headers and body."""
    return len(incoming.target) + len(incoming.body) + sum(len(k) + len(v) + 4 for k, v in incoming.headers)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    records = read(args.corpus)
    normal = [r for r in records if not r.get("expect_attack")]
    attacks = [to_incoming(r) for r in records if r.get("expect_attack")]
    random.Random(args.seed).shuffle(normal)
    train, held_out = normal[: len(normal) // 2], [to_incoming(r) for r in normal[len(normal) // 2 :]]
    config = create_config(path=ROOT / "config.yaml", env={"SECRET_KEY": "x" * 32})
    print(
        f"corpus {args.corpus.name}: {len(attacks)} anomalous, {len(normal)} normal"
        f" ({len(train)} fit the profile, {len(held_out)} measured)"
    )
    crs = {}
    if config.risk.crs.enabled:  # as the gateway has it: config.yaml enables the CRS factor
        crs = {"crs": crs_factor(load_crs(config.risk.crs, ROOT)[0])}
    measure("content factors only (no profile)", config, crs, held_out, attacks)
    profile = {"profile": fit_profile(train), **crs}
    costs = measure("with the learned profile", config, profile, held_out, attacks)
    requests = attacks + held_out
    typical = [cost for cost, r in zip(costs, requests, strict=True) if 600 <= size(r) <= 1400]
    ordered = sorted(costs)
    print(
        f"\nscoring cost per request: median {statistics.median(costs):.1f} us,"
        f" p99 {ordered[int(len(ordered) * 0.99)]:.1f} us, max {ordered[-1]:.1f} us;"
        f" typical ~1 KB requests ({len(typical)}): median {statistics.median(typical):.1f} us"
    )
    pathological(config, profile)


if __name__ == "__main__":
    main()
