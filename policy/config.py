"""The config model: one frozen tree, validated as it is built (see `policy.parse` for the parser)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import urlsplit

from policy.iplist import IpSet
from policy.patterns import Matcher
from policy.ratelimits import RateLimitConfig
from policy.rules import CredentialFile, HybridConfig, IpListsConfig, RiskConfig, RiskThresholds, ip_set
from policy.schema import derive, require

PLACEHOLDER_SECRET = "your-secret-key-here"
MAX_LEEWAY_S = 300  # clock skew worth forgiving; more turns expiry into a suggestion
HMAC_MIN_KEY_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}  # RFC 7518 3.2: key >= hash size
PUBLIC_KEY_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
HANDLER_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")  # a module name, never a path
MEMORY_SIZE = re.compile(r"(\d+)([bkmg]?)", re.IGNORECASE)
APP_TARGET = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")  # module:attribute
IMAGE_NAME = re.compile(r"[a-z0-9][a-z0-9._/:@-]{0,254}")  # an image reference: name[:tag][@digest]
ENTITY_BYTES = 320  # one entity's history with its table entry: Python objects (tracemalloc: ~290 B)
ENTITY_RSS_BYTES = 640  # what one adds to the process's RSS under churn (bench/churn.py: 601-657 B)
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class ExecutionMode(StrEnum):
    THREAD = "thread"
    DOCKER = "docker"
    HYBRID = "hybrid"


class Mode(StrEnum):
    """Where one request's handler runs."""

    THREAD = "thread"
    DOCKER = "docker"


class DebugHeaders(StrEnum):
    """Who sees the X-Isogate-Risk/-Factors/-Mode headers (they tell a caller how it was scored)."""

    OFF = "off"
    ADMINS = "admins"  # tokens with role: admin
    ALL = "all"  # everyone: for local tours and tests only


class RouteAuth(StrEnum):
    REQUIRED = "required"  # no valid token: 401 before anything runs
    OPTIONAL = "optional"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    # the address the gateway listens on
    host: str = "127.0.0.1"
    # its port
    port: int = 8080
    max_body_bytes: int = 1024 * 1024
    body_timeout_s: float = 30.0  # a whole body must arrive within this...
    body_grace_s: float = 5.0  # ...and, after this, at min_body_rate bytes a second or faster
    # bytes a second a body must keep up after body_grace_s (else 408 body_timeout)
    min_body_rate: int = 1024
    # the request line and headers must arrive within this (from the connection or the request's first
    # byte; else 408 and closed), as nginx's client_header_timeout: slow headers cannot hold the caps below
    header_timeout_s: float = 10.0
    # a kept-alive connection with no request in progress is closed after this; at a cap, idle ones go first
    idle_timeout_s: float = 30.0
    max_connections: int = 1024  # open client connections in all; past it 503 and closed
    max_connections_per_ip: int = 64  # per client address (trusted_proxies exempt)
    trusted_proxies: tuple[str, ...] = ()
    debug_headers: DebugHeaders | bool = DebugHeaders.OFF  # true: all, false: off
    watch_config: bool = (
        True  # reload when config.yaml or a list file changes (SIGHUP and the API always work)
    )
    # a changed file is read once its size and mtime stayed the same this long (a write in progress is not)
    watch_settle_ms: int = 300
    # the watcher refuses a config that removes more than this share of the routes (or all of them);
    # SIGHUP and POST /admin/reload apply it anyway
    watch_max_routes_removed: float = 0.5
    watch_code: bool = False  # also reload when a handler's or an app's .py file changes (each second)
    workers: int | str = 1  # gateway processes on one port (SO_REUSEPORT), or "auto": one per core
    # started as root: the user the gateway becomes once its port, store and key are held (make run: isogate),
    # so handlers and apps in thread mode never run as root; "" stays as started
    user: str = ""
    proxies: IpSet = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        require(0 <= self.port <= 65535, "port", "must be within 0..65535")
        if isinstance(self.debug_headers, bool):
            derive(self, "debug_headers", DebugHeaders.ALL if self.debug_headers else DebugHeaders.OFF)
        require(self.max_body_bytes >= 0, "max_body_bytes", "must be >= 0")
        require(self.body_timeout_s > 0, "body_timeout_s", "must be > 0")
        require(self.body_grace_s >= 0, "body_grace_s", "must be >= 0")
        require(self.min_body_rate >= 1, "min_body_rate", "must be >= 1")
        require(self.header_timeout_s > 0, "header_timeout_s", "must be > 0")
        require(self.idle_timeout_s > 0, "idle_timeout_s", "must be > 0")
        require(self.max_connections >= 1, "max_connections", "must be >= 1")
        require(self.max_connections_per_ip >= 1, "max_connections_per_ip", "must be >= 1")
        require(0 <= self.watch_settle_ms <= 60_000, "watch_settle_ms", "must be within 0..60000")
        require(
            0 <= self.watch_max_routes_removed <= 1,
            "watch_max_routes_removed",
            "must be within 0..1 (a share)",
        )
        require(
            self.workers == "auto" or (isinstance(self.workers, int) and 1 <= self.workers <= 256),
            "workers",
            "expected a number of processes (1..256) or auto",
        )
        require(
            self.workers == 1 or self.port != 0,
            "workers",
            "needs a fixed port: with port 0 every worker would listen on a port of its own",
        )
        derive(self, "proxies", ip_set("trusted_proxies", self.trusted_proxies))


