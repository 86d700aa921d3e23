"""Config parsing: defaults, env variables and their precedence, and bad values named by their key path."""

from typing import Any

import pytest

from conftest import SECRET
from policy.config import ExecutionMode, Mode
from policy.errors import ConfigError
from policy.parse import ENV_VARS, parse_config

OK: dict[str, Any] = {"auth": {"secret_key": SECRET}}


def test_defaults_match_the_product_documentation() -> None:
    config = parse_config(OK)
    assert config.execution_mode is ExecutionMode.HYBRID
    documented = {
        "new_entity": 30,
        "failure_rate": 20,
        "large_payload": 15,
        "suspicious": 20,
        "ip_flagged": 25,
    }
    assert documented.items() <= config.risk.weights.items()
    thresholds = config.hybrid.risk_thresholds
    assert (thresholds.low, thresholds.medium, thresholds.high) == (30, 60, 80)
    assert config.limits.execution.max_time_ms == 4000
    assert config.limits.memory_limit_mb == 120
    assert config.risk.new_entity_requests == 10
    assert config.risk.large_payload_bytes == 100 * 1024
    assert config.hybrid.block_threshold is None


def test_every_documented_env_variable_is_read() -> None:
    env = {
        "EXECUTION_MODE": "docker",
        "DOCKER_ENABLED": "true",
        "DOCKER_IMAGE": "img:1",
        "DOCKER_MEMORY_LIMIT": "512m",
        "DOCKER_CPU_LIMIT": "1.0",
        "DOCKER_TIMEOUT": "1234",
        "DOCKER_REUSE": "false",
        "DOCKER_WARM_POOL": "5",
        "DOCKER_RUNTIME": "runsc",
        "DOCKER_HOST": "tcp://127.0.0.1:2376",
        "DOCKER_CERT_PATH": "/etc/isogate/docker",
        "MEMORY_LIMIT_MB": "80",
        "MEMORY_CHECK_INTERVAL": "3000",
        "MAX_EXECUTION_TIME": "10000",
        "DOCKER_FOR_UNTRUSTED": "false",
        "DOCKER_FOR_HIGH_RESOURCE": "0",
        "DOCKER_FOR_SUSPICIOUS": "no",
        "DOCKER_FOR_NEW": "off",
        "STATE_BACKEND": "redis",
        "STATE_PATH": "h.db",
        "STATE_URL": "redis://127.0.0.1:7000/2",
        "SERVER_USER": "isogate",
        "SECRET_KEY": "s" * 40,
    }
    assert set(env) == set(ENV_VARS)
    config = parse_config({}, env)
    assert config.execution_mode is ExecutionMode.DOCKER
    docker = config.docker
    assert (docker.enabled, docker.image, docker.memory_limit_bytes) == (True, "img:1", 512 << 20)
    assert (docker.cpu_limit, docker.timeout_ms, docker.reuse_containers) == (1.0, 1234, False)
    assert docker.warm_pool_size == 5 and docker.runtime == "runsc"
    assert (docker.host, docker.cert_path) == ("tcp://127.0.0.1:2376", "/etc/isogate/docker")
    assert config.limits.memory_limit_mb == 80
    assert config.limits.memory_check_interval_ms == 3000
    assert config.limits.execution.max_time_ms == 10000
    triggers = config.hybrid.docker_for
    assert not (triggers.untrusted or triggers.high_resource or triggers.suspicious or triggers.new)
    assert config.auth.secret_key == "s" * 40
    state = config.state
    assert (state.backend.value, state.path, state.url) == ("redis", "h.db", "redis://127.0.0.1:7000/2")
    assert config.server.user == "isogate"


def test_precedence_is_programmatic_then_env_then_file() -> None:
    file = {**OK, "execution_mode": "thread", "limits": {"memory_limit_mb": 10}}
    env = {"EXECUTION_MODE": "docker", "MEMORY_LIMIT_MB": "20"}
    assert parse_config(file).execution_mode is ExecutionMode.THREAD
    assert parse_config(file, env).execution_mode is ExecutionMode.DOCKER
    config = parse_config(file, env, {"execution_mode": "hybrid"})
    assert config.execution_mode is ExecutionMode.HYBRID
    assert config.limits.memory_limit_mb == 20  # a nested override keeps the env's siblings


def test_partial_weights_keep_the_other_defaults() -> None:
    weights = parse_config({**OK, "risk": {"weights": {"suspicious": 40}}}).risk.weights
    assert weights["suspicious"] == 40 and weights["new_entity"] == 30


def test_secret_is_never_in_repr() -> None:
    assert SECRET not in repr(parse_config(OK))


