"""Score step: risk 0-100 as the capped sum of named factors, each reported with its points and reason.

Factors are a registry (name -> function); their points are config (`risk.weights`), never code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from policy import detectors
from policy.config import Config, RouteConfig
from policy.fields import MAX_SCAN_BYTES, Fields, extract
from policy.identity import Identity
from policy.incoming import Incoming
from policy.linear import bounded
from policy.profile import Profile

MAX_SCORE = 100
# Factors about the caller, its address or the request's size (which has its own trigger, high_resource);
# every other factor (built-in, custom, plugin) is about suspicious content.
NOT_CONTENT = frozenset({"new_entity", "failure_rate", "ip_flagged", "large_payload"})


@dataclass(frozen=True, slots=True)
class History:
    """What the gateway remembers of an entity, as of this request."""

    requests: int = 0
    recent: int = 0
    recent_failures: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.recent_failures <= self.recent <= max(self.requests, self.recent):
            raise ValueError("need 0 <= recent_failures <= recent")

    @property
    def failure_rate(self) -> float:
        return self.recent_failures / self.recent if self.recent else 0.0


@dataclass(frozen=True)
class RiskInput:
    incoming: Incoming
    identity: Identity
    history: History
    route: RouteConfig
    scan_bytes: int = MAX_SCAN_BYTES  # risk.max_scan_bytes
    # `fields`, once extracted (not functools.cached_property: compiled, it would extract on every read).
    _extracted: list[Fields] = field(default_factory=list, init=False, repr=False, compare=False)

    @property
    def fields(self) -> Fields:
        """The request's values, extracted and normalised once for every factor that looks at content."""
        if not self._extracted:
            self._extracted.append(extract(self.incoming, self.scan_bytes))
        return self._extracted[0]


@dataclass(frozen=True, slots=True)
class Hit:
    name: str
    points: int
    reason: str


