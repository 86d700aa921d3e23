"""Builds frozen config dataclasses from plain mappings, naming the full key path of any bad value.

Strict on purpose: an unknown key is an error (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from policy.errors import ConfigError, Invalid

T = TypeVar("T")


def join(path: str, key: str | int) -> str:
    """`a.b` + `c` -> `a.b.c`; `a` + 2 -> `a[2]`."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def build(cls: type[T], data: object, path: str = "") -> T:
    """Build dataclass `cls` from mapping `data`, converting and validating every field."""
    if not isinstance(data, Mapping):
        raise ConfigError(path, f"expected a mapping, got {_kind(data)}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    for key in data:
        if key not in names:
            raise ConfigError(join(path, str(key)), f"unknown key (known: {', '.join(names)})")
    kwargs = {key: convert(hints[key], value, join(path, key)) for key, value in data.items()}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not f.init or f.name in kwargs:
            continue
        if dataclasses.is_dataclass(hints[f.name]):  # built here so its errors carry its path
            kwargs[f.name] = build(hints[f.name], {}, join(path, f.name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(join(path, f.name), "is required")
    try:
        return cls(**kwargs)
    except Invalid as exc:
        raise ConfigError(join(path, exc.key), str(exc)) from None


def convert(tp: Any, value: object, path: str) -> Any:
    """Convert one value to type `tp` (dataclass, enum, scalar, tuple, dict or optional)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None and len(options) < len(typing.get_args(tp)):
            return None
        errors = []
        for option in options:
            try:
                return convert(option, value, path)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if dataclasses.is_dataclass(tp):
        if isinstance(value, typing.cast(type[Any], tp)):
            return value  # built already (e.g. a ListFile the parser made from a file: entry)
        return build(typing.cast(type[Any], tp), value, path)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            choices = ", ".join(str(m.value) for m in tp)
            raise ConfigError(path, f"expected one of {choices}, got {value!r}") from None
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(path, f"expected a list, got {_kind(value)}")
        item = typing.get_args(tp)[0]
        return tuple(convert(item, v, join(path, i)) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(path, f"expected a mapping, got {_kind(value)}")
        _, item = typing.get_args(tp)
        return {str(k): convert(item, v, join(path, str(k))) for k, v in value.items()}
    return _scalar(tp, value, path)


def _scalar(tp: Any, value: object, path: str) -> Any:
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, bool):
        raise ConfigError(path, f"expected an integer, got {value!r}")
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(path, f"expected {_TYPE_NAMES.get(tp, str(tp))}, got {_kind(value)}")


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _kind(value: object) -> str:
    return "null" if value is None else f"{type(value).__name__} {value!r}"[:80]


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge two config mappings; `over` wins, nested mappings merge key by key."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def require(ok: bool, key: str, message: str) -> None:
    """Validation inside a config type's __post_init__: the parser adds the key's full path."""
    if not ok:
        raise Invalid(key, message)


def derive(obj: object, name: str, value: object) -> None:
    """Set a derived field of a frozen dataclass (compiled regexes, IP sets) while it is built."""
    object.__setattr__(obj, name, value)
