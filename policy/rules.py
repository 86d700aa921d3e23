"""The rules sections of the config: risk factors and their weights, hybrid thresholds and triggers,
IP lists. Data only: the code that applies them is in `policy.risk` and `policy.decision`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from policy.errors import Invalid
from policy.iplist import IpSet
from policy.linear import Regex
from policy.patterns import Matcher, compile_pattern
from policy.schema import derive, require

BUILTIN_WEIGHTS = {
    "new_entity": 30,
    "failure_rate": 20,
    "large_payload": 15,
    "suspicious": 20,
    "ip_flagged": 25,
    "sql_injection": 40,
    "xss": 40,
    "path_traversal": 40,
    "file_probe": 30,
    "command_injection": 40,
    "template_injection": 40,
    "crlf_injection": 35,
    "abnormal_input": 20,
    "uninspected": 30,  # alone it reaches the low threshold, and counts as suspicious content
    "upload_mismatch": 40,  # a file that is not what its type or name says
    "active_content": 40,  # script in an SVG, HTML or XML file
    "xxe": 40,  # a DTD, entity or XInclude in XML
    "profile": 35,  # only when risk.profile is configured
    "crs": 40,  # only when risk.crs.enabled
}


@dataclass(frozen=True, slots=True)
class CredentialFile:
    """An upstream route's credential (`authorization: file:PATH`), as the loader read it: the whole value
    of the Authorization header the upstream gets, on one line. Never shown (a repr, a log, /stats)."""

    path: str
    text: str = field(repr=False)

    def __post_init__(self) -> None:
        value = self.text.strip()
        one_line = bool(value) and "\n" not in value and "\r" not in value
        require(one_line, "authorization", f"{self.path}: expected one line, the header's value (Bearer ...)")
        derive(self, "text", value)


@dataclass(frozen=True, slots=True)
class ListFile:
    """An IP list file (a `file:PATH` entry) as the loader read it: an address or CIDR a line, # comments."""

    path: str
    text: str = field(repr=False)

    def entries(self) -> Iterator[tuple[int, str]]:
        for number, line in enumerate(self.text.splitlines(), 1):
            entry = line.split("#", 1)[0].strip()
            if entry:
                yield number, entry


def ip_set(key: str, items: tuple[str | ListFile, ...]) -> IpSet:
    """The set of every inline entry and every line of every list file, errors naming file and line."""
    where = [key]

    def entries() -> Iterator[str]:
        for i, item in enumerate(items):
            if isinstance(item, str):
                where[0] = f"{key}[{i}]"
                yield item
                continue
            for number, entry in item.entries():
                where[0] = f"{key}[{i}] ({item.path} line {number})"
                yield entry

    try:
        return IpSet(entries())
    except ValueError as exc:
        raise Invalid(where[0], str(exc)) from None


FACTOR_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")
PLUGIN_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


@dataclass(frozen=True, slots=True)
class RiskThresholds:
    # scores under it are low risk
    low: int = 30
    # under it, medium
    medium: int = 60
    # under it, high; at or over it, critical
    high: int = 80

    def __post_init__(self) -> None:
        require(
            0 <= self.low <= self.medium <= self.high <= 100,
            "low",
            "need 0 <= low <= medium <= high <= 100",
        )


@dataclass(frozen=True, slots=True)
class DockerTriggers:
    """Which reasons send a medium-risk request to a container in hybrid mode."""

    # anonymous callers and tokens with trust: untrusted
    untrusted: bool = True
    # a large payload, or a heavy route
    high_resource: bool = True
    # a content factor fired
    suspicious: bool = True
    # the caller has made fewer than risk.new_entity_requests requests
    new: bool = True


@dataclass(frozen=True, slots=True)
class HybridConfig:
    risk_thresholds: RiskThresholds = field(default_factory=RiskThresholds)
    docker_for: DockerTriggers = field(default_factory=DockerTriggers)
    block_threshold: int | None = None
    # Decide, log and count every request, but serve each as a trusted caller's zero-risk request would be:
    # what would have been isolated or refused is told (`would` in the log, /stats, /metrics), not done.
    report_only: bool = False

    def __post_init__(self) -> None:
        if self.block_threshold is not None:
            require(0 < self.block_threshold <= 100, "block_threshold", "must be within 1..100")


