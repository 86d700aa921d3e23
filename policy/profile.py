"""The learned positive profile: per path, the methods, parameter names, and the character classes and
lengths of each parameter's values seen in normal traffic. A request that deviates (a path, method or
parameter never seen, a character a field never carries, a value far longer than any seen) is flagged.

This is what catches parameter tampering, which no attack signature can: `idA=1` where only `id` exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from policy.fields import Fields, extract
from policy.incoming import Incoming

# Digits fold to "9", ASCII letters to "a", other letters to "Ñ"; every other character is its own class.
_CLASSES = {
    c: ("9" if chr(c).isdigit() else "a" if chr(c).isascii() else "Ñ") for c in range(256) if chr(c).isalnum()
}
LENGTH_SLACK = 2.0  # a value may be twice the longest seen (plus a little) before it is abnormal
LENGTH_MARGIN = 16

Params = Iterable[tuple[str, str]]


def char_classes(value: str) -> frozenset[str]:
    return frozenset(value.translate(_CLASSES))


def _members(classes: frozenset[str]) -> str:
    """Every character of the given classes (a value made only of these passes `str.strip`)."""
    expanded = {chr(c) for c, cls in _CLASSES.items() if cls in classes}
    return "".join(sorted(expanded | {c for c in classes if c not in "9aÑ"}))


@dataclass(frozen=True, slots=True)
class ParamProfile:
    classes: frozenset[str]
    max_len: int
    allowed: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed", _members(self.classes))


@dataclass(frozen=True, slots=True)
class PathProfile:
    methods: frozenset[str]
    params: Mapping[str, ParamProfile]


@dataclass(frozen=True, slots=True)
class Profile:
    paths: Mapping[str, PathProfile] = field(default_factory=dict)

    def deviation(self, method: str, path: str, params: Params) -> str | None:
        """Why this request does not look like the traffic the profile learned, or None."""
        known = self.paths.get(path)
        if known is None:
            return f"path {path[:80]} never seen"
        if method not in known.methods:
            return f"method {method} never seen on {path[:80]}"
        for name, value in params:
            expected = known.params.get(name)
            if expected is None:
                return f"parameter {name[:40]!r} never seen on {path[:80]}"
            if len(value) > expected.max_len * LENGTH_SLACK + LENGTH_MARGIN:  # first: it bounds the next
                return f"parameter {name[:40]!r} is {len(value)} long, longest seen {expected.max_len}"
            if value.strip(expected.allowed) and (unseen := char_classes(value) - expected.classes):
                return f"parameter {name[:40]!r} carries {''.join(sorted(unseen))[:20]!r}, never seen there"
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            path: {
                "methods": sorted(p.methods),
                "params": {
                    n: {"classes": "".join(sorted(q.classes)), "max_len": q.max_len}
                    for n, q in p.params.items()
                },
            }
            for path, p in sorted(self.paths.items())
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Profile:
        """Raises ValueError (KeyError and TypeError included) on a malformed profile."""
        try:
            return cls(
                {
                    str(path): PathProfile(
                        frozenset(str(m) for m in entry["methods"]),
                        {
                            str(name): ParamProfile(frozenset(str(q["classes"])), int(q["max_len"]))
                            for name, q in entry["params"].items()
                        },
                    )
                    for path, entry in data.items()
                }
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed profile: {exc!r}") from None


MAX_PATHS = 10_000  # a learned profile is bounded, whatever the traffic it learns from
MAX_PARAMS_PER_PATH = 256


class ProfileBuilder:
    """Accumulates normal requests; `build()` freezes what was seen (at most MAX_PATHS paths and
    MAX_PARAMS_PER_PATH parameters each: past those, new ones are not learned, so they deviate)."""

    def __init__(self) -> None:
        self._methods: dict[str, set[str]] = {}
        self._params: dict[str, dict[str, tuple[set[str], list[int]]]] = {}
        self.requests = 0

    def add(self, method: str, path: str, params: Params) -> None:
        self.requests += 1
        if path not in self._methods and len(self._methods) >= MAX_PATHS:
            return
        self._methods.setdefault(path, set()).add(method)
        seen = self._params.setdefault(path, {})
        for name, value in params:
            if name not in seen and len(seen) >= MAX_PARAMS_PER_PATH:
                continue
            classes, longest = seen.setdefault(name, (set(), [0]))
            classes.update(char_classes(value))
            longest[0] = max(longest[0], len(value))

    def build(self) -> Profile:
        return Profile(
            {
                path: PathProfile(
                    frozenset(methods),
                    {n: ParamProfile(frozenset(c), m[0]) for n, (c, m) in self._params.get(path, {}).items()},
                )
                for path, methods in self._methods.items()
            }
        )


def observe(builder: ProfileBuilder, method: str, fields: Fields) -> None:
    """Add one normal request, as `policy.fields.extract` saw it, to a profile being built."""
    builder.add(method, fields.path, ((name, value) for _, name, value in fields.params))


def fit(requests: Iterable[Incoming]) -> Profile:
    """The profile of these (normal) requests."""
    builder = ProfileBuilder()
    for incoming in requests:
        observe(builder, incoming.method, extract(incoming))
    return builder.build()
