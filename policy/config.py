"""The config model: one frozen tree, validated as it is built (see `policy.parse` for the parser)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from policy.errors import Invalid
from policy.iplist import IpSet
from policy.patterns import Matcher, compile_pattern

PLACEHOLDER_SECRET = "your-secret-key-here"
HMAC_MIN_KEY_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}  # RFC 7518 3.2: key >= hash size
PUBLIC_KEY_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
BUILTIN_WEIGHTS = {
    "new_entity": 30,
    "failure_rate": 20,
    "large_payload": 15,
    "suspicious": 20,
    "ip_flagged": 25,
}
HANDLER_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")  # a module name, never a path
FACTOR_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")
PLUGIN_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")
MEMORY_SIZE = re.compile(r"(\d+)([bkmg]?)", re.IGNORECASE)
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class ExecutionMode(StrEnum):
    THREAD = "thread"
    DOCKER = "docker"
    HYBRID = "hybrid"


class Mode(StrEnum):
    """Where one request's handler runs."""

    THREAD = "thread"
    DOCKER = "docker"


def _require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise Invalid(key, message)


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)  # derived fields of frozen dataclasses


def _ip_set(key: str, entries: tuple[str, ...]) -> IpSet:
    try:
        return IpSet(entries)
    except ValueError as exc:
        raise Invalid(key, str(exc)) from None


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 1024 * 1024
    trusted_proxies: tuple[str, ...] = ()
    debug_headers: bool = False
    proxies: IpSet = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _require(0 <= self.port <= 65535, "port", "must be within 0..65535")
        _require(self.max_body_bytes >= 0, "max_body_bytes", "must be >= 0")
        _set(self, "proxies", _ip_set("trusted_proxies", self.trusted_proxies))


@dataclass(frozen=True, slots=True)
class AuthConfig:
    secret_key: str = field(default="", repr=False)
    public_key: str = field(default="", repr=False)
    algorithms: tuple[str, ...] = ("HS256",)
    audience: str = ""
    issuer: str = ""
    leeway_s: int = 0

    def __post_init__(self) -> None:
        algs = set(self.algorithms)
        hmac, public = algs & HMAC_MIN_KEY_BYTES.keys(), algs & PUBLIC_KEY_ALGORITHMS
        unknown = algs - hmac - public
        _require(bool(algs), "algorithms", "must name at least one algorithm")
        _require(not unknown, "algorithms", f"unsupported: {', '.join(sorted(unknown))}")
        # Mixing families lets a public key be replayed as an HMAC secret (algorithm confusion).
        _require(not (hmac and public), "algorithms", "cannot mix HMAC and public-key algorithms")
        _require(self.leeway_s >= 0, "leeway_s", "must be >= 0")
        if public:
            _require(bool(self.public_key.strip()), "public_key", "required for " + ", ".join(public))
            return
        _require(bool(self.secret_key), "secret_key", "is empty: set SECRET_KEY")
        _require(
            self.secret_key != PLACEHOLDER_SECRET,
            "secret_key",
            "is the documented placeholder: set SECRET_KEY to a random value",
        )
        need = max(HMAC_MIN_KEY_BYTES[a] for a in hmac)
        size = len(self.secret_key.encode())
        _require(size >= need, "secret_key", f"is {size} bytes; {need}+ needed for these algorithms")


@dataclass(frozen=True, slots=True)
class DockerConfig:
    enabled: bool = True
    image: str = "isogate-runner:latest"
    memory_limit: str = "256m"
    cpu_limit: float = 0.5
    timeout_ms: int = 30000
    reuse_containers: bool = True
    warm_pool_size: int = 3
    max_containers: int = 10
    max_uses: int = 1000
    idle_ttl_s: int = 300
    memory_limit_bytes: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        size = MEMORY_SIZE.fullmatch(self.memory_limit.strip())
        _require(size is not None, "memory_limit", "expected a size like 256m, 1g or 512k")
        assert size is not None
        unit = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[size[2].lower()]
        _set(self, "memory_limit_bytes", int(size[1]) * unit)
        _require(self.memory_limit_bytes >= 6 << 20, "memory_limit", "must be at least 6m")
        _require(0 < self.cpu_limit <= 64, "cpu_limit", "must be within (0, 64]")
        _require(self.timeout_ms > 0, "timeout_ms", "must be > 0")
        _require(self.warm_pool_size >= 0, "warm_pool_size", "must be >= 0")
        _require(self.max_containers >= 1, "max_containers", "must be >= 1")
        _require(
            self.warm_pool_size <= self.max_containers,
            "warm_pool_size",
            "must not exceed max_containers",
        )
        _require(self.max_uses >= 1, "max_uses", "must be >= 1")
        _require(self.idle_ttl_s >= 1, "idle_ttl_s", "must be >= 1")