@dataclass(frozen=True, slots=True)
class AuthConfig:
    # the HMAC key (HS*): from SECRET_KEY or SECRET_KEY_FILE, never written here in production
    secret_key: str = field(default="", repr=False)
    # a PEM public key, for RS/PS/ES/EdDSA tokens (instead of secret_key)
    public_key: str = field(default="", repr=False)
    algorithms: tuple[str, ...] = ("HS256",)
    # the `aud` a token must name (a token naming another is refused either way)
    audience: str = ""
    # the `iss` a token must carry, when set
    issuer: str = ""
    # clock skew forgiven on exp, nbf and iat (at most 300)
    leeway_s: int = 0
    require_exp: bool = True  # a token without `exp` would be valid forever
    max_token_lifetime_s: int = 86400  # exp - iat (or exp - now); 0: no cap
    # anonymous IPv6 callers: one entity per network of this size (128: per address)
    anonymous_ipv6_prefix: int = 64
    # the API's identity provider's JSON Web Key Set (https://idp/.../certs): its keys verify the tokens,
    # by their `kid` (RS/PS/ES/EdDSA algorithms, instead of public_key)
    jwks_url: str = ""
    # fetched keys are fetched again after this long
    jwks_refresh_s: int = 300
    # at most one fetch starts in this long, however many unknown `kid`s come
    jwks_min_fetch_interval_s: int = 30
    # the claim that makes a caller an admin: `path=value`, a path of dotted names into the claims, matched
    # by equality, by membership of a list, or as a word of a space-separated string (an OAuth scope)
    admin_claim: str = "role=admin"
    # the claims that make a caller trusted, or untrusted (which wins)
    trusted_claim: str = "trust=trusted"
    untrusted_claim: str = "trust=untrusted"

    def __post_init__(self) -> None:
        algs = set(self.algorithms)
        hmac, public = algs & HMAC_MIN_KEY_BYTES.keys(), algs & PUBLIC_KEY_ALGORITHMS
        unknown = algs - hmac - public
        require(bool(algs), "algorithms", "must name at least one algorithm")
        require(not unknown, "algorithms", f"unsupported: {', '.join(sorted(unknown))}")
        # Mixing families lets a public key be replayed as an HMAC secret (algorithm confusion).
        require(not (hmac and public), "algorithms", "cannot mix HMAC and public-key algorithms")
        require(0 <= self.leeway_s <= MAX_LEEWAY_S, "leeway_s", f"must be within 0..{MAX_LEEWAY_S}")
        require(self.max_token_lifetime_s >= 0, "max_token_lifetime_s", "must be >= 0")
        require(32 <= self.anonymous_ipv6_prefix <= 128, "anonymous_ipv6_prefix", "must be within 32..128")
        for name in ("admin_claim", "trusted_claim", "untrusted_claim"):
            path, _, value = getattr(self, name).partition("=")
            require(bool(path.strip()) and bool(value.strip()), name, "expected claim.path=value")
        if self.jwks_url:
            require(self.jwks_url.startswith(("https://", "http://")), "jwks_url", "expected an http(s) URL")
            require(bool(public) and not hmac, "algorithms", "a JWKS holds public keys: name RS/PS/ES/EdDSA")
            require(self.jwks_refresh_s >= 1, "jwks_refresh_s", "must be >= 1")
            require(self.jwks_min_fetch_interval_s >= 1, "jwks_min_fetch_interval_s", "must be >= 1")
            return
        if public:
            require(bool(self.public_key.strip()), "public_key", "required for " + ", ".join(public))
            return
        require(bool(self.secret_key), "secret_key", "is empty: set SECRET_KEY")
        require(
            self.secret_key != PLACEHOLDER_SECRET,
            "secret_key",
            "is the documented placeholder: set SECRET_KEY to a random value",
        )
        need = max(HMAC_MIN_KEY_BYTES[a] for a in hmac)
        size = len(self.secret_key.encode())
        require(size >= need, "secret_key", f"is {size} bytes; {need}+ needed for these algorithms")


