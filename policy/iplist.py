"""IP address sets (deny, flagged, trusted lists and trusted proxies), built from addresses and CIDRs.

A lookup costs one hash probe per distinct prefix length in the set, so lists of 100k+ entries stay cheap;
building parses with `socket.inet_pton` (several times faster than `ipaddress` for large lists).
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Iterable

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@functools.lru_cache(maxsize=4096)  # recent clients come back; ~216 B an entry, so a few thousand only
def parse_address(text: str) -> Address | None:
    """Parse an address (IPv4-mapped IPv6 becomes IPv4); None if `text` is not an address."""
    try:
        addr = ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def parse_network(entry: str) -> tuple[int, int, int]:
    """`a.b.c.d[/n]` or `v6[/n]` -> (version, prefix length, network as int); raises ValueError."""
    host, _, prefix = entry.strip().partition("/")
    family, version, bits = (socket.AF_INET6, 6, 128) if ":" in host else (socket.AF_INET, 4, 32)
    try:
        value = int.from_bytes(socket.inet_pton(family, host), "big")
        length = int(prefix) if prefix else bits
    except (OSError, ValueError):
        raise ValueError(f"{entry.strip()[:60]!r} is not an IP address or CIDR") from None
    if not 0 <= length <= bits:
        raise ValueError(f"{entry.strip()[:60]!r} has a prefix length outside 0..{bits}")
    if version == 6 and length >= 96 and value >> 32 == 0xFFFF:  # IPv4-mapped: store as IPv4
        return 4, length - 96, value & 0xFFFFFFFF
    return version, length, value


class IpSet:
    """An immutable set of networks answering `address in ipset`."""

    __slots__ = ("_v4", "_v6", "size")

    def __init__(self, entries: Iterable[str] = ()) -> None:
        tables: dict[int, dict[int, set[int]]] = {4: {}, 6: {}}
        size = 0
        for entry in entries:
            version, length, value = parse_network(entry)
            shift = (32 if version == 4 else 128) - length
            tables[version].setdefault(shift, set()).add(value >> shift)
            size += 1
        self._v4 = tuple((shift, frozenset(keys)) for shift, keys in sorted(tables[4].items()))
        self._v6 = tuple((shift, frozenset(keys)) for shift, keys in sorted(tables[6].items()))
        self.size = size

    def __contains__(self, address: object) -> bool:
        if not self.size:
            return False
        addr = parse_address(address) if isinstance(address, str) else address
        if not isinstance(addr, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return False
        value = int(addr)
        tables = self._v4 if addr.version == 4 else self._v6
        return any((value >> shift) in keys for shift, keys in tables)

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return f"IpSet(size={self.size})"
