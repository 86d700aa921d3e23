"""Risk scoring: every factor fires exactly when it should, with its configured points and a reason."""

from typing import Any

import pytest

from conftest import make_config
from policy.config import Config, RouteConfig
from policy.identity import Identity
from policy.incoming import Incoming
from policy.risk import History, RiskInput, RiskScore, score

ROUTE = RouteConfig("/echo", "echo")
ESTABLISHED = History(requests=100, recent=20, recent_failures=0)
CONFIG = make_config(
    {
        "ip_lists": {"flagged": ["203.0.113.0/24"]},
        "risk": {
            "max_scan_bytes": 1 << 20,  # the large bodies below are inspected whole
            "keywords": ["union select", "<script", "../", "${jndi:"],
            "patterns": [r"\bor\s+\d+\s*=\s*\d+"],
            "custom_factors": [
                {"name": "custom-header", "header": "X-Custom-Risk", "points": 15},
                {"name": "debug-probe", "header": "x-debug", "points": 7, "pattern": "^on$"},
            ],
        },
    }
)


def incoming(
    target: str = "/echo",
    body: bytes = b"",
    headers: tuple[tuple[str, str], ...] = (),
    ip: str = "192.0.2.1",
) -> Incoming:
    path = target.split("?", 1)[0]
    return Incoming("GET", path, target, (), headers, body, ip)


def run(req: Incoming, history: History = ESTABLISHED, config: Config = CONFIG, **plugins: Any) -> RiskScore:
    inp = RiskInput(req, Identity("u", True), history, ROUTE, config.risk.max_scan_bytes)
    return score(inp, config, plugins)


def test_a_plain_request_from_an_established_entity_scores_zero() -> None:
    assert run(incoming("/echo?x=1")) == RiskScore(0, ())


@pytest.mark.parametrize(
    ("history", "fires"),
    [
        (History(0, 0, 0), True),
        (History(9, 9, 0), True),
        (History(10, 10, 0), False),
    ],
)
def test_new_entity(history: History, fires: bool) -> None:
    result = run(incoming(), history)
    assert result.fired("new_entity") is fires
    assert result.total == (30 if fires else 0)


@pytest.mark.parametrize(
    ("history", "fires"),
    [
        (History(100, 4, 4), False),  # below the minimum sample of 5
        (History(100, 5, 1), False),  # 0.2 is not above 0.2
        (History(100, 5, 2), True),
        (History(100, 50, 11), True),
        (History(100, 50, 10), False),
    ],
)
def test_failure_rate(history: History, fires: bool) -> None:
    assert run(incoming(), history).fired("failure_rate") is fires


@pytest.mark.parametrize(("size", "fires"), [(100 * 1024, False), (100 * 1024 + 1, True)])
def test_large_payload(size: int, fires: bool) -> None:
    result = run(incoming(body=b"a" * size))
    assert result.fired("large_payload") is fires
    assert result.total == (15 if fires else 0)


@pytest.mark.parametrize(
    ("req", "fires"),
    [
        (incoming("/echo?q=1 UNION SELECT password"), True),
        (incoming("/echo?q=1%20union%20select%20x"), True),
        (incoming("/echo?q=1+union+select+x"), True),
        (incoming("/echo?q=%253Cscript%253E"), True),  # double-encoded <script>
        (incoming("/echo/..%2f..%2fetc"), True),
        (incoming("/echo?id=1 or 1=1"), True),
        (incoming(body=b"name=<ScRiPt>alert(1)</script>"), True),
        (incoming(headers=(("x-api-version", "${jndi:ldap://x/a}"),)), True),
        (incoming("/echo?q=union&r=select"), False),
        (incoming("/echo?name=O'Brien"), False),
        (incoming(headers=(("authorization", "Bearer ../union select"),)), False),  # credentials unscanned
    ],
)
def test_suspicious(req: Incoming, fires: bool) -> None:
    result = run(req)
    assert result.fired("suspicious") is fires
    if fires:
        assert result.hits[0].points == 20 and "keyword" in result.hits[0].reason


@pytest.mark.parametrize(
    "req",
    [
        incoming("/echo?q=%uD800%27+union+select+x"),
        incoming("/echo?q=%25uDBFF%25uDFFF+union+select+x"),  # a pair, escaped twice
        incoming(headers=(("x-api-version", "\\udc00 union select x"),)),
        incoming(body=b"note=%u0041%uDFFF+union+select+x"),
    ],
)
def test_an_escaped_lone_surrogate_is_scored_not_a_failure(req: Incoming) -> None:
    """`%uD800` decodes to no character at all: it became a 500 (the linear-time matchers take UTF-8)."""
    assert run(req).fired("suspicious")


@pytest.mark.parametrize(("ip", "fires"), [("203.0.113.9", True), ("198.51.100.1", False)])
def test_ip_flagged(ip: str, fires: bool) -> None:
    assert run(incoming(ip=ip)).fired("ip_flagged") is fires


@pytest.mark.parametrize(
    ("headers", "hits"),
    [
        ((("x-custom-risk", "1"),), ["custom-header"]),
        ((("x-debug", "on"),), ["debug-probe"]),
        ((("x-debug", "off"),), []),
        ((), []),
    ],
)
def test_custom_header_factors(headers: tuple[tuple[str, str], ...], hits: list[str]) -> None:
    assert [hit.name for hit in run(incoming(headers=headers)).hits] == hits


def test_weights_come_from_config_and_zero_disables_a_factor() -> None:
    weights = {"new_entity": 45, "large_payload": 0, "uninspected": 0}
    config = make_config({"risk": {"weights": weights}})
    result = run(incoming(body=b"x" * 200_000), History(), config)
    assert [(hit.name, hit.points) for hit in result.hits] == [("new_entity", 45)]


def test_total_is_capped_at_100_and_the_breakdown_kept() -> None:
    result = run(
        incoming("/echo?q=union select", b"x" * 200_000, (("x-custom-risk", "1"),), "203.0.113.1"),
        History(3, 5, 5),
    )
    assert result.total == 100
    assert sum(hit.points for hit in result.hits) == 30 + 20 + 15 + 20 + 25 + 40 + 15
    assert result.summary() == (
        "new_entity=30,failure_rate=20,large_payload=15,suspicious=20,ip_flagged=25,sql_injection=40,custom-header=15"
    )


def geo(inp: RiskInput, config: Config) -> str | None:
    return "from a watched range" if inp.incoming.client_ip.startswith("192.0.2.") else None


def test_plugins_are_factors_weighted_by_config() -> None:
    config = make_config({"risk": {"plugins": ["tests:geo"], "weights": {"geo": 12}}})
    result = run(incoming(), config=config, geo=geo)
    assert [(hit.name, hit.points, hit.reason) for hit in result.hits] == [
        ("geo", 12, "from a watched range")
    ]


def test_route_weights_and_keywords() -> None:
    route = RouteConfig(
        "/echo", "echo", weights={"new_entity": 5, "custom-header": 0}, keywords=("drop table",)
    )
    req = incoming("/echo?q=DROP%20TABLE%20x", headers=(("x-custom-risk", "1"),))
    result = score(RiskInput(req, Identity("u", True), History(), route), CONFIG)
    assert result.summary() == "new_entity=5,suspicious=20,sql_injection=40"