@pytest.mark.parametrize(
    ("overrides", "env", "message"),
    [
        ({"server": {"prot": 1}}, {}, "server.prot: unknown key"),
        ({"bogus": 1}, {}, "bogus: unknown key"),
        ({"server": {"port": "80"}}, {}, "server.port: expected an integer"),
        ({"server": {"port": 70000}}, {}, "server.port: must be within"),
        ({"server": {"debug_headers": "yes"}}, {}, "server.debug_headers: expected one of off, admins, all"),
        ({"server": {"trusted_proxies": ["10.0.0.0/33"]}}, {}, "server.trusted_proxies"),
        ({"execution_mode": "fast"}, {}, "execution_mode: expected one of thread, docker, hybrid"),
        ({}, {"EXECUTION_MODE": "fast"}, "execution_mode: expected one of"),
        ({}, {"DOCKER_ENABLED": "maybe"}, "$DOCKER_ENABLED: expected true or false"),
        ({}, {"MAX_EXECUTION_TIME": "soon"}, "$MAX_EXECUTION_TIME: expected an integer"),
        ({"limits": {"execution": {"max_time_ms": 0}}}, {}, "limits.execution.max_time_ms: must be > 0"),
        ({"docker": {"memory_limit": "lots"}}, {}, "docker.memory_limit: expected a size"),
        ({"docker": {"warm_pool_size": 20}}, {}, "docker.warm_pool_size: must not exceed max_containers"),
        ({"docker": {"runtime": "runsc --debug"}}, {}, "docker.runtime: expected a runtime the engine knows"),
        ({"docker": {"requirements": "a\x00b"}}, {}, "docker.requirements: expected a file name"),
        ({"server": {"workers": 2, "port": 0}}, {}, "server.workers: needs a fixed port"),
        ({"server": {"workers": 0}}, {}, "server.workers: expected a number of processes"),
        ({"metrics": {"listen": "9464"}}, {}, "metrics.listen: expected HOST:PORT"),
        ({"state": {"flush_ms": 5}}, {}, "state.flush_ms: must be within 10..60000"),
        ({"state": {"backend": "mongo"}}, {}, "state.backend"),
        ({"auth": {"anonymous_ipv6_prefix": 8}}, {}, "auth.anonymous_ipv6_prefix: must be within 32..128"),
        ({"routes": [{"path": "/a"}]}, {}, "routes[0].handler: a route has one of handler, upstream or app"),
        (
            {"routes": [{"path": "/a", "handler": "echo", "upstream": "http://127.0.0.1:9000"}]},
            {},
            "routes[0].handler: a route has one of handler, upstream or app",
        ),
        ({"routes": [{"path": "/a", "upstream": "ftp://x"}]}, {}, "routes[0].upstream: expected http://host"),
        (
            {"routes": [{"path": "/a", "upstream": ["http://127.0.0.1:1", "http://u:p@h:2"]}]},
            {},
            "routes[0].upstream[1]: expected http://host:port[/base]",
        ),
        (
            {"routes": [{"path": "/a", "handler": "echo", "isolated": {"upstream": "http://127.0.0.1:1"}}]},
            {},
            "routes[0].isolated: only an upstream route has one",
        ),
        (
            {"routes": [{"path": "/a", "upstream": "http://127.0.0.1:1", "isolated": {"image": "app:1"}}]},
            {},
            "routes[0].isolated.port: expected the port the app listens on",
        ),
        (
            {
                "routes": [
                    {"path": "/a", "upstream": "http://h:1", "isolated": {"image": "App; rm", "port": 80}}
                ]
            },
            {},
            "routes[0].isolated.image: expected an image name",
        ),
        (
            {
                "routes": [
                    {
                        "path": "/a",
                        "upstream": "http://h:1",
                        "isolated": {"image": "app:1", "port": 80, "upstream": "http://h:2"},
                    }
                ]
            },
            {},
            "routes[0].isolated.image: expected image: and port: (a replica the gateway runs) or upstream:",
        ),
        (
            {
                "routes": [
                    {
                        "path": "/a",
                        "upstream": "http://h:1",
                        "isolated": {"image": "a", "port": 1, "max_containers": 0},
                    }
                ]
            },
            {},
            "routes[0].isolated.max_containers: must be >= 1",
        ),
        ({"routes": [{"path": "/a", "app": "shop"}]}, {}, "routes[0].app: no such app under apps"),
        (
            {"apps": {"shop": {"source": "s", "target": "app"}}},
            {},
            "apps.shop.target: expected module:attribute",
        ),
        ({"apps": {"shop": {"source": "s", "target": "a:b", "interface": "cgi"}}}, {}, "apps.shop.interface"),
        ({"upstream_pool": {"max_per_host": 0}}, {}, "upstream_pool.max_per_host: must be 1.."),
        ({"thread_pool": {"min_workers": 9}}, {}, "thread_pool.min_workers"),
        ({"hybrid": {"risk_thresholds": {"low": 70}}}, {}, "hybrid.risk_thresholds.low"),
        ({"hybrid": {"block_threshold": 0}}, {}, "hybrid.block_threshold"),
        ({"risk": {"weights": {"nope": 5}}}, {}, "risk.weights.nope: no such factor"),
        ({"risk": {"weights": {"suspicious": 101}}}, {}, "risk.weights.suspicious: must be within"),
        ({"risk": {"patterns": ["(("]}}, {}, "risk.patterns[0]: invalid regular expression"),
        ({"risk": {"failure_rate_threshold": 1.5}}, {}, "risk.failure_rate_threshold"),
        ({"risk": {"plugins": ["nocolon"]}}, {}, "risk.plugins[0]: expected 'module:function'"),
        ({"risk": {"plugins": ["m:geo"]}}, {}, "risk.plugins[0]: needs risk.weights.geo"),
        (
            {"risk": {"custom_factors": [{"name": "x", "header": "h"}]}},
            {},
            "risk.custom_factors[0].points: is required",
        ),
        (
            {"risk": {"custom_factors": [{"name": "suspicious", "header": "h", "points": 1}]}},
            {},
            "risk.custom_factors[0].name: name already used",
        ),
        ({"ip_lists": {"deny": ["not-an-ip"]}}, {}, "ip_lists.deny"),
        ({"routes": [{"path": "echo", "handler": "echo"}]}, {}, "routes[0].path: must start with /"),
        ({"routes": [{"path": "/a", "handler": "../../etc"}]}, {}, "routes[0].handler"),
        ({"routes": [{"path": "/a", "handler": "os.path"}]}, {}, "routes[0].handler"),
        ({"routes": [{"path": "/a*", "handler": "echo"}]}, {}, "routes[0].path"),
        ({"routes": [{"path": "/a", "handler": "echo", "methods": ["BREW"]}]}, {}, "routes[0].methods"),
        ({"routes": [{"path": "/a", "handler": "echo", "mode": "vm"}]}, {}, "routes[0].mode"),
        ({"routes": {"path": "/a"}}, {}, "routes: expected a list"),
        ({"docker": {"enabled": False}, "execution_mode": "docker"}, {}, "execution_mode: is docker"),
        (
            {"docker": {"enabled": False}, "routes": [{"path": "/a", "handler": "echo", "mode": "docker"}]},
            {},
            "routes[0].mode: is docker but docker.enabled is false",
        ),
        ({"auth": {"algorithms": ["none"]}}, {}, "auth.algorithms: unsupported: none"),
        (
            {"routes": [{"path": "/a", "handler": "echo", "weights": {"nope": 1}}]},
            {},
            "routes[0].weights.nope: no such factor",
        ),
        ({"routes": [{"path": "/a", "handler": "echo", "auth": "maybe"}]}, {}, "routes[0].auth"),
        (
            {"routes": [{"path": "/a", "handler": "echo", "max_body_bytes": -1}]},
            {},
            "routes[0].max_body_bytes",
        ),
        (
            {"routes": [{"path": "/a", "handler": "echo", "block_threshold": 0}]},
            {},
            "routes[0].block_threshold",
        ),
        (
            {"routes": [{"path": "/a", "handler": "echo", "risk_thresholds": {"low": 50, "medium": 40}}]},
            {},
            "routes[0].risk_thresholds.low",
        ),
        ({"ip_lists": {"deny": ["file:x.txt"]}}, {}, "ip_lists.deny[0]: list file x.txt was not read"),
        ({"auth": {"algorithms": ["HS256", "RS256"]}}, {}, "auth.algorithms: cannot mix"),
        ({"auth": {"algorithms": ["RS256"]}}, {}, "auth.public_key: required"),
        ({"auth": {"secret_key": "short"}}, {}, "auth.secret_key: is 5 bytes; 32+ needed"),
        ({"auth": {"secret_key": SECRET, "algorithms": ["HS512"]}}, {}, "64+ needed"),
    ],
)
def test_bad_values_are_rejected_with_their_key_path(
    overrides: dict[str, Any], env: dict[str, str], message: str
) -> None:
    from policy.schema import merge

    with pytest.raises(ConfigError) as caught:
        parse_config(merge(OK, overrides), env)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({}, "auth.secret_key: is empty: set SECRET_KEY"),
        ({"secret_key": "your-secret-key-here"}, "auth.secret_key: is the documented placeholder"),
    ],
)
def test_refuses_no_secret_or_the_placeholder(auth: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"auth": auth})


def test_routes_parse_with_pins_and_methods() -> None:
    config = parse_config(
        {**OK, "routes": [{"path": "/a/*", "handler": "echo", "methods": ["get"], "mode": "docker"}]}
    )
    route = config.routes[0]
    assert (route.methods, route.mode) == (("GET",), Mode.DOCKER)
    assert route.matches_path("/a/b") and route.matches_path("/a") and not route.matches_path("/ab")


def test_list_files_are_parsed_with_comments_and_blank_lines() -> None:
    from policy.parse import list_files

    mapping = {**OK, "ip_lists": {"deny": ["10.0.0.1", "file:a.txt"], "trusted": ["file:b.txt"]}}
    assert list_files(mapping) == ["a.txt", "b.txt"]
    text = "# header\n192.0.2.0/24  # office\n\n2001:db8::1\n"
    config = parse_config(mapping, files={"a.txt": text, "b.txt": "198.51.100.9\n"})
    assert len(config.ip_lists.deny_set) == 3
    assert "192.0.2.77" in config.ip_lists.deny_set and "198.51.100.9" in config.ip_lists.trusted_set
