"""Score step: risk 0-100 as the capped sum of named factors, each reported with its points and reason.

Factors are a registry (name -> function); their points are config (`risk.weights`), never code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from policy import detectors, uploads
from policy.bodies import BODY, COOKIE, FILENAME, FORM, HEADER, NAME, PATH, QUERY, TEXT
from policy.config import Config, RouteConfig
from policy.fields import MAX_SCAN_BYTES, Field, Fields, extract
from policy.identity import Identity
from policy.incoming import Incoming
from policy.linear import bounded
from policy.normalise import url_decode
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
    text, fields = inp.fields.joined, inp.fields
    for matcher in [config.risk.matcher] + ([inp.route.matcher] if inp.route.matcher else []):
        offset = 0
        while (found := matcher.find(text[offset:] if offset else text)) is not None:
            value, offset = fields.locate(offset + found[0])
            if not _excluded(inp, config, "suspicious", value.where):
                return f"{evidence(value.where, found[1])} (a configured keyword or pattern)"
    return None


def evidence(where: str, excerpt: str) -> str:
    """`VARIABLE: 'excerpt'`: what a flag is about, told without what it must not tell: the value of a
    field named like a secret (password, token, session...) is never shown, and long runs are cut."""
    shown = "[redacted]" if _SECRET_NAME.search(where.partition(":")[2]) else redact(excerpt)
    return f"{where[:80]}: {shown!r}"


# A parameter, cookie or header whose value is a credential: its evidence names it, never shows it.
_SECRET_NAME = bounded(r"(?i)pass|pwd|secret|token|key|auth|sess|sid|csrf|xsrf|card|cvv|ssn|otp|pin\b")


_LONG_RUN = bounded(r"[A-Za-z0-9+/_=-]{24,240}")  # a token, key or id: shown by its first 4 characters


def redact(excerpt: str, limit: int = 40) -> str:
    """A short excerpt: runs that could be secrets cut to their first characters, at most `limit` shown."""
    text = _LONG_RUN.sub(lambda m: m.group(0)[:4] + "...", excerpt.strip())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _excluded(inp: RiskInput, config: Config, name: str, where: str) -> bool:
    return bool(config.risk.exclude) and config.risk.excluded(name, inp.route.path, where)


# Where each detector's attack can work: a value of any kind, unless listed here.
REACHES_LINES = frozenset({PATH, QUERY, FORM, COOKIE, HEADER, FILENAME, NAME})  # header and log lines
PROSE = frozenset({TEXT, BODY})  # JSON, XML and multipart text: free text, where quotes and breaks are prose
DECODED = frozenset({PATH, QUERY, HEADER, COOKIE})  # control characters looked for past every encoding


def _applies(name: str, value: Field, found: str) -> bool:
    """Path traversal in a path, a file's name, a value without a blank (a sentence that names /etc/hosts
    is not one), or a NUL byte (it cuts a name short wherever it is); the other detectors anywhere."""
    if name == "path_traversal":
        if found == "\x00":  # in free text, only as sent (abnormal_input's): a sentence's `\\0` is not one
            return value.kind not in PROSE
        return value.kind in (PATH, FILENAME) or " " not in value.decoded
    return True


def _detector(name: str, what: str) -> Factor:
    def factor(inp: RiskInput, config: Config) -> str | None:
        for value, found in inp.fields.findings.get(name, ()):
            if _applies(name, value, found) and not _excluded(inp, config, name, value.where):
                return f"{evidence(value.where, found)} ({what})"
        return None

    factor.__name__ = name
    return factor


def crlf_injection(inp: RiskInput, config: Config) -> str | None:
    """Response splitting and log forging: a line break where a value can reach a header or a log line."""
    for value in inp.fields.suspects:
        if value.kind in REACHES_LINES and (found := detectors.crlf_injection(value.raw)):
            if not _excluded(inp, config, "crlf_injection", value.where):
                return f"{evidence(value.where, found)} (line break before it)"
    return None


def file_probe(inp: RiskInput, config: Config) -> str | None:
    found = detectors.file_probe(inp.fields.path.lower())
    if not found or _excluded(inp, config, "file_probe", "REQUEST_FILENAME"):
        return None
    return f"{evidence('REQUEST_FILENAME', found)} (a hidden or backup file)"


def abnormal_input(inp: RiskInput, config: Config) -> str | None:
    """Buffer-overflow-sized values, control characters, too many parameters, JSON nested too deep. Free
    text (JSON, XML and multipart text fields) is bounded by the scan budget alone, and may hold page
    breaks (\x0b, \x0c: license texts have them)."""
    fields, limit = inp.fields, config.risk.max_value_length
    if fields.anomaly is not None:
        return fields.anomaly
    for value in fields.values:
        if value.size > limit and value.kind not in PROSE:
            if not _excluded(inp, config, "abnormal_input", value.where):
                return f"{value.where} is {value.size} characters, over {limit}"
    if fields.search(_CONTROL) is None:
        return None
    for value in fields.values:
        control = _control(value)
        if control and not _excluded(inp, config, "abnormal_input", value.where):
            return f"{value.where} carries control characters ({control!r})"
    return None


_CONTROL = bounded(r"[\x00\x02-\x08\x0b\x0c\x0e-\x1f\x7f]")  # \x01 separates joined values
_CONTROL_IN_PROSE = bounded(r"[\x00\x02-\x08\x0e-\x1f\x7f]")


def _control(value: Field) -> str | None:
    """A control character: past every layer of encoding in a path, query, header or cookie; as sent in a
    form's value (a double-encoded NUL, `%2500`, too), since decoding prose again makes `%02d` or `\\b` one;
    as sent, page breaks allowed, in free text."""
    if value.kind in DECODED:
        found = _CONTROL.search(value.decoded)
    elif value.kind in PROSE:
        found = _CONTROL_IN_PROSE.search(value.raw)
    else:
        found = _CONTROL.search(value.raw)
        if found is None and "%" in value.raw and "\x00" in url_decode(value.raw):
            return "\x00"
    return found.group(0) if found else None


def uninspected(inp: RiskInput, config: Config) -> str | None:
    """Content the gateway could not inspect is never scored as safe: it counts as suspicious content."""
    found = inp.fields.uninspected
    return f"not inspected: {found}" if found else None


def _first_upload(
    inp: RiskInput, config: Config, name: str, check: Callable[[uploads.Upload], str | None]
) -> str | None:
    """What `check` finds in the request's first file it finds anything in (and not excluded there)."""
    for upload in inp.fields.uploads:
        found = check(upload)
        if found and not _excluded(inp, config, name, upload.where):
            return found
    return None


def upload_mismatch(inp: RiskInput, config: Config) -> str | None:
    """A file that is not what its declared type or its name says: a script or executable disguised as
    media, an HTML or PHP file sent as image/png, a double extension (`shell.php.jpg`)."""
    return _first_upload(inp, config, "upload_mismatch", uploads.disguise)


def active_content(inp: RiskInput, config: Config) -> str | None:
    """Script, event handlers or `javascript:` URLs in an SVG or HTML file: stored XSS once served."""
    return _first_upload(inp, config, "active_content", uploads.active_content)


def xxe(inp: RiskInput, config: Config) -> str | None:
    """A DTD, an entity or XInclude in XML: what makes a parser read local files or URLs (XXE)."""
    found = inp.fields.xxe
    return f"{evidence('XML', found)} (XML external entities)" if found else None


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
    "upload_mismatch": upload_mismatch,
    "active_content": active_content,
    "xxe": xxe,
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
