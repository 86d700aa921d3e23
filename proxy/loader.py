"""Config from its three sources (programmatic, environment, config.yaml) and risk plugins by dotted path."""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import yaml

from policy.config import Config
from policy.errors import ConfigError
from policy.parse import parse_config
from policy.risk import Factor

DEFAULT_PATH = Path("config.yaml")


def read_config_file(path: Path) -> dict[str, Any]:
    """The file's mapping; errors name the file and, for YAML syntax, the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
        raise ConfigError(str(path), f"line {line}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), f"invalid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), "the top level must be a mapping")
    return data


def create_config(
    overrides: Mapping[str, Any] | None = None,
    *,
    path: Path | str | None = DEFAULT_PATH,
    env: Mapping[str, str] | None = None,
) -> Config:
    """The product's `create_config({...})`: overrides beat environment variables, which beat the file."""
    mapping = read_config_file(Path(path)) if path is not None else {}
    return parse_config(mapping, os.environ if env is None else env, overrides)


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
