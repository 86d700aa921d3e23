"""Identify step: who is calling (verified token claims, else the client IP) and from which address."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from policy.errors import InvalidClaims
from policy.iplist import IpSet, parse_address


class Trust(StrEnum):
    TRUSTED = "trusted"
    UNTRUSTED = "untrusted"
    UNSPECIFIED = "unspecified"


@dataclass(frozen=True, slots=True)
class Identity:
    """The caller: `entity_id` is the token's `sub`, or the client IP for anonymous callers."""

    entity_id: str
    authenticated: bool
    trust: Trust = Trust.UNSPECIFIED
    is_admin: bool = False

    @property
    def untrusted(self) -> bool:
        """Anonymous callers (unless from `ip_lists.trusted`) and tokens marked `trust: untrusted`."""
        return self.trust is Trust.UNTRUSTED


def client_ip(peer: str | None, forwarded_for: str | None, trusted_proxies: IpSet) -> str:
    """The client address: the socket peer, or X-Forwarded-For's right-most hop not a trusted proxy.

    X-Forwarded-For is attacker-controlled unless the peer is a trusted proxy, so only then is it read,
    and only from the right, skipping hops that are themselves trusted proxies.
    """
    address = peer or "unknown"
    if not forwarded_for or address not in trusted_proxies:
        return address
    for hop in reversed(forwarded_for.split(",")):
        parsed = parse_address(hop)
        if parsed is None:
            return address  # a malformed chain is not believed past this point
        if parsed not in trusted_proxies:
            return str(parsed)
    return address


def anonymous_entity(ip: str, ipv6_prefix: int = 128) -> str:
    """An anonymous caller's entity: its IPv4 address, or its IPv6 address's /`ipv6_prefix` network (one
    host holds a whole /64: one entity per address would let it be new, unlimited times)."""
    address = parse_address(ip)
    if not isinstance(address, ipaddress.IPv6Address) or ipv6_prefix >= 128:
        return ip
    return str(ipaddress.IPv6Network((address, ipv6_prefix), strict=False))


_TRUST = {trust.value: trust for trust in Trust}


def identify(
    claims: Mapping[str, object] | None, ip: str, trusted_ip: bool = False, ipv6_prefix: int = 128
) -> Identity:
    """Identity from verified JWT claims, or the anonymous identity of `ip` (see anonymous_entity).

    An address in `ip_lists.trusted` makes its callers trusted, unless a token says otherwise.
    """
    default = Trust.TRUSTED if trusted_ip else Trust.UNSPECIFIED
    if claims is None:
        anonymous = Trust.TRUSTED if trusted_ip else Trust.UNTRUSTED
        return Identity(anonymous_entity(ip, ipv6_prefix), authenticated=False, trust=anonymous)
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.strip() or len(sub) > 256:
        raise InvalidClaims("claim 'sub' must be a non-empty string of at most 256 characters")
    if not sub.isprintable():  # CR, LF, NUL, escapes, U+2028: it names the caller in logs and the store
        raise InvalidClaims("claim 'sub' must not contain control characters or line separators")
    if parse_address(sub) is not None or ("/" in sub and _is_network(sub)):  # anonymous callers' names
        raise InvalidClaims("claim 'sub' must not be an IP address or network")
    trust = claims.get("trust", default.value)
    found = _TRUST.get(trust) if isinstance(trust, str) else None  # a list: not a TypeError
    if found is None:
        raise InvalidClaims("claim 'trust' must be 'trusted' or 'untrusted'")
    return Identity(
        entity_id=sub,
        authenticated=True,
        trust=found,
        is_admin=claims.get("role") == "admin",
    )


def claim_matches(claims: Mapping[str, object], spec: str) -> bool:
    """Whether `claims` holds `spec` (`realm_access.roles=admin`): the dotted path's value equals the
    value, or is a list holding it, or a space-separated string (an OAuth `scope`) with it as a word."""
    path, _, wanted = spec.partition("=")
    found: object = claims
    for name in path.split("."):
        found = found.get(name) if isinstance(found, Mapping) else None
    if isinstance(found, list):
        return wanted in found
    if isinstance(found, str):
        return found == wanted or wanted in found.split(" ")
    return found is not None and str(found) == wanted


def mapped_claims(
    claims: Mapping[str, object], admin: str, trusted: str, untrusted: str
) -> dict[str, object]:
    """The claims as `identify` reads them, where an identity provider says role and trust in claims of its
    own (no IdP emits `trust: trusted`): `role` and `trust` set from the three specs, never taken as sent."""
    out = {name: value for name, value in claims.items() if name not in ("role", "trust")}
    if claim_matches(claims, admin):
        out["role"] = "admin"
    if claim_matches(claims, untrusted):
        out["trust"] = "untrusted"
    elif claim_matches(claims, trusted):
        out["trust"] = "trusted"
    return out


def _is_network(text: str) -> bool:
    try:
        ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return False
    return True