@dataclass(frozen=True, slots=True)
class CustomFactor:
    """A header-driven factor: fires when `header` is present (and matches `pattern`, if given)."""

    # the factor's name (as it shows in the breakdown)
    name: str
    # fires when this header is present...
    header: str
    # its points
    points: int
    # ...and matches this RE2 regex, when given
    pattern: str | None = None
    regex: Regex | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        require(bool(FACTOR_NAME.fullmatch(self.name)), "name", "expected a lower-case name")
        require(bool(self.header), "header", "must not be empty")
        require(0 <= self.points <= 100, "points", "must be within 0..100")
        derive(self, "header", self.header.lower())
        try:
            derive(self, "regex", compile_pattern(self.pattern) if self.pattern else None)
        except ValueError as exc:
            raise Invalid("pattern", str(exc)) from None


@dataclass(frozen=True, slots=True)
class ProfileConfig:
    """The learned profile factor: off unless `file` or `corpus` is set.

    `corpus`: JSON lines of normal requests to fit at load. `file`: a fitted profile (JSON); when it does
    not exist yet and `learn_requests` > 0, the gateway learns from that many live requests that no other
    factor flagged, then writes it (and the file watcher loads it).
    """

    file: str = ""
    corpus: str = ""
    # requests to learn from before writing file
    learn_requests: int = 0

    def __post_init__(self) -> None:
        require(self.learn_requests >= 0, "learn_requests", "must be >= 0")
        require(not (self.learn_requests and not self.file), "learn_requests", "needs risk.profile.file")

    @property
    def enabled(self) -> bool:
        return bool(self.file or self.corpus)


@dataclass(frozen=True, slots=True)
class CrsExclusion:
    """Rule ids not evaluated: on every route, or on those whose path is `route` (as written in routes)."""

    # CRS rule ids not evaluated
    ids: tuple[int, ...]
    # on this route only (its path as written in routes)
    route: str = ""

    def __post_init__(self) -> None:
        require(bool(self.ids), "ids", "must name at least one rule id")
        for i, rule_id in enumerate(self.ids):
            require(900000 <= rule_id <= 999999, f"ids[{i}]", "a CRS rule id has six digits")


