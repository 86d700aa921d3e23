"""IP sets: addresses, CIDRs, IPv6 and IPv4-mapped IPv6."""

import pytest

from policy.iplist import IpSet

SET = IpSet(["192.0.2.7", "198.51.100.0/24", "10.0.0.0/8", "2001:db8::/32", "::1"])


@pytest.mark.parametrize(
    ("address", "inside"),
    [
        ("192.0.2.7", True),
        ("192.0.2.8", False),
        ("198.51.100.255", True),
        ("198.51.101.0", False),
        ("10.255.255.255", True),
        ("11.0.0.0", False),
        ("2001:db8::1", True),
        ("2001:db9::1", False),
        ("::1", True),
        ("::ffff:10.1.2.3", True),
        ("not-an-ip", False),
        ("", False),
    ],
)
def test_membership(address: str, inside: bool) -> None:
    assert (address in SET) is inside


def test_size_and_bad_entries() -> None:
    assert len(SET) == 5 and len(IpSet()) == 0
    with pytest.raises(ValueError):
        IpSet(["300.1.1.1"])


def test_a_large_list_loads_and_answers() -> None:
    entries = [f"10.{i >> 8 & 255}.{i & 255}.0/24" for i in range(50_000)]
    entries += [f"172.16.{i >> 8 & 255}.{i & 255}" for i in range(50_000)]
    big = IpSet(entries)
    assert len(big) == 100_000
    assert "10.3.4.77" in big and "172.16.1.2" in big and "172.17.0.1" not in big