@dataclass(frozen=True, slots=True)
class RiskScore:
    total: int
    hits: tuple[Hit, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.total <= MAX_SCORE:
            raise ValueError(f"total must be within 0..{MAX_SCORE}")

    def fired(self, name: str) -> bool:
        return any(hit.name == name for hit in self.hits)

    @property
    def suspicious_content(self) -> bool:
        """Whether a factor about the request's content fired (not one about the caller or its address)."""
        return any(hit.name not in NOT_CONTENT for hit in self.hits)

    def summary(self) -> str:
        """`name=points,...`: the form of the X-Isogate-Factors header and the decision log."""
        return ",".join(f"{hit.name}={hit.points}" for hit in self.hits)


Factor = Callable[[RiskInput, Config], "str | None"]
"""A factor returns the reason it fires, or None. Plugins (`risk.plugins`) have the same shape."""


def new_entity(inp: RiskInput, config: Config) -> str | None:
    seen, needed = inp.history.requests, config.risk.new_entity_requests
    return f"{seen} earlier requests, fewer than {needed}" if seen < needed else None


def failure_rate(inp: RiskInput, config: Config) -> str | None:
    history, risk = inp.history, config.risk
    if history.recent < risk.failure_min_sample or history.failure_rate <= risk.failure_rate_threshold:
        return None
    return (
        f"{history.recent_failures} of last {history.recent} requests failed"
        f" (rate {history.failure_rate:.2f} > {risk.failure_rate_threshold})"
    )


def large_payload(inp: RiskInput, config: Config) -> str | None:
    size, limit = inp.incoming.size, config.risk.large_payload_bytes
    return f"body is {size} bytes, over {limit}" if size > limit else None


def suspicious(inp: RiskInput, config: Config) -> str | None:
    """The configured keywords and patterns (global, plus the route's own), in every value."""
    text = inp.fields.joined
    for matcher in [config.risk.matcher] + ([inp.route.matcher] if inp.route.matcher else []):
        if (found := matcher.find(text)) is not None:
            return f"{inp.fields.at(found[0]).where} contains {found[1][:40]!r}"
    return None


def _detector(name: str, what: str) -> Factor:
    def factor(inp: RiskInput, config: Config) -> str | None:
        found = inp.fields.findings.get(name)
        return f"{found[0].where}: {what} ({found[1]!r})" if found else None

    factor.__name__ = name
    return factor


def crlf_injection(inp: RiskInput, config: Config) -> str | None:
    for value in inp.fields.suspects:
        if found := detectors.crlf_injection(value.raw):
            return f"{value.where}: line break before {found.strip()!r}"
    return None


def file_probe(inp: RiskInput, config: Config) -> str | None:
    found = detectors.file_probe(inp.fields.path.lower())
    return f"path asks for a hidden or backup file ({found!r})" if found else None


def abnormal_input(inp: RiskInput, config: Config) -> str | None:
    """Buffer-overflow-sized values, control characters, too many parameters, JSON nested too deep."""
    fields, limit = inp.fields, config.risk.max_value_length
    if fields.anomaly is not None:
        return fields.anomaly
    for value in fields.values:
        if value.size > limit and value.where != "body":
            return f"{value.where} is {value.size} characters, over {limit}"
    found = fields.search(_CONTROL)
    return f"{found[0].where} carries control characters" if found else None


_CONTROL = bounded(r"[\x00\x02-\x08\x0b\x0c\x0e-\x1f\x7f]")  # \x01 separates joined values


def uninspected(inp: RiskInput, config: Config) -> str | None:
    """Content the gateway could not inspect is never scored as safe: it counts as suspicious content."""
    found = inp.fields.uninspected
    return f"not inspected: {found}" if found else None


def profile_factor(profile: Profile) -> Factor:
    """The `profile` factor for a fitted profile (registered like a plugin when one is configured)."""

    def deviates(inp: RiskInput, config: Config) -> str | None:
        params = ((name, value) for _, name, value in inp.fields.params)
        return profile.deviation(inp.incoming.method, inp.fields.path, params)

    return deviates


def ip_flagged(inp: RiskInput, config: Config) -> str | None:
    ip = inp.incoming.client_ip
    return f"{ip} is in ip_lists.flagged" if ip in config.ip_lists.flagged_set else None


FACTORS: dict[str, Factor] = {
    "new_entity": new_entity,
    "failure_rate": failure_rate,
    "large_payload": large_payload,
    "suspicious": suspicious,
    "ip_flagged": ip_flagged,
    "sql_injection": _detector("sql_injection", "sql injection"),
    "xss": _detector("xss", "cross-site scripting"),
    "path_traversal": _detector("path_traversal", "path traversal"),
    "file_probe": file_probe,
    "command_injection": _detector("command_injection", "command injection"),
    "template_injection": _detector("template_injection", "template or JNDI injection"),
    "crlf_injection": crlf_injection,
    "abnormal_input": abnormal_input,
    "uninspected": uninspected,
}


def score(inp: RiskInput, config: Config, plugins: Mapping[str, Factor] | None = None) -> RiskScore:
    """Run every factor (built-in, plugin, custom header) and sum the points of those that fire."""
    hits: list[Hit] = []
    route_weights = inp.route.weights  # a route's own weights override the gateway's
    for name, factor in (FACTORS | dict(plugins or {})).items():
        points = route_weights.get(name, config.risk.weights.get(name, 0))
        if points and (reason := factor(inp, config)):
            hits.append(Hit(name, points, reason))
    for custom in config.risk.custom_factors:
        value = inp.incoming.header(custom.header)
        points = route_weights.get(custom.name, custom.points)
        if points and value is not None and (custom.regex is None or custom.regex.search(value)):
            hits.append(Hit(custom.name, points, f"header {custom.header} is set"))
    return RiskScore(min(MAX_SCORE, sum(hit.points for hit in hits)), tuple(hits))
