"""The worst inputs found for risk scoring, replayed through the gateway's own `policy.risk.score`.

Each case is a request built to make a matcher backtrack or a decoder loop (the inputs that froze the event
loop for seconds before matching moved to RE2). Prints each case's size and its worst scoring time over a
few repeats (the first is the one that matters: a hostile value is new to every cache), and the ratio to a
plain 1 KB request measured in the same run. The OWASP CRS factor is scored too, as config.yaml ships it
(`--no-crs`: without it). The garbage collector is set as the gateway sets it (proxy/heap.py).

Usage: python bench/pathological.py [--repeat 5] [--size 65536] [--no-crs]
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from policy.config import Config, RouteConfig  # noqa: E402
from policy.crs import crs_factor  # noqa: E402
from policy.identity import Identity, Trust  # noqa: E402
from policy.incoming import Incoming  # noqa: E402
from policy.risk import Factor, History, RiskInput, score  # noqa: E402
from proxy.crs import load_crs  # noqa: E402
from proxy.heap import YOUNG_THRESHOLD, settle  # noqa: E402
from proxy.loader import create_config  # noqa: E402

ROUTE = RouteConfig("/*", "echo")
CALLER = Identity("established", authenticated=True, trust=Trust.TRUSTED)
HISTORY = History(requests=1000, recent=50, recent_failures=0)


def request(
    query: str = "", headers: tuple[tuple[str, str], ...] = (), body: bytes = b"", ctype: str = ""
) -> Incoming:
    all_headers = (("host", "127.0.0.1"),) + (("content-type", ctype),) * bool(ctype) + headers
    target = "/echo" + (f"?{query}" if query else "")
    return Incoming("POST" if body else "GET", "/echo", target, (), all_headers, body, "127.0.0.1")


def _repeat(unit: str, size: int) -> str:
    return unit * max(1, size // len(unit))


# name -> builder of a request of about `size` bytes of hostile content
CASES: dict[str, Callable[[int], Incoming]] = {
    "crlf: %0A run then '=' (query)": lambda n: request("a=" + _repeat("%0A", n) + "%3D"),
    "crlf: %0A run (header)": lambda n: request(headers=(("x-a", _repeat("%0A", min(n, 8000)) + "="),)),
    "crlf: %0A run (form body)": lambda n: request(
        body=("a=" + _repeat("%0A", n) + "%3D").encode(), ctype="application/x-www-form-urlencoded"
    ),
    "xss: '<a ' repeated": lambda n: request(body=_repeat("<a ", n).encode(), ctype="text/plain"),
    "xss: quote then spaces": lambda n: request(body=("'" + " " * n).encode(), ctype="text/plain"),
    "sql: 'sleep(' repeated": lambda n: request(body=_repeat("sleep(", n).encode(), ctype="text/plain"),
    "sql: quote-or runs": lambda n: request(body=_repeat("' or ", n).encode(), ctype="text/plain"),
    "comments: '/*!' repeated (40 headers)": lambda n: request(
        headers=tuple((f"x-h{i}", _repeat("/*!", min(n, 8000))) for i in range(40))
    ),
    "comments: '/*' repeated": lambda n: request(body=_repeat("/*", n).encode(), ctype="text/plain"),
    "template: '{{' repeated": lambda n: request(body=_repeat("{{", n).encode(), ctype="text/plain"),
    "template: '${' repeated": lambda n: request(body=_repeat("${", n).encode(), ctype="text/plain"),
    "decode: %25 chains": lambda n: request("a=" + _repeat("%2525", n)),
    "decode: %u escapes": lambda n: request("a=" + _repeat("%u0041", n)),
    "decode: %u escapes cut short": lambda n: request("a=" + _repeat("%u00g", n)),
    "decode: escapes and lone %": lambda n: request("a=" + _repeat("%41%", n)),
    "decode: &# entities": lambda n: request(body=_repeat("&#x26;", n).encode(), ctype="text/plain"),
    "decode: \\u escapes": lambda n: request(body=_repeat("\\u0041", n).encode(), ctype="text/plain"),
    "json: deep nesting": lambda n: request(body=b"[" * n + b"]" * n, ctype="application/json"),
    "json: many strings": lambda n: request(
        body=json.dumps(["'or 1=1--"] * (n // 12)).encode(), ctype="application/json"
    ),
    "json: many tiny strings": lambda n: request(
        body=json.dumps(["a"] * (n // 5)).encode(), ctype="application/json"
    ),
    "query: many parameters": lambda n: request("&".join(f"p{i}=<a" for i in range(n // 8))),
    "cookies: many": lambda n: request(headers=(("cookie", "; ".join(f"c{i}='x" for i in range(n // 9))),)),
}


def plain() -> Incoming:
    form = "name=Alice+Smith&email=alice%40example.com&city=Lyon&note=" + "hello+world+" * 60
    return request(body=form.encode()[:1000], ctype="application/x-www-form-urlencoded")


def scoring(crs: bool) -> tuple[Config, dict[str, Factor]]:
    config = create_config({"auth": {"secret_key": "x" * 32}, "risk": {"crs": {"enabled": crs}}})
    if not crs:
        return config, {}
    engine, _ = load_crs(config.risk.crs, Path(__file__).resolve().parents[1])
    return config, {"crs": crs_factor(engine)}


def worst_ms(incoming: Incoming, repeat: int, config: Config, plugins: dict[str, Factor]) -> float:
    worst = 0.0
    for _ in range(repeat):
        started = time.perf_counter()
        score(RiskInput(incoming, CALLER, HISTORY, ROUTE, config.risk.max_scan_bytes), config, plugins)
        worst = max(worst, (time.perf_counter() - started) * 1000)
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--size", type=int, default=65536, help="bytes of hostile content per case")
    parser.add_argument("--no-crs", dest="crs", action="store_false", help="score without the CRS factor")
    args = parser.parse_args()
    config, plugins = scoring(args.crs)
    gc.set_threshold(YOUNG_THRESHOLD, *gc.get_threshold()[1:])  # the collector as the gateway sets it
    settle()
    print(f"CRS factor: {'on' if args.crs else 'off'}")
    baseline = worst_ms(plain(), args.repeat, config, plugins)
    print(f"plain 1 KB form request: worst {baseline:.3f} ms over {args.repeat} runs")
    print(f"{'case':44} {'bytes':>8} {'worst ms':>9} {'x plain':>8}")
    overall = 0.0
    for name, build in CASES.items():
        incoming = build(args.size)
        size = len(incoming.target) + len(incoming.body) + sum(len(v) for _, v in incoming.headers)
        took = worst_ms(incoming, args.repeat, config, plugins)
        overall = max(overall, took)
        print(f"{name:44} {size:8d} {took:9.3f} {took / baseline:8.1f}")
    print(f"worst scoring time of any case: {overall:.3f} ms")


if __name__ == "__main__":
    main()
