"""The worst inputs found for risk scoring, replayed through the gateway's own `policy.risk.score`.

Each case is a request built to make a matcher backtrack or a decoder loop (the inputs that froze the event
loop for seconds before matching moved to RE2). Prints each case's size and its worst scoring time over a
few repeats (the first is the one that matters: a hostile value is new to every cache), and the ratio to a
plain 1 KB request measured in the same run. The OWASP CRS factor is scored too, as config.yaml ships it
(`--no-crs`: without it). The garbage collector is set as the gateway sets it (proxy/heap.py).

Then `--generated` random mixtures of grammar fragments (seeded, 64 KiB each, in the query, headers, a
form, a JSON string or a text body), each scored once, and the slowest of them.

Usage: python bench/pathological.py [--repeat 5] [--size 65536] [--no-crs] [--generated 200]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
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


def _json_text(unit: str, size: int) -> Incoming:
    """A JSON body of at most `size` bytes holding one string of `unit` repeated, as UTF-8 (not escaped)."""
    text = unit * max(1, (size - 10) // len(unit.encode()))
    return request(body=json.dumps({"a": text}, ensure_ascii=False).encode(), ctype="application/json")


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
    "decode: \\x escapes (query)": lambda n: request("a=" + _repeat("\\x41", n)),
    "decode: \\u cut short (query)": lambda n: request("a=" + _repeat("\\u0", n)),
    "decode: escaped lone surrogates": lambda n: request("a=" + _repeat("%uD800", n)),
    "decode: &# entities (json)": lambda n: _json_text("&#65;", n),
    "text: accented letters (json)": lambda n: _json_text("Ünïcödé tëxt, ", n),
    "text: Japanese, full-width forms (json)": lambda n: _json_text("日本語のテキストＡＢＣ。", n),
    "text: emoji (json)": lambda n: _json_text("😀", n),
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


# Fragments of every detector's and decoder's grammar: repeating and mixing them is what makes a
# backtracking pattern explode, or a decoder do the most work (tests/policy/test_linear_time.py too).
FRAGMENTS = [
    "%0A", "%0D", "\n", "=", ":", "<a", "<", ">", " ", "\t", "'", '"', "`", "or ", "and ", "1", "=1", "(",
    ")", "sleep(", "char(", "/*", "*/", "/*!", "--", "#", ";", "{{", "}}", "${", "}", "{%", "&#", "&#x",
    "0", "&amp;", "%25", "%u", "\\u", "\\x", "on", "onload=", "javascript", "union", "select", "../",
    "%c0%ae", "|", "&&", "$(", "data:", "a", "-", "%uD800", "\\uDFFF",
]  # fmt: skip
PLACES = ("query", "header", "form", "text", "json")


def generated(text: str, place: str) -> Incoming:
    """A request with `text` (64 KiB of repeated fragments) in `place`."""
    if place == "query":
        return request("a=" + text)
    if place == "header":  # aiohttp caps one header line at 8 KiB: many headers instead
        return request(headers=tuple((f"x-h{i}", text[i * 8000 : (i + 1) * 8000]) for i in range(8)))
    if place == "form":
        return request(body=("a=" + text).encode(), ctype="application/x-www-form-urlencoded")
    if place == "json":
        return request(body=json.dumps({"a": text}).encode(), ctype="application/json")
    return request(body=text.encode(), ctype="text/plain")


def mixtures(count: int, size: int, seed: int = 25) -> list[tuple[str, Incoming]]:
    """`count` requests of up to 12 fragments repeated to `size`, in turn in each place (seeded)."""
    chosen = random.Random(seed)
    out = []
    for number in range(count):
        unit = "".join(chosen.choice(FRAGMENTS) for _ in range(chosen.randint(1, 12)))
        place = PLACES[number % len(PLACES)]
        out.append((f"{place}: {unit!r}", generated((unit * (size // len(unit) + 1))[:size], place)))
    return out


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
    parser.add_argument("--generated", type=int, default=200, help="random fragment mixtures to score too")
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
    if args.generated:
        cases = mixtures(args.generated, args.size)
        timed = sorted(((worst_ms(case, 1, config, plugins), name) for name, case in cases), reverse=True)
        print(f"{args.generated} generated mixtures (first run each): the slowest")
        for took, name in timed[:5]:
            print(f"  {took:9.3f} ms  {name[:70]}")
        print(f"  median {timed[len(timed) // 2][0]:.3f} ms")


if __name__ == "__main__":
    main()
