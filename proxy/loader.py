"""Config from its three sources (programmatic, environment, config.yaml and the IP list files it names),
and risk plugins by dotted path. Blocking I/O: the reload path runs `load` in a worker thread."""

from __future__ import annotations

import gzip
import hashlib
import importlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml

from policy.config import Config
from policy.corpus import to_incoming
from policy.crs import crs_factor
from policy.crs.engine import Engine
from policy.errors import ConfigError
from policy.parse import list_files, parse_config
from policy.profile import Profile, fit
from policy.risk import Factor, profile_factor
from policy.workers import worker_slice
from pool.connection import TlsFilesError, tls_context
from proxy.crs import load_crs

DEFAULT_PATH = Path("config.yaml")


@dataclass(frozen=True)
class ConfigSource:
    """Where the config comes from: re-read whole on every reload."""

    path: Path
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    overrides: Mapping[str, Any] | None = None
    worker: tuple[int, int] = (0, 1)  # (index, count): this process's share (policy.workers)


@dataclass(frozen=True)
class Loaded:
    source: ConfigSource
    config: Config
    sha256: str  # of the config file, every list file and the profile, in order
    files: tuple[Path, ...]  # what a watcher should stat (a profile file still to be learned included)
    profile: Profile | None = None
    profile_path: Path | None = None  # where a profile learned live is written
    crs: Engine | None = None  # the CRS rules compiled, when risk.crs.enabled


def secret_from_file(env: Mapping[str, str]) -> Mapping[str, str]:
    """`SECRET_KEY_FILE` names a file holding the key (one line), so that the key is never in the process
    environment (which /proc/<pid>/environ shows for the process's life). The file must be readable by
    its owner only. SECRET_KEY, when also set, wins."""
    name = env.get("SECRET_KEY_FILE")
    if not name or "SECRET_KEY" in env:
        return env
    path = Path(name)
    try:
        mode = path.stat().st_mode
        if mode & 0o077:
            raise ConfigError(
                "$SECRET_KEY_FILE", f"{name} is readable by others (mode {mode & 0o777:o}): chmod 600"
            )
        key = path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError("$SECRET_KEY_FILE", f"cannot read {name}: {exc.strerror}") from None
    return {**env, "SECRET_KEY": key}


def load(source: ConfigSource) -> Loaded:
    """Read and parse the config and its list files; ConfigError names the key, file and line."""
    text = _read(source.path, str(source.path))
    mapping = _yaml(text, source.path)
    digest = hashlib.sha256(text.encode())
    files, texts = [source.path], {}
    for name in list_files(mapping):
        path = source.path.parent / name
        files.append(path)
        texts[name] = _read(path, f"file {name}")
        digest.update(texts[name].encode())
    try:
        config = worker_slice(
            parse_config(mapping, secret_from_file(source.env), source.overrides, texts), *source.worker
        )
    except ConfigError as exc:
        line = line_of(text, exc.path)
        if line is None:
            raise
        raise ConfigError(exc.path, f"{exc.message} ({source.path.name} line {line})") from None
    settings, base = config.risk.profile, source.path.parent
    docker = config.docker
    engines = [(f"docker.engines[{i}]", e.host, e.cert_path) for i, e in enumerate(docker.engines)]
    for key, host, cert_path in engines or [("docker", docker.host, docker.cert_path)]:
        if docker.enabled and host.startswith("tcp://"):
            try:  # its files read now: a bad one is refused like any setting
                tls_context(cert_path)
            except TlsFilesError as exc:
                raise ConfigError(f"{key}.cert_path", str(exc)) from None
    requirements = config.docker.requirements
    if requirements and not (base / requirements).is_file():
        raise ConfigError(
            "docker.requirements", f"{requirements}: no such file (relative to {source.path.name}'s folder)"
        )
    if requirements:  # an edit is a change a reload applies: its layer is built (proxy/deps.py)
        files.append(base / requirements)
        digest.update(_read(base / requirements, "docker.requirements").encode())
    profile, profile_path = None, base / settings.file if settings.file else None
    if profile_path is not None:
        files.append(profile_path)
        if profile_path.exists() or not settings.learn_requests:
            profile_text = _read(profile_path, "risk.profile.file")
            digest.update(profile_text.encode())
            profile = _profile(profile_text)
    elif settings.corpus:
        files.append(base / settings.corpus)
        normal = (to_incoming(r) for r in read_corpus(base / settings.corpus) if not r.get("expect_attack"))
        profile = fit(normal)
    crs = None
    if config.risk.crs.enabled:
        crs, rules = load_crs(config.risk.crs, base)
        digest.update(rules.digest.encode())  # an upgraded CRS is a change a reload applies
        known = {rule.id for rule in rules.rules} | set(rules.skipped)
        for i, exclusion in enumerate(config.risk.exclude):
            for j, rule_id in enumerate(exclusion.rules):
                if rule_id not in known:
                    where = f"risk.exclude[{i}].rules[{j}]"
                    raise ConfigError(where, f"no CRS rule {rule_id} in the rules read")
    return Loaded(source, config, digest.hexdigest(), tuple(files), profile, profile_path, crs)


