"""Identity: client address through trusted proxies only, and claims to identities."""

import pytest

from policy.errors import InvalidClaims
from policy.identity import Trust, client_ip, identify
from policy.iplist import IpSet

PROXIES = IpSet(["10.0.0.0/8", "127.0.0.1"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.5", None, "203.0.113.5"),
        ("203.0.113.5", "1.2.3.4", "203.0.113.5"),  # spoofed: the peer is not a trusted proxy
        ("127.0.0.1", "1.2.3.4", "1.2.3.4"),
        ("127.0.0.1", "1.2.3.4, 10.1.1.1", "1.2.3.4"),  # skip hops that are our proxies
        ("127.0.0.1", "6.6.6.6, 1.2.3.4", "1.2.3.4"),  # left of the first untrusted hop is client-made
        ("127.0.0.1", "10.0.0.1, 10.0.0.2", "127.0.0.1"),  # only proxies: keep the peer
        ("127.0.0.1", "garbage", "127.0.0.1"),
        ("127.0.0.1", "::ffff:1.2.3.4", "1.2.3.4"),
        (None, None, "unknown"),
    ],
)
def test_client_ip(peer: str | None, forwarded: str | None, expected: str) -> None:
    assert client_ip(peer, forwarded, PROXIES) == expected


def test_no_claims_is_the_anonymous_ip_entity() -> None:
    identity = identify(None, "1.2.3.4")
    assert (identity.entity_id, identity.authenticated, identity.untrusted) == ("1.2.3.4", False, True)


@pytest.mark.parametrize(
    ("claims", "trust", "admin", "untrusted"),
    [
        ({"sub": "u"}, Trust.UNSPECIFIED, False, False),
        ({"sub": "u", "trust": "trusted"}, Trust.TRUSTED, False, False),
        ({"sub": "u", "trust": "untrusted"}, Trust.UNTRUSTED, False, True),
        ({"sub": "u", "role": "admin"}, Trust.UNSPECIFIED, True, False),
        ({"sub": "u", "role": "Admin"}, Trust.UNSPECIFIED, False, False),
    ],
)
def test_claims(claims: dict[str, object], trust: Trust, admin: bool, untrusted: bool) -> None:
    identity = identify(claims, "1.2.3.4")
    assert identity.entity_id == "u" and identity.authenticated
    assert (identity.trust, identity.is_admin, identity.untrusted) == (trust, admin, untrusted)


@pytest.mark.parametrize(
    ("ip", "prefix", "entity"),
    [
        ("1.2.3.4", 64, "1.2.3.4"),  # IPv4: the address
        ("2001:db8:1:2:a:b:c:d", 64, "2001:db8:1:2::/64"),  # a host holds a whole /64
        ("2001:db8:1:2:ffff::1", 64, "2001:db8:1:2::/64"),
        ("2001:db8:1:2:a:b:c:d", 48, "2001:db8:1::/48"),
        ("2001:db8:1:2:a:b:c:d", 128, "2001:db8:1:2:a:b:c:d"),
        ("::ffff:1.2.3.4", 64, "::ffff:1.2.3.4"),  # IPv4-mapped: an IPv4 caller, kept as given
        ("unknown", 64, "unknown"),
    ],
)
def test_anonymous_ipv6_callers_are_one_entity_per_network(ip: str, prefix: int, entity: str) -> None:
    assert identify(None, ip, ipv6_prefix=prefix).entity_id == entity


@pytest.mark.parametrize(
    "claims",
    [
        {},
        {"sub": ""},
        {"sub": 5},
        {"sub": "x" * 300},
        {"sub": "u", "trust": "very"},
        {"sub": "u", "trust": ["trusted"]},  # not a string (a set lookup would raise TypeError: 500)
        {"sub": "1.2.3.4"},
        {"sub": "2001:db8:1:2::/64"},  # an anonymous entity's name: a token must not take its history
    ],
)
def test_bad_claims_are_rejected(claims: dict[str, object]) -> None:
    with pytest.raises(InvalidClaims):
        identify(claims, "1.2.3.4")