@dataclass(frozen=True, slots=True)
class ExecutionLimits:
    max_time_ms: int = 4000

    def __post_init__(self) -> None:
        _require(self.max_time_ms > 0, "max_time_ms", "must be > 0")


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    execution: ExecutionLimits = field(default_factory=ExecutionLimits)
    memory_limit_mb: int = 120
    memory_check_interval_ms: int = 5000

    def __post_init__(self) -> None:
        _require(self.memory_limit_mb > 0, "memory_limit_mb", "must be > 0")
        _require(self.memory_check_interval_ms >= 10, "memory_check_interval_ms", "must be >= 10")


@dataclass(frozen=True, slots=True)
class ThreadPoolConfig:
    min_workers: int = 2
    max_workers: int = 8

    def __post_init__(self) -> None:
        _require(self.max_workers >= 1, "max_workers", "must be >= 1")
        _require(
            0 <= self.min_workers <= self.max_workers,
            "min_workers",
            "must be within 0..max_workers",
        )


@dataclass(frozen=True, slots=True)
class RiskThresholds:
    low: int = 30
    medium: int = 60
    high: int = 80

    def __post_init__(self) -> None:
        _require(
            0 <= self.low <= self.medium <= self.high <= 100,
            "low",
            "need 0 <= low <= medium <= high <= 100",
        )


@dataclass(frozen=True, slots=True)
class DockerTriggers:
    """Which reasons send a medium-risk request to a container in hybrid mode."""

    untrusted: bool = True
    high_resource: bool = True
    suspicious: bool = True
    new: bool = True


@dataclass(frozen=True, slots=True)
class HybridConfig:
    risk_thresholds: RiskThresholds = field(default_factory=RiskThresholds)
    docker_for: DockerTriggers = field(default_factory=DockerTriggers)
    block_threshold: int | None = None

    def __post_init__(self) -> None:
        if self.block_threshold is not None:
            _require(0 < self.block_threshold <= 100, "block_threshold", "must be within 1..100")


@dataclass(frozen=True, slots=True)
class CustomFactor:
    """A header-driven factor: fires when `header` is present (and matches `pattern`, if given)."""

    name: str
    header: str
    points: int
    pattern: str | None = None
    regex: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _require(bool(FACTOR_NAME.fullmatch(self.name)), "name", "expected a lower-case name")
        _require(bool(self.header), "header", "must not be empty")
        _require(0 <= self.points <= 100, "points", "must be within 0..100")
        _set(self, "header", self.header.lower())
        try:
            _set(self, "regex", compile_pattern(self.pattern) if self.pattern else None)
        except ValueError as exc:
            raise Invalid("pattern", str(exc)) from None


@dataclass(frozen=True, slots=True)
class RiskConfig:
    weights: dict[str, int] = field(default_factory=dict)
    new_entity_requests: int = 10
    failure_rate_threshold: float = 0.2
    failure_min_sample: int = 5
    history_window: int = 50
    large_payload_bytes: int = 100 * 1024
    keywords: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    custom_factors: tuple[CustomFactor, ...] = ()
    plugins: tuple[str, ...] = ()
    matcher: Matcher = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _set(self, "weights", {**BUILTIN_WEIGHTS, **self.weights})
        plugin_names = [p.rpartition(":")[2] for p in self.plugins]
        for i, plugin in enumerate(self.plugins):
            _require(bool(PLUGIN_PATH.fullmatch(plugin)), f"plugins[{i}]", "expected 'module:function'")
            _require(
                plugin_names[i] in self.weights,
                f"plugins[{i}]",
                f"needs risk.weights.{plugin_names[i]}",
            )
        for name, points in self.weights.items():
            _require(name in BUILTIN_WEIGHTS or name in plugin_names, f"weights.{name}", "no such factor")
            _require(0 <= points <= 100, f"weights.{name}", "must be within 0..100")
        taken = set(self.weights)
        for i, custom in enumerate(self.custom_factors):
            _require(custom.name not in taken, f"custom_factors[{i}].name", "name already used")
            taken.add(custom.name)
        _require(self.new_entity_requests >= 0, "new_entity_requests", "must be >= 0")
        _require(0 <= self.failure_rate_threshold < 1, "failure_rate_threshold", "must be within [0, 1)")
        _require(self.failure_min_sample >= 1, "failure_min_sample", "must be >= 1")
        _require(
            self.history_window >= self.failure_min_sample,
            "history_window",
            "must be >= failure_min_sample",
        )
        _require(self.large_payload_bytes >= 0, "large_payload_bytes", "must be >= 0")
        for i, pattern in enumerate(self.patterns):
            try:
                compile_pattern(pattern)
            except ValueError as exc:
                raise Invalid(f"patterns[{i}]", str(exc)) from None
        _set(self, "matcher", Matcher(self.keywords, self.patterns))


