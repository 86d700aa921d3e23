"""IP address sets (deny, flagged, trusted lists and trusted proxies), built from addresses and CIDRs.

A lookup costs one hash probe per distinct prefix length in the set, so lists of 100k+ entries stay cheap.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@functools.lru_cache(maxsize=65536)  # the same clients come back: parse each address once
def parse_address(text: str) -> Address | None:
    """Parse an address (IPv4-mapped IPv6 becomes IPv4); None if `text` is not an address."""
    try:
        addr = ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


class IpSet:
    """An immutable set of networks answering `address in ipset`."""

    __slots__ = ("_v4", "_v6", "size")

    def __init__(self, entries: Iterable[str] = ()) -> None:
        v4: dict[int, set[int]] = {}
        v6: dict[int, set[int]] = {}
        size = 0
        for entry in entries:
            net = ipaddress.ip_network(entry.strip(), strict=False)  # ValueError names the entry
            table = v4 if net.version == 4 else v6
            shift = net.max_prefixlen - net.prefixlen
            table.setdefault(shift, set()).add(int(net.network_address) >> shift)
            size += 1
        self._v4 = tuple((shift, frozenset(keys)) for shift, keys in sorted(v4.items()))
        self._v6 = tuple((shift, frozenset(keys)) for shift, keys in sorted(v6.items()))
        self.size = size

    def __contains__(self, address: object) -> bool:
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