@dataclass(frozen=True, slots=True)
class CrsConfig:
    """The `crs` factor: the OWASP Core Rule Set's request attack rules (REQUEST-930 to 944) from
    `rules_dir`, evaluated up to `paranoia_level`; it fires when the matched rules' anomaly scores (CRS's:
    critical 5, error 4, warning 3, notice 2) reach `anomaly_threshold`. Compiled databases are kept in
    `cache_dir` (default: $XDG_CACHE_HOME/isogate or ~/.cache/isogate), keyed by a hash of the rules."""

    # the crs factor: off unless true
    enabled: bool = False
    rules_dir: str = "/usr/share/modsecurity-crs/rules"
    paranoia_level: int = 1
    anomaly_threshold: int = 5
    # When every matched rule matched a body's field (form, JSON, XML, multipart text), where people write:
    # the score counts each attack family (942 SQL, 932 RCE...) once, and one family alone there is most
    # often a sentence (`you may copy` after a line break trips 932100 and its twin 932105).
    prose_threshold: int = 10
    exclude: tuple[CrsExclusion, ...] = ()
    cache_dir: str = ""
    # The ids `excluded` answers, worked out once: everywhere, and per route an exclusion names.
    _everywhere: frozenset[int] = field(init=False, repr=False, compare=False)
    _by_route: dict[str, frozenset[int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        require(1 <= self.paranoia_level <= 4, "paranoia_level", "must be within 1..4")
        require(1 <= self.anomaly_threshold <= 1000, "anomaly_threshold", "must be within 1..1000")
        require(
            self.anomaly_threshold <= self.prose_threshold <= 1000,
            "prose_threshold",
            "must be within anomaly_threshold..1000",
        )
        everywhere = frozenset(i for e in self.exclude if not e.route for i in e.ids)
        routes = {e.route for e in self.exclude if e.route}
        by_route = {r: everywhere | {i for e in self.exclude if e.route == r for i in e.ids} for r in routes}
        derive(self, "_everywhere", everywhere)
        derive(self, "_by_route", by_route)

    def excluded(self, route: str) -> frozenset[int]:
        """The rule ids not evaluated for requests of `route` (a route's path)."""
        return self._by_route.get(route, self._everywhere)


# The variables an exclusion can name (ModSecurity's names, as evidence gives them).
VARIABLES = frozenset(
    "ARGS ARGS_NAMES ARGS_GET ARGS_POST ARGS_GET_NAMES ARGS_POST_NAMES REQUEST_HEADERS REQUEST_HEADERS_NAMES"
    " REQUEST_COOKIES REQUEST_COOKIES_NAMES REQUEST_FILENAME REQUEST_BASENAME REQUEST_URI REQUEST_URI_RAW"
    " REQUEST_LINE QUERY_STRING REQUEST_BODY FILES FILES_NAMES XML MULTIPART_PART_HEADERS".split()
)
_VARIABLE = re.compile(r"([A-Z_]+)(?::(.+))?")
_ALIASES = {"ARGS": ("ARGS_GET", "ARGS_POST"), "ARGS_NAMES": ("ARGS_GET_NAMES", "ARGS_POST_NAMES")}


def _variable_key(collection: str, name: str) -> tuple[str, str]:
    return collection, name.lower() if collection.startswith("REQUEST_HEADERS") else name


@dataclass(frozen=True, slots=True)
class Exclusion:
    """What is not scored: `factors` (names) and CRS `rules` (ids), on `route` (a route's path as written;
    every route when empty), for `variables` (`ARGS:comment`, `REQUEST_HEADERS:User-Agent`, a whole
    collection such as `FILES`; every value when empty). Names what the evidence of a flag names."""

    # factor names not scored
    factors: tuple[str, ...] = ()
    # CRS rule ids not scored
    rules: tuple[int, ...] = ()
    # on these values only (ARGS:comment, REQUEST_HEADERS:Referer, FILES); all when empty
    variables: tuple[str, ...] = ()
    # on this route only (its path as written in routes); all when empty
    route: str = ""
    _keys: frozenset[tuple[str, str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        require(bool(self.factors or self.rules), "factors", "an exclusion names factors or CRS rules")
        for i, rule_id in enumerate(self.rules):
            require(900000 <= rule_id <= 999999, f"rules[{i}]", "a CRS rule id has six digits")
        keys = set()
        for i, variable in enumerate(self.variables):
            found = _VARIABLE.fullmatch(variable)
            require(
                found is not None and found.group(1) in VARIABLES,
                f"variables[{i}]",
                f"expected COLLECTION or COLLECTION:name, COLLECTION one of {', '.join(sorted(VARIABLES))}",
            )
            assert found is not None
            collection, name = found.group(1), found.group(2) or ""
            for each in (collection, *_ALIASES.get(collection, ())):
                keys.add(_variable_key(each, name))
        derive(self, "_keys", frozenset(keys))

    def covers(self, where: str) -> bool:
        """Whether the value at `where` (a variable, `ARGS:comment`) is one this exclusion names."""
        if not self._keys:
            return True
        collection, _, name = where.partition(":")
        return (collection, "") in self._keys or _variable_key(collection, name) in self._keys


@dataclass(frozen=True, slots=True)
class RiskConfig:
    # points per factor (0 turns one off); see the README's factor table
    weights: dict[str, int] = field(default_factory=dict)
    # a caller with fewer requests than this is new (the new_entity factor)
    new_entity_requests: int = 10
    failure_rate_threshold: float = 0.2
    # recent requests needed before failure_rate is judged
    failure_min_sample: int = 5
    # the recent requests failure_rate looks at
    history_window: int = 50
    # a body over this fires large_payload
    large_payload_bytes: int = 100 * 1024
    max_value_length: int = 4096  # a parameter value longer than this is abnormal input
    max_scan_bytes: int = 65536  # characters of a request inspected; the rest fires `uninspected`
    # substrings that fire suspicious, after normalisation (your application's own)
    keywords: tuple[str, ...] = ()
    # RE2 regexes that fire suspicious
    patterns: tuple[str, ...] = ()
    # header-driven factors: {name, header, points, pattern?}
    custom_factors: tuple[CustomFactor, ...] = ()
    # module:function factors, with risk.weights.<function> set
    plugins: tuple[str, ...] = ()
    profile: ProfileConfig = field(default_factory=lambda: ProfileConfig())
    crs: CrsConfig = field(default_factory=lambda: CrsConfig())
    exclude: tuple[Exclusion, ...] = ()
    matcher: Matcher = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        derive(self, "weights", {**BUILTIN_WEIGHTS, **self.weights})
        plugin_names = [p.rpartition(":")[2] for p in self.plugins]
        for i, plugin in enumerate(self.plugins):
            require(bool(PLUGIN_PATH.fullmatch(plugin)), f"plugins[{i}]", "expected 'module:function'")
            require(
                plugin_names[i] in self.weights,
                f"plugins[{i}]",
                f"needs risk.weights.{plugin_names[i]}",
            )
        for name, points in self.weights.items():
            require(name in BUILTIN_WEIGHTS or name in plugin_names, f"weights.{name}", "no such factor")
            require(0 <= points <= 100, f"weights.{name}", "must be within 0..100")
        taken = set(self.weights)
        for i, custom in enumerate(self.custom_factors):
            require(custom.name not in taken, f"custom_factors[{i}].name", "name already used")
            taken.add(custom.name)
        require(self.new_entity_requests >= 0, "new_entity_requests", "must be >= 0")
        require(0 <= self.failure_rate_threshold < 1, "failure_rate_threshold", "must be within [0, 1)")
        require(self.failure_min_sample >= 1, "failure_min_sample", "must be >= 1")
        require(
            self.history_window >= self.failure_min_sample,
            "history_window",
            "must be >= failure_min_sample",
        )
        require(self.large_payload_bytes >= 0, "large_payload_bytes", "must be >= 0")
        require(self.max_value_length >= 1, "max_value_length", "must be >= 1")
        require(1024 <= self.max_scan_bytes <= 16 << 20, "max_scan_bytes", "must be within 1024..16777216")
        for i, pattern in enumerate(self.patterns):
            try:
                compile_pattern(pattern)
            except ValueError as exc:
                raise Invalid(f"patterns[{i}]", str(exc)) from None
        derive(self, "matcher", Matcher(self.keywords, self.patterns))

    def excluded(self, name: str, route: str, where: str) -> bool:
        """Whether factor or CRS rule `name` is not scored on the value at `where` in requests of `route`."""
        for exclusion in self.exclude:
            if exclusion.route and exclusion.route != route:
                continue
            if (name in exclusion.factors or (name.isdigit() and int(name) in exclusion.rules)) and (
                exclusion.covers(where)
            ):
                return True
        return False


@dataclass(frozen=True, slots=True)
class IpListsConfig:
    """Each list: addresses, CIDRs and `file:PATH` entries (relative to the config file)."""

    # addresses and CIDRs refused (403) before anything else
    deny: tuple[str | ListFile, ...] = ()
    # add the ip_flagged factor
    flagged: tuple[str | ListFile, ...] = ()
    # anonymous callers from these are not untrusted
    trusted: tuple[str | ListFile, ...] = ()
    deny_set: IpSet = field(init=False, repr=False, compare=False)
    flagged_set: IpSet = field(init=False, repr=False, compare=False)
    trusted_set: IpSet = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("deny", "flagged", "trusted"):
            derive(self, f"{name}_set", ip_set(name, getattr(self, name)))