def _profile(text: str) -> Profile:
    try:
        return Profile.from_json(json.loads(text))
    except ValueError as exc:  # JSONDecodeError included
        raise ConfigError("risk.profile.file", f"not a profile: {exc}") from None


def read_corpus(path: Path) -> list[dict[str, Any]]:
    """JSON lines (gzip when the name ends in .gz): one request object a line."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as lines:
            return [json.loads(line) for line in lines if line.strip()]
    except (OSError, ValueError) as exc:
        raise ConfigError("risk.profile.corpus", f"cannot read {path.name}: {exc}") from None


def load_factors(loaded: Loaded) -> dict[str, Factor]:
    """Plugins by dotted path, plus the profile and CRS factors when they are loaded."""
    factors = load_plugins(loaded.config)
    if loaded.profile is not None:
        factors["profile"] = profile_factor(loaded.profile)
    if loaded.crs is not None:
        factors["crs"] = crs_factor(loaded.crs)
    return factors


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(what, f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(what, "is not UTF-8 text") from None


def _yaml(text: str, path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
        raise ConfigError(str(path), f"line {line}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), f"invalid YAML: {exc}") from None
    if data is None:  # a file being written (truncated first), or emptied by mistake: never the defaults
        raise ConfigError(str(path), "is empty (write the new file beside it and rename it over)")
    if not isinstance(data, dict):
        raise ConfigError(str(path), "the top level must be a mapping")
    return data


def line_of(text: str, key_path: str) -> int | None:
    """The line of `key_path` (`routes[2].handler`) in YAML `text`, as deep as the file spells it."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for part in re.findall(r"[^.\[\]]+", key_path):
        if isinstance(node, yaml.MappingNode):
            found = [(k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part]
            if not found:
                break
            key, node = found[0]
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
            line = node.start_mark.line + 1
        else:
            break
    return line


def create_config(
    overrides: Mapping[str, Any] | None = None,
    *,
    path: Path | str | None = DEFAULT_PATH,
    env: Mapping[str, str] | None = None,
) -> Config:
    """The product's `create_config({...})`: overrides beat environment variables, which beat the file."""
    env = dict(os.environ) if env is None else env
    if path is None:
        return parse_config({}, secret_from_file(env), overrides)
    return load(ConfigSource(Path(path), env, overrides)).config


def load_plugins(config: Config) -> dict[str, Factor]:
    """Import each `risk.plugins` entry (`module:function`); the factor is named after the function."""
    plugins: dict[str, Factor] = {}
    for i, spec in enumerate(config.risk.plugins):
        module_name, _, attr = spec.partition(":")
        try:
            factor = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"risk.plugins[{i}]", f"cannot load {spec}: {exc}") from None
        if not callable(factor):
            raise ConfigError(f"risk.plugins[{i}]", f"{spec} is not callable")
        plugins[attr] = cast(Factor, factor)
    return plugins
