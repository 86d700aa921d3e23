"""Rate limits that follow what the gateway knows of the caller (pure: the counting is `proxy.ratelimit`'s).

A limit has a key (the caller's entity, its address, or its network: an IPv6 address's /64), a scope (every
route, or one), and a rate per window. A rate may be set per trust level (anonymous, untrusted, trusted):
it replaces the limit's own for those callers. A rate set per risk band of the request caps the caller's:
a medium-risk request gets at most the medium rate. Each rate counts its own requests: a caller's
medium-risk requests are counted against the medium rate, its others against its own. Admin tokens are
exempt unless the limit says otherwise.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from enum import StrEnum

from policy.errors import Invalid
from policy.identity import Identity, Trust
from policy.schema import derive, require

RATE = re.compile(r"\s*(\d+)\s*(?:/|per)\s*(\d+)?\s*(second|minute|hour|day)s?\s*", re.IGNORECASE)
NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # it goes into keys, headers and metric labels
UNIT_S = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
LEVELS = ("anonymous", "untrusted", "trusted")
BANDS = ("low", "medium", "high", "critical")


class LimitKey(StrEnum):
    ENTITY = "entity"  # the token's sub, or the address of an anonymous caller
    ADDRESS = "address"  # the client address, whoever the token says it is
    NETWORK = "network"  # an IPv6 address's /64 (one host usually holds a whole /64), an IPv4 address


class Window(StrEnum):
    SLIDING = "sliding"  # a sliding window counter: two counters a key, the previous window weighted
    MOVING = "moving"  # a moving window: every hit's time kept, exact, more memory


@dataclass(frozen=True, slots=True)
class Rate:
    amount: int
    seconds: int  # the window

    @property
    def text(self) -> str:
        return f"{self.amount}/{self.seconds}s"


def parse_rate(text: str) -> Rate:
    """`100/minute`, `10 per second`, `1000/5 minutes`: ValueError naming the problem otherwise."""
    found = RATE.fullmatch(text)
    if not found:
        raise ValueError(f"expected a rate like 100/minute or 10 per 5 seconds, got {text!r}")
    amount, multiple, unit = int(found[1]), int(found[2] or 1), found[3].lower()
    if amount < 1 or multiple < 1:
        raise ValueError(f"a rate needs at least 1 request a window of at least 1 {unit}, got {text!r}")
    return Rate(amount, multiple * UNIT_S[unit])


def _rate(text: str, where: str) -> Rate:
    try:
        return parse_rate(text)
    except ValueError as exc:
        raise Invalid(where, str(exc)) from None


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    """One limit. `rate` applies to every caller; `trust` replaces it for callers of a level; `bands` caps
    it for requests of a risk band."""

    # names the limit in headers, /stats and /metrics
    name: str
    # e.g. 100/minute, 10 per second, 1000/5 minutes; empty: only the callers `trust` names and the requests
    # of the `bands` it names are limited
    rate: str = ""
    # who is counted: entity (the token's sub, else the address), address, or network (an IPv6 /64)
    key: LimitKey = LimitKey.ENTITY
    # a route's path: that route only; empty: every route, counted together
    route: str = ""
    # sliding (a sliding window counter: two counters a key) or moving (every hit kept: exact)
    window: Window = Window.SLIDING
    # per trust level (anonymous, untrusted, trusted), in place of `rate`: e.g. {anonymous: 10/minute}
    trust: dict[str, str] = field(default_factory=dict)
    # per risk band of the request (low, medium, high, critical), a cap: e.g. {medium: 20/minute}
    bands: dict[str, str] = field(default_factory=dict)
    # admin tokens are limited too (exempt otherwise)
    admins: bool = False
    rates: dict[str, Rate] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        require(bool(NAME.fullmatch(self.name)), "name", "expected a name like per-caller")
        rates: dict[str, Rate] = {}
        if self.rate:
            rates[""] = _rate(self.rate, "rate")
        for level, text in self.trust.items():
            require(level in LEVELS, f"trust.{level}", f"expected one of {', '.join(LEVELS)}")
            rates[level] = _rate(text, f"trust.{level}")
        for band, text in self.bands.items():
            require(band in BANDS, f"bands.{band}", f"expected one of {', '.join(BANDS)}")
            rates[band] = _rate(text, f"bands.{band}")
        require(bool(rates), "rate", "set a rate, or rates under trust or bands")
        derive(self, "rates", rates)

    def applies(self, route: str, identity: Identity) -> bool:
        """Whether this limit counts a request to `route` by `identity` at all."""
        return (not self.route or self.route == route) and (self.admins or not identity.is_admin)

    def rate_for(self, identity: Identity, band: str) -> Rate | None:
        """The caller's rate (its trust level's, else the limit's `rate`), capped by the band's; None when
        neither is set."""
        base = self.rates.get(level(identity)) or self.rates.get("")
        capped = self.rates.get(band)
        rates = [rate for rate in (base, capped) if rate is not None]
        return min(rates, key=lambda rate: rate.amount / rate.seconds) if rates else None

    def key_of(self, identity: Identity, address: str) -> str:
        """Who is counted: `name:route:caller` (the route only when the limit has one)."""
        if self.key is LimitKey.ENTITY:
            caller = identity.entity_id
        elif self.key is LimitKey.ADDRESS:
            caller = address
        else:
            caller = network(address)
        return f"{self.name}:{self.route}:{caller}"


def level(identity: Identity) -> str:
    """anonymous (no token), trusted (a trusted token or address), untrusted (a token marked so); a token
    of neither kind has no level of its own (the limit's `rate` applies)."""
    if identity.trust is Trust.TRUSTED:
        return "trusted"
    if not identity.authenticated:
        return "anonymous"
    return "untrusted" if identity.trust is Trust.UNTRUSTED else ""


def network(address: str) -> str:
    """An IPv6 address's /64 (`2001:db8:1:2::/64`), any other address as it is."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)