def size_bytes(text: str) -> int | None:
    """`256m`, `1g`, `512k`, `100` in bytes; None when it is not a size."""
    size = MEMORY_SIZE.fullmatch(text.strip())
    if size is None:
        return None
    return int(size[1]) * {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[size[2].lower()]


LOCAL_ENGINE = "unix:///var/run/docker.sock"  # what an empty docker.host means


def engine_address(host: str, cert_path: str) -> None:
    tcp = host.startswith("tcp://")
    require(
        not host or tcp or host.startswith("unix://"),
        "host",
        "expected unix:///path/to/docker.sock or tcp://HOST:PORT",
    )
    # An engine reached over the network is always TLS, verified: never skipped for want of a CA.
    require(not tcp or bool(cert_path), "cert_path", "required for a tcp:// host (TLS, verified)")
    require(not cert_path or cert_path.startswith("/"), "cert_path", "expected an absolute path")


@dataclass(frozen=True, slots=True)
class EngineConfig:
    # unix:///path/to/docker.sock, or tcp://HOST:PORT (TLS verified both ways: needs cert_path)
    host: str
    # a folder with Docker's ca.pem, cert.pem and key.pem, as docker.cert_path
    cert_path: str = ""
    # its part of max_containers and warm_pool_size, against the other engines' shares
    share: int = 1
    # the OCI runtime its containers run under ("": docker.runtime)
    runtime: str = ""

    def __post_init__(self) -> None:
        engine_address(self.host, self.cert_path)
        require(1 <= self.share <= 1000, "share", "must be within [1, 1000]")
        require(
            not self.runtime or bool(re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,62}", self.runtime)),
            "runtime",
            "expected a runtime the engine knows, like runc or runsc",
        )


@dataclass(frozen=True, slots=True)
class DockerConfig:
    # false: no containers; hybrid runs everything in threads, docker mode is refused
    enabled: bool = True
    image: str = "isogate-runner:latest"
    memory_limit: str = "256m"
    # CPUs a container may use
    cpu_limit: float = 0.5
    timeout_ms: int = 30000
    reuse_containers: bool = True
    warm_pool_size: int = 3
    max_containers: int = 10
    max_waiting: int = 64  # requests queued for a container; past it 503 pool_exhausted at once
    # container requests one untrusted caller may have at once (waiting or running, handler and replica
    # pools alike); past it 429 + Retry-After; trusted tokens are exempt
    max_per_entity: int = 4
    max_response_bytes: int = 16 << 20  # a handler's response body; past it 502 response_too_large
    max_uses: int = 1000
    idle_ttl_s: int = 300
    # processes a container may hold (fork bombs)
    pids_limit: int = 64
    tmpfs_size: str = "16m"
    pool_name: str = "isogate"
    runtime: str = "runc"  # the engine's OCI runtime: runc (namespaces) or runsc (gVisor; scripts/gvisor.sh)
    # the engine: unix:///path/to/docker.sock, or tcp://HOST:PORT (always TLS, verified both ways: needs
    # cert_path); empty: the local socket, unix:///var/run/docker.sock
    host: str = ""
    # a folder with Docker's ca.pem, cert.pem and key.pem (key.pem readable by its owner only): the CA that
    # signed the engine's certificate, and the gateway's client certificate and key; absolute
    cert_path: str = ""
    requirements: str = ""  # pip requirements of handlers and apps, relative to config.yaml ("": none)
    # several engines as one pool (instead of host and cert_path): each gets its share of max_containers and
    # warm_pool_size; a request takes an idle container on any engine; one that stops answering is left out
    # until it answers again (docs/deployment.md)
    engines: tuple[EngineConfig, ...] = ()
    memory_limit_bytes: int = field(init=False, repr=False, compare=False)
    tmpfs_size_bytes: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        memory, tmpfs = size_bytes(self.memory_limit), size_bytes(self.tmpfs_size)
        require(memory is not None, "memory_limit", "expected a size like 256m, 1g or 512k")
        require(tmpfs is not None, "tmpfs_size", "expected a size like 16m")
        derive(self, "memory_limit_bytes", memory)
        derive(self, "tmpfs_size_bytes", tmpfs)
        require(self.memory_limit_bytes >= 6 << 20, "memory_limit", "must be at least 6m")
        require(0 < self.cpu_limit <= 64, "cpu_limit", "must be within (0, 64]")
        require(self.timeout_ms > 0, "timeout_ms", "must be > 0")
        require(self.warm_pool_size >= 0, "warm_pool_size", "must be >= 0")
        require(self.max_containers >= 1, "max_containers", "must be >= 1")
        require(self.max_per_entity >= 1, "max_per_entity", "must be >= 1")
        require(
            self.warm_pool_size <= self.max_containers,
            "warm_pool_size",
            "must not exceed max_containers",
        )
        require(self.max_uses >= 1, "max_uses", "must be >= 1")
        require(self.max_waiting >= 0, "max_waiting", "must be >= 0")
        require(self.max_response_bytes >= 1, "max_response_bytes", "must be >= 1")
        require(self.idle_ttl_s >= 1, "idle_ttl_s", "must be >= 1")
        require(self.pids_limit >= 8, "pids_limit", "must be >= 8 (the agent needs a few)")
        require(
            bool(re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,62}", self.pool_name)), "pool_name", "expected a label"
        )
        require("\0" not in self.requirements, "requirements", "expected a file name")
        engine_address(self.host, self.cert_path)
        require(
            not self.engines or not (self.host or self.cert_path),
            "host",
            "set either docker.host (one engine) or docker.engines, not both",
        )
        hosts = [engine.host or LOCAL_ENGINE for engine in self.engines]
        repeated = sorted({host for host in hosts if hosts.count(host) > 1})
        require(not repeated, "engines", f"{', '.join(repeated)} listed more than once")
        require(
            bool(re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,62}", self.runtime)),
            "runtime",
            "expected a runtime the engine knows, like runc or runsc",
        )


@dataclass(frozen=True, slots=True)
class ExecutionLimits:
    max_time_ms: int = 4000

    def __post_init__(self) -> None:
        require(self.max_time_ms > 0, "max_time_ms", "must be > 0")


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    execution: ExecutionLimits = field(default_factory=ExecutionLimits)
    memory_limit_mb: int = 120
    # how often the gateway's RSS is read
    memory_check_interval_ms: int = 5000

    def __post_init__(self) -> None:
        require(self.memory_limit_mb > 0, "memory_limit_mb", "must be > 0")
        require(self.memory_check_interval_ms >= 10, "memory_check_interval_ms", "must be >= 10")


@dataclass(frozen=True, slots=True)
class ThreadPoolConfig:
    """Threads share the gateway's process and cannot be killed: each caller gets a share of the workers
    (`max_per_entity`, past it 429) and the queue in front of them is bounded (`max_queue`, past it 503)."""

    # threads kept
    min_workers: int = 2
    # threads at most
    max_workers: int = 8
    max_per_entity: int = 2
    max_queue: int = 64

    def __post_init__(self) -> None:
        require(self.max_workers >= 1, "max_workers", "must be >= 1")
        require(self.max_per_entity >= 1, "max_per_entity", "must be >= 1")
        require(self.max_queue >= 0, "max_queue", "must be >= 0")
        require(
            0 <= self.min_workers <= self.max_workers,
            "min_workers",
            "must be within 0..max_workers",
        )


@dataclass(frozen=True, slots=True)
class AdmissionConfig:
    """The door in front of handler routes: a request takes one of `slots` before its body is read and
    scored, or waits for one, in its caller's line; lines are served in turn (round robin, a trusted caller
    `trusted_weight` turns), each request for at most its route's deadline (then 503 overloaded). Waiting
    costs a connection and no body; a refusal there costs no scoring."""

    # requests read, scored and run at once; auto: what the thread pool holds (workers and queue), and no
    # more than the container pool's waiting room when docker is enabled: an admitted request finds room
    slots: int | str = "auto"
    # requests one untrusted or anonymous caller may have waiting (past it 429 at once); trusted callers
    # are bounded by their connections
    max_waiting_per_caller: int = 16
    trusted_weight: int = 2

    def __post_init__(self) -> None:
        require(
            self.slots == "auto" or (isinstance(self.slots, int) and self.slots >= 1),
            "slots",
            "expected a number (>= 1) or auto",
        )
        require(self.max_waiting_per_caller >= 0, "max_waiting_per_caller", "must be >= 0")
        require(1 <= self.trusted_weight <= 100, "trusted_weight", "must be within 1..100")


@dataclass(frozen=True, slots=True)
class IsolatedConfig:
    """Where an upstream route's docker decisions go: a replica of the app, run from its own `image` in
    locked-down containers that the gateway keeps warm, its HTTP server on `port` inside each; or a
    quarantine deployment (`upstream`). The replica's pool has the docker section's limits and lock-down,
    with its own sizes (`warm_pool_size`, `max_containers`: each container serves one caller in its life)."""

    # a replica of the upstream's app: its image (on the engine; make image builds the example)
    image: str = ""
    # the port it listens on in its container
    port: int = 0
    # replica containers started before they are needed
    warm_pool_size: int = 2
    # replica containers at most
    max_containers: int = 10
    # or: a quarantine deployment of your own, by URL
    upstream: tuple[str, ...] | str = ()
    upstreams: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        derive(self, "upstreams", upstream_urls(self.upstream, "upstream"))
        require(
            bool(self.image) != bool(self.upstreams),
            "image",
            "expected image: and port: (a replica the gateway runs) or upstream: (a quarantine deployment)",
        )
        if self.image:
            require(bool(IMAGE_NAME.fullmatch(self.image)), "image", "expected an image name like myapp:1.2")
            require(0 < self.port < 65536, "port", "expected the port the app listens on in its container")
        require(self.max_containers >= 1, "max_containers", "must be >= 1")
        require(
            0 <= self.warm_pool_size <= self.max_containers,
            "warm_pool_size",
            "must be within 0..max_containers",
        )


@dataclass(frozen=True, slots=True)
class UpstreamPoolConfig:
    """The client side of upstream routes: one keep-alive connection pool per upstream host."""

    max_connections: int = 512  # to all upstreams together
    # connections to one upstream host at most
    max_per_host: int = 128
    # requests one untrusted caller may have in flight to upstream routes at once (in this process); past
    # it 429 + Retry-After; trusted tokens are exempt
    max_per_entity: int = 32
    # to open a connection to an upstream
    connect_timeout_ms: int = 2000
    keepalive_s: float = 30.0  # an idle upstream connection is closed after this
    fail_timeout_s: float = 10.0  # a member that refused a connection is skipped this long
    forwarded: bool = False  # also append an RFC 7239 Forwarded element (for, host, proto)
    ws_max_message_bytes: int = 1 << 20  # a WebSocket message either way; past it the relay closes (1009)
    ws_idle_timeout_s: float = 60.0  # a WebSocket with no message either way this long is closed

    def __post_init__(self) -> None:
        require(self.max_connections >= 1, "max_connections", "must be >= 1")
        require(1 <= self.max_per_host <= self.max_connections, "max_per_host", "must be 1..max_connections")
        require(self.max_per_entity >= 1, "max_per_entity", "must be >= 1")
        require(self.connect_timeout_ms > 0, "connect_timeout_ms", "must be > 0")
        require(self.keepalive_s > 0, "keepalive_s", "must be > 0")
        require(self.fail_timeout_s >= 0, "fail_timeout_s", "must be >= 0")
        require(self.ws_max_message_bytes >= 1, "ws_max_message_bytes", "must be >= 1")
        require(self.ws_idle_timeout_s > 0, "ws_idle_timeout_s", "must be > 0")


def upstream_urls(value: tuple[str, ...] | str, key: str) -> tuple[str, ...]:
    """One URL or a list of them: `http://host:port[/base]`, no query, no fragment, no credentials."""
    urls = (value,) if isinstance(value, str) else value
    for i, url in enumerate(urls):
        where = key if isinstance(value, str) else f"{key}[{i}]"
        parts = urlsplit(url)
        require(
            parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.username,
            where,
            f"expected http://host:port[/base], got {url!r}",
        )
        require(not parts.query and not parts.fragment, where, "a query or fragment has no place here")
    return tuple(url.rstrip("/") for url in urls)


@dataclass(frozen=True, slots=True)
class AppConfig:
    """An existing WSGI or ASGI app, served unchanged (see README, "Your existing Python app"): its
    `source` directory (relative to config.yaml's; first on sys.path, mounted read-only in containers),
    `target` (`module:attribute`) and `interface` (wsgi, asgi, or auto: detected)."""

    # the folder of the app's code (relative to config.yaml)
    source: str
    # module:attribute of the WSGI or ASGI app
    target: str
    # wsgi, asgi, or auto (told from the app)
    interface: str = "auto"

    def __post_init__(self) -> None:
        require(bool(self.source.strip()), "source", "expected the app's directory")
        require(bool(APP_TARGET.fullmatch(self.target)), "target", "expected module:attribute, like app:app")
        require(self.interface in ("auto", "wsgi", "asgi"), "interface", "expected auto, wsgi or asgi")


@dataclass(frozen=True, slots=True)
class RouteConfig:
    """`path` is exact, or ends in `/*` to match a prefix (`/*` alone matches everything).

    A route runs a `handler` module, or forwards to an `upstream` (one URL, or a list balanced round-robin);
    an upstream route's docker decisions go to `isolated`, and are refused without it.
    A route may override the gateway's policy for its own requests: body limit, auth, factor weights,
    risk thresholds, block threshold, and extra suspicious keywords (added to the global ones).
    """

    # exact, or a prefix ending in /* (`/*` alone: everything); the first match wins
    path: str
    # a module of handlers_package: handlers/<name>.py defines handle(request)
    handler: str = ""
    # what the route takes (others: 405 with Allow)
    methods: tuple[str, ...] = HTTP_METHODS
    # pins where its requests run (thread or docker), whatever the score
    mode: Mode | None = None
    # CPU-heavy: the high_resource trigger, and never a thread for an untrusted caller
    heavy: bool = False
    # required: no valid token, 401 before anything runs
    auth: RouteAuth = RouteAuth.OPTIONAL
    # this route's server.max_body_bytes
    max_body_bytes: int | None = None
    # this route's factor points (over risk.weights)
    weights: dict[str, int] = field(default_factory=dict)
    # this route's hybrid.risk_thresholds
    risk_thresholds: RiskThresholds | None = None
    # this route's hybrid.block_threshold
    block_threshold: int | None = None
    report_only: bool | None = None  # hybrid.report_only for this route's requests
    # suspicious keywords of this route's own, added to risk.keywords
    keywords: tuple[str, ...] = ()
    # an existing service's URL, or a list balanced round-robin (instead of handler or app)
    upstream: tuple[str, ...] | str = ()
    app: str = ""  # a name under apps
    isolated: IsolatedConfig | None = None
    preserve_host: bool = True  # pass the client's Host on; false: the upstream's host:port
    # The caller's Authorization header, to an upstream: forward it, strip it, or replace it with an upstream
    # credential read from a file (`file:PATH`, relative to config.yaml, reloaded when it changes).
    authorization: str | CredentialFile = "forward"
    timeout_ms: int | None = None  # upstream answer, and between its body chunks; default max_time_ms
    matcher: Matcher | None = field(init=False, repr=False, compare=False)
    upstreams: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        require(self.path.startswith("/"), "path", "must start with /")
        require("*" not in self.path.removesuffix("/*"), "path", "'*' is only allowed as a final /*")
        derive(self, "upstreams", upstream_urls(self.upstream, "upstream"))
        targets = bool(self.handler) + bool(self.upstreams) + bool(self.app)
        require(targets == 1, "handler", "a route has one of handler, upstream or app")
        if self.handler:
            require(bool(HANDLER_NAME.fullmatch(self.handler)), "handler", "expected a module name like echo")
        require(self.isolated is None or bool(self.upstreams), "isolated", "only an upstream route has one")
        require(
            isinstance(self.authorization, CredentialFile) or self.authorization in ("forward", "strip"),
            "authorization",
            "expected forward, strip or file:PATH",
        )
        require(self.timeout_ms is None or self.timeout_ms > 0, "timeout_ms", "must be > 0")
        derive(self, "methods", tuple(m.upper() for m in self.methods))
        unknown = set(self.methods) - set(HTTP_METHODS)
        require(bool(self.methods) and not unknown, "methods", f"expected some of {', '.join(HTTP_METHODS)}")
        if self.max_body_bytes is not None:
            require(self.max_body_bytes >= 0, "max_body_bytes", "must be >= 0")
        for name, points in self.weights.items():
            require(0 <= points <= 100, f"weights.{name}", "must be within 0..100")
        if self.block_threshold is not None:
            require(0 < self.block_threshold <= 100, "block_threshold", "must be within 1..100")
        derive(self, "matcher", Matcher(self.keywords, ()) if self.keywords else None)

    @property
    def mount(self) -> str:
        """Where an app sees itself mounted (SCRIPT_NAME, root_path): a prefix route's prefix, else ""."""
        return self.path[:-2] if self.path.endswith("/*") else ""

    def matches_path(self, path: str) -> bool:
        if self.path.endswith("/*"):
            return path.startswith(self.path[:-1]) or path == self.path[:-2]
        return path == self.path

    @property
    def upstream_authorization(self) -> tuple[bool, str | None]:
        """(whether the caller's Authorization is taken off, the value put in its place)."""
        if isinstance(self.authorization, CredentialFile):
            return True, self.authorization.text
        return self.authorization == "strip", None


@dataclass(frozen=True, slots=True)
class StatsConfig:
    # entities listed in /stats, by requests
    top_entities: int = 20
    # entities remembered (the table is capped at a quarter of the memory limit too)
    max_entities: int = 100_000
    # latencies kept per mode for the percentiles
    latency_samples: int = 2048

    def __post_init__(self) -> None:
        require(self.top_entities >= 0, "top_entities", "must be >= 0")
        require(self.max_entities >= 1, "max_entities", "must be >= 1")
        require(self.latency_samples >= 1, "latency_samples", "must be >= 1")


class StateBackend(StrEnum):
    """Where entity history is kept beyond this process's memory (proxy/store)."""

    MEMORY = "memory"  # this process only: a restart forgets every caller
    SQLITE = "sqlite"  # a file: survives restarts, shared by the gateways of one machine
    REDIS = "redis"  # a server: shared by gateways on several machines


@dataclass(frozen=True, slots=True)
class StateConfig:
    backend: StateBackend = StateBackend.MEMORY
    path: str = "isogate-state.db"  # sqlite: relative to config.yaml's folder
    url: str = "redis://127.0.0.1:6379/0"  # redis
    key_prefix: str = "isogate:"  # redis: the keys' prefix (gateways sharing history share it)
    flush_ms: int = 1000  # local updates are written, and entities seen refreshed from the store, this often
    forget_after_days: int = 90  # an entity not seen for this long is dropped from the store (0: never)

    def __post_init__(self) -> None:
        require(bool(self.path) and "\0" not in self.path, "path", "expected a file name")
        require(
            self.url.startswith(("redis://", "rediss://", "unix://")), "url", "expected redis://HOST:PORT/DB"
        )
        require(10 <= self.flush_ms <= 60_000, "flush_ms", "must be within 10..60000")
        require(self.forget_after_days >= 0, "forget_after_days", "must be >= 0")


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """`GET /metrics` in Prometheus's text format: on the gateway's port for admin tokens (`listen`
    empty), or on a listener of its own with no token (`listen: HOST:PORT`: bind it where only the scraper
    reaches)."""

    # GET /metrics
    enabled: bool = True
    listen: str = ""

    def __post_init__(self) -> None:
        host, _, port = self.listen.rpartition(":")
        require(
            not self.listen or (bool(host) and port.isdigit() and 0 < int(port) < 65536),
            "listen",
            "expected HOST:PORT, e.g. 127.0.0.1:9464",
        )


@dataclass(frozen=True, slots=True)
class DashboardConfig:
    """`GET /dashboard`: the live page for admins, served by the gateway itself. A browser logs in once
    with an admin token and holds a short-lived cookie (HttpOnly, SameSite=Strict, path /dashboard)."""

    # false: /dashboard is an ordinary path, for the routes
    enabled: bool = True
    # a login lasts this long, and never past its token's exp
    session_ttl_s: int = 900
    # the page's figures are sent this often
    refresh_s: float = 2.0
    # pages open at once (event streams), per process
    max_viewers: int = 8

    def __post_init__(self) -> None:
        require(60 <= self.session_ttl_s <= 86400, "session_ttl_s", "must be within 60..86400")
        require(0.5 <= self.refresh_s <= 60, "refresh_s", "must be within 0.5..60")
        require(1 <= self.max_viewers <= 100, "max_viewers", "must be within 1..100")


def _slots(config: Config) -> int:
    """admission.slots, `auto` made a number: the thread pool's workers and queue, and, when docker
    decisions can happen, no more than the container pool's waiting room (or its containers, if more): a
    container being replaced takes a moment, so its containers are the margin, not room counted on."""
    if isinstance(config.admission.slots, int):
        return config.admission.slots
    threads = config.thread_pool.max_workers + config.thread_pool.max_queue
    docker = config.docker
    if not docker.enabled:
        return threads
    return max(1, min(threads, max(docker.max_containers, docker.max_waiting)))


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
    admission: AdmissionConfig = field(default_factory=AdmissionConfig)
    hybrid: HybridConfig = field(default_factory=HybridConfig)
    risk: RiskConfig = field(default_factory=RiskConfig)
    ip_lists: IpListsConfig = field(default_factory=IpListsConfig)
    stats: StatsConfig = field(default_factory=StatsConfig)
    state: StateConfig = field(default_factory=StateConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)
    routes: tuple[RouteConfig, ...] = ()
    upstream_pool: UpstreamPoolConfig = field(default_factory=UpstreamPoolConfig)
    apps: dict[str, AppConfig] = field(default_factory=dict)
    rate_limits: tuple[RateLimitConfig, ...] = ()
    entity_capacity: int = field(init=False, repr=False, compare=False)
    admission_slots: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        derive(self, "admission_slots", _slots(self))
        # The entity table may take at most a quarter of the memory limit, whatever stats.max_entities
        # says: it grows with every new caller, and must never push the gateway into memory pressure.
        budget = self.limits.memory_limit_mb * (1 << 20) // 4 // ENTITY_RSS_BYTES
        derive(self, "entity_capacity", max(1, min(self.stats.max_entities, budget)))
        factors = set(self.risk.weights) | {custom.name for custom in self.risk.custom_factors}
        for i, route in enumerate(self.routes):
            for name in route.weights:
                require(name in factors, f"routes[{i}].weights.{name}", "no such factor")
            require(not route.app or route.app in self.apps, f"routes[{i}].app", "no such app under apps")
        for name in self.apps:
            require(bool(HANDLER_NAME.fullmatch(name)), f"apps.{name}", "expected a name like shop")
        paths = {route.path for route in self.routes}
        names: set[str] = set()
        for i, limit in enumerate(self.rate_limits):
            require(limit.name not in names, f"rate_limits[{i}].name", "another limit has this name")
            require(not limit.route or limit.route in paths, f"rate_limits[{i}].route", "no such route path")
            names.add(limit.name)
        for i, exclusion in enumerate(self.risk.crs.exclude):
            where = f"risk.crs.exclude[{i}].route"
            require(not exclusion.route or exclusion.route in paths, where, "no such route path")
        for i, excluded in enumerate(self.risk.exclude):
            where = f"risk.exclude[{i}].route"
            require(not excluded.route or excluded.route in paths, where, "no such route path")
            for j, name in enumerate(excluded.factors):
                require(name in factors, f"risk.exclude[{i}].factors[{j}]", "no such factor")
        require(
            bool(re.fullmatch(r"[A-Za-z_][\w.]*", self.handlers_package)),
            "handlers_package",
            "expected a package name",
        )
        if not self.docker.enabled:
            require(
                self.execution_mode is not ExecutionMode.DOCKER,
                "execution_mode",
                "is docker but docker.enabled is false",
            )
            for i, route in enumerate(self.routes):
                require(
                    route.mode is not Mode.DOCKER or bool(route.upstreams),  # upstream: docker = isolated
                    f"routes[{i}].mode",
                    "is docker but docker.enabled is false",
                )