@dataclass(frozen=True, slots=True)
class IpListsConfig:
    deny: tuple[str, ...] = ()
    flagged: tuple[str, ...] = ()
    trusted: tuple[str, ...] = ()
    deny_set: IpSet = field(init=False, repr=False, compare=False)
    flagged_set: IpSet = field(init=False, repr=False, compare=False)
    trusted_set: IpSet = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("deny", "flagged", "trusted"):
            _set(self, f"{name}_set", _ip_set(name, getattr(self, name)))


@dataclass(frozen=True, slots=True)
class RouteConfig:
    """`path` is exact, or ends in `/*` to match a prefix (`/*` alone matches everything)."""

    path: str
    handler: str
    methods: tuple[str, ...] = HTTP_METHODS
    mode: Mode | None = None
    heavy: bool = False

    def __post_init__(self) -> None:
        _require(self.path.startswith("/"), "path", "must start with /")
        _require("*" not in self.path.removesuffix("/*"), "path", "'*' is only allowed as a final /*")
        _require(
            bool(HANDLER_NAME.fullmatch(self.handler)),
            "handler",
            "expected a module name like echo",
        )
        _set(self, "methods", tuple(m.upper() for m in self.methods))
        unknown = set(self.methods) - set(HTTP_METHODS)
        _require(
            bool(self.methods) and not unknown,
            "methods",
            f"expected some of {', '.join(HTTP_METHODS)}",
        )

    def matches_path(self, path: str) -> bool:
        if self.path.endswith("/*"):
            return path.startswith(self.path[:-1]) or path == self.path[:-2]
        return path == self.path


@dataclass(frozen=True, slots=True)
class StatsConfig:
    top_entities: int = 20
    max_entities: int = 100_000
    latency_samples: int = 2048

    def __post_init__(self) -> None:
        _require(self.top_entities >= 0, "top_entities", "must be >= 0")
        _require(self.max_entities >= 1, "max_entities", "must be >= 1")
        _require(self.latency_samples >= 1, "latency_samples", "must be >= 1")


@dataclass(frozen=True, slots=True)
class Config:
    """The whole policy. Replace it whole; never mutate it."""

    execution_mode: ExecutionMode = ExecutionMode.HYBRID
    handlers_package: str = "handlers"
    server: ServerConfig = field(default_factory=ServerConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    docker: DockerConfig = field(default_factory=DockerConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    thread_pool: ThreadPoolConfig = field(default_factory=ThreadPoolConfig)
    hybrid: HybridConfig = field(default_factory=HybridConfig)
    risk: RiskConfig = field(default_factory=RiskConfig)
    ip_lists: IpListsConfig = field(default_factory=IpListsConfig)
    stats: StatsConfig = field(default_factory=StatsConfig)
    routes: tuple[RouteConfig, ...] = ()

    def __post_init__(self) -> None:
        _require(
            bool(re.fullmatch(r"[A-Za-z_][\w.]*", self.handlers_package)),
            "handlers_package",
            "expected a package name",
        )
        if not self.docker.enabled:
            _require(
                self.execution_mode is not ExecutionMode.DOCKER,
                "execution_mode",
                "is docker but docker.enabled is false",
            )
            for i, route in enumerate(self.routes):
                _require(
                    route.mode is not Mode.DOCKER,
                    f"routes[{i}].mode",
                    "is docker but docker.enabled is false",
                )
