"""Rate limits' policy: the rates written, the rate that applies to a caller and a band, who is counted."""

from pathlib import Path

import pytest
import yaml

from conftest import make_config
from policy.errors import ConfigError
from policy.identity import Identity, Trust
from policy.ratelimits import Rate, RateLimitConfig, level, network, parse_rate

ANONYMOUS = Identity("203.0.113.7", authenticated=False, trust=Trust.UNTRUSTED)
UNTRUSTED = Identity("mallory", authenticated=True, trust=Trust.UNTRUSTED)
CUSTOMER = Identity("alice", authenticated=True)
TRUSTED = Identity("billing", authenticated=True, trust=Trust.TRUSTED)
ADMIN = Identity("ops", authenticated=True, is_admin=True)


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("100/minute", Rate(100, 60)),
        ("10 per second", Rate(10, 1)),
        ("1000/5 minutes", Rate(1000, 300)),
        ("5 per 10 seconds", Rate(5, 10)),
        ("2/Day", Rate(2, 86400)),
    ],
)
def test_rates_are_read_as_written(text: str, rate: Rate) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["100", "100/fortnight", "0/minute", "ten/minute", "5/0 seconds", ""])
def test_a_rate_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)


def test_a_trust_levels_rate_replaces_the_limits_and_a_bands_caps_it() -> None:
    limit = RateLimitConfig(
        "api",
        rate="100/minute",
        trust={"anonymous": "10/minute", "trusted": "1000/minute"},
        bands={"medium": "20/minute", "high": "2/minute"},
    )
    assert limit.rate_for(CUSTOMER, "low") == Rate(100, 60)
    assert limit.rate_for(ANONYMOUS, "low") == Rate(10, 60)
    assert limit.rate_for(TRUSTED, "low") == Rate(1000, 60)
    assert limit.rate_for(CUSTOMER, "medium") == Rate(20, 60)
    assert limit.rate_for(ANONYMOUS, "medium") == Rate(10, 60)  # a cap never raises a rate
    assert limit.rate_for(TRUSTED, "high") == Rate(2, 60)
    assert RateLimitConfig("slow", trust={"anonymous": "1/second"}).rate_for(CUSTOMER, "low") is None
    assert RateLimitConfig("risky", bands={"high": "1/second"}).rate_for(CUSTOMER, "high") == Rate(1, 1)


def test_rates_compare_per_second_whatever_their_windows() -> None:
    limit = RateLimitConfig("mixed", rate="100/minute", bands={"medium": "10/5 seconds"})  # 1.67/s vs 2/s
    assert limit.rate_for(CUSTOMER, "medium") == Rate(100, 60)


def test_trust_levels() -> None:
    assert [level(i) for i in (ANONYMOUS, UNTRUSTED, CUSTOMER, TRUSTED)] == [
        "anonymous",
        "untrusted",
        "",
        "trusted",
    ]
    trusted_address = Identity("198.51.100.4", authenticated=False, trust=Trust.TRUSTED)
    assert level(trusted_address) == "trusted"


def test_who_is_counted() -> None:
    by_entity = RateLimitConfig("e", rate="1/second")
    assert by_entity.key_of(CUSTOMER, "192.0.2.1") == "e::alice"
    by_address = RateLimitConfig("a", rate="1/second", key="address", route="/echo")  # type: ignore[arg-type]
    assert by_address.key_of(CUSTOMER, "192.0.2.1") == "a:/echo:192.0.2.1"
    by_network = RateLimitConfig("n", rate="1/second", key="network")  # type: ignore[arg-type]
    assert by_network.key_of(CUSTOMER, "2001:db8:1:2:a:b:c:d") == "n::2001:db8:1:2::/64"
    assert by_network.key_of(CUSTOMER, "2001:db8:1:2::ffff") == "n::2001:db8:1:2::/64"  # the same /64
    assert by_network.key_of(CUSTOMER, "::ffff:192.0.2.9") == "n::192.0.2.9"
    assert network("203.0.113.7") == "203.0.113.7" and network("unknown") == "unknown"


def test_scope_and_admins() -> None:
    one_route = RateLimitConfig("r", rate="1/second", route="/echo")
    assert one_route.applies("/echo", CUSTOMER) and not one_route.applies("/other", CUSTOMER)
    assert not one_route.applies("/echo", ADMIN)
    assert RateLimitConfig("all", rate="1/second", admins=True).applies("/x", ADMIN)


@pytest.mark.parametrize(
    ("limit", "message"),
    [
        ({"name": "a", "rate": "100/fortnight"}, r"rate_limits\[0\]\.rate: expected a rate like"),
        ({"name": "a"}, r"rate_limits\[0\]\.rate: set a rate, or rates under trust or bands"),
        ({"name": "a", "rate": "1/minute", "route": "/nope"}, r"rate_limits\[0\]\.route: no such route path"),
        ({"name": "a b", "rate": "1/minute"}, r"rate_limits\[0\]\.name: expected a name"),
        ({"name": "a", "trust": {"admin": "1/minute"}}, r"rate_limits\[0\]\.trust\.admin: expected one of"),
        ({"name": "a", "bands": {"low": "1/eon"}}, r"rate_limits\[0\]\.bands\.low: expected a rate"),
        ({"name": "a", "rate": "1/minute", "key": "cookie"}, r"rate_limits\[0\]\.key: expected one of"),
    ],
)
def test_config_errors_name_the_key(limit: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_config({"rate_limits": [limit]})


def test_two_limits_cannot_share_a_name() -> None:
    with pytest.raises(ConfigError, match=r"rate_limits\[1\]\.name: another limit has this name"):
        make_config({"rate_limits": [{"name": "a", "rate": "1/minute"}, {"name": "a", "rate": "2/minute"}]})


def test_the_example_in_the_docs_is_a_valid_config() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    example = page.partition("## Rate limits")[2].partition("```yaml\n")[2].partition("```")[0]
    routes = [{"path": "/login", "handler": "echo"}]
    config = make_config({**yaml.safe_load(example), "routes": routes})
    assert [limit.name for limit in config.rate_limits] == ["per-caller", "login"]
    assert config.rate_limits[1].rate_for(CUSTOMER, "low") == Rate(10, 300)
