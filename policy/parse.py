"""`parse_config`: one pure function from (file mapping, environment, programmatic overrides) to a Config.

Precedence, highest first: programmatic overrides, environment variables, the config file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from policy.config import Config
from policy.errors import ConfigError, Invalid
from policy.rules import CredentialFile, ListFile
from policy.schema import build, merge

FILE_PREFIX = "file:"
IP_LISTS = ("deny", "flagged", "trusted")


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def parse_int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError("expected an integer") from None


def parse_float(text: str) -> float:
    try:
        return float(text.strip().removesuffix("cpus"))
    except ValueError:
        raise ValueError("expected a number") from None


def parse_str(text: str) -> str:
    return text.strip()


# The product's documented environment variables: name -> (config key path, parser).
ENV_VARS: dict[str, tuple[tuple[str, ...], Callable[[str], Any]]] = {
    "EXECUTION_MODE": (("execution_mode",), parse_str),
    "DOCKER_ENABLED": (("docker", "enabled"), parse_bool),
    "DOCKER_IMAGE": (("docker", "image"), parse_str),
    "DOCKER_MEMORY_LIMIT": (("docker", "memory_limit"), parse_str),
    "DOCKER_CPU_LIMIT": (("docker", "cpu_limit"), parse_float),
    "DOCKER_TIMEOUT": (("docker", "timeout_ms"), parse_int),
    "DOCKER_REUSE": (("docker", "reuse_containers"), parse_bool),
    "DOCKER_WARM_POOL": (("docker", "warm_pool_size"), parse_int),
    "DOCKER_RUNTIME": (("docker", "runtime"), parse_str),
    "DOCKER_HOST": (("docker", "host"), parse_str),
    "DOCKER_CERT_PATH": (("docker", "cert_path"), parse_str),
    "MEMORY_LIMIT_MB": (("limits", "memory_limit_mb"), parse_int),
    "MEMORY_CHECK_INTERVAL": (("limits", "memory_check_interval_ms"), parse_int),
    "MAX_EXECUTION_TIME": (("limits", "execution", "max_time_ms"), parse_int),
    "DOCKER_FOR_UNTRUSTED": (("hybrid", "docker_for", "untrusted"), parse_bool),
    "DOCKER_FOR_HIGH_RESOURCE": (("hybrid", "docker_for", "high_resource"), parse_bool),
    "DOCKER_FOR_SUSPICIOUS": (("hybrid", "docker_for", "suspicious"), parse_bool),
    "DOCKER_FOR_NEW": (("hybrid", "docker_for", "new"), parse_bool),
    "STATE_BACKEND": (("state", "backend"), parse_str),
    "STATE_PATH": (("state", "path"), parse_str),
    "STATE_URL": (("state", "url"), parse_str),
    "SERVER_USER": (("server", "user"), parse_str),
    "SECRET_KEY": (("auth", "secret_key"), str),  # taken verbatim: whitespace may be part of a key
}


def env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """The config mapping the product's environment variables describe (empty values are ignored)."""
    out: dict[str, Any] = {}
    for name, (path, parse) in ENV_VARS.items():
        text = env.get(name)
        if text is None or text.strip() == "":
            continue
        try:
            value = parse(text)
        except ValueError as exc:
            raise ConfigError(f"${name}", str(exc)) from None
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return out


def list_files(mapping: Mapping[str, Any]) -> list[str]:
    """The paths of the `file:PATH` entries in `ip_lists` and of routes' `authorization`, which the caller
    reads and passes back."""
    lists = mapping.get("ip_lists")
    entries = []
    if isinstance(lists, Mapping):
        entries = [e for name in IP_LISTS if isinstance(lists.get(name), list) for e in lists[name]]
    routes = mapping.get("routes")
    if isinstance(routes, list):
        entries += [route.get("authorization") for route in routes if isinstance(route, Mapping)]
    return [
        e[len(FILE_PREFIX) :].strip() for e in entries if isinstance(e, str) and e.startswith(FILE_PREFIX)
    ]


def _with_files(data: dict[str, Any], files: Mapping[str, str]) -> dict[str, Any]:
    routes = data.get("routes")
    if isinstance(routes, list):
        data = {**data, "routes": [_route_with_file(i, route, files) for i, route in enumerate(routes)]}
    lists = data.get("ip_lists")
    if not isinstance(lists, Mapping):
        return data
    expanded = dict(lists)
    for name in IP_LISTS:
        entries = lists.get(name)
        if not isinstance(entries, list):
            continue
        out: list[object] = []
        for i, entry in enumerate(entries):
            if isinstance(entry, str) and entry.startswith(FILE_PREFIX):
                path = entry[len(FILE_PREFIX) :].strip()
                if path not in files:
                    raise ConfigError(f"ip_lists.{name}[{i}]", f"list file {path} was not read")
                out.append(ListFile(path, files[path]))
            else:
                out.append(entry)
        expanded[name] = out
    return {**data, "ip_lists": expanded}


def _route_with_file(i: int, route: object, files: Mapping[str, str]) -> object:
    """A route whose `authorization` is `file:PATH`, with the file as the loader read it."""
    entry = route.get("authorization") if isinstance(route, Mapping) else None
    if not (isinstance(entry, str) and entry.startswith(FILE_PREFIX)):
        return route
    assert isinstance(route, Mapping)
    path = entry[len(FILE_PREFIX) :].strip()
    if path not in files:
        raise ConfigError(f"routes[{i}].authorization", f"credential file {path} was not read")
    try:
        return {**route, "authorization": CredentialFile(path, files[path])}
    except Invalid as exc:
        raise ConfigError(f"routes[{i}].authorization", str(exc)) from None


def parse_config(
    mapping: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    files: Mapping[str, str] | None = None,
) -> Config:
    """Validate and freeze the merged config; raises ConfigError naming the bad key's path.

    `files` holds the text of each IP list file the config names (`list_files`), read by the caller.
    """
    data = merge(merge(mapping or {}, env_overrides(env or {})), overrides or {})
    return build(Config, _with_files(data, files or {}))
