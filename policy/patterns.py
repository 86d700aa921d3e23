"""Suspicious-content matching: the configured keywords (substring tests) and patterns (one regex), over
normalised text.

Keywords and patterns are config data; this module only compiles and applies them. Operators' patterns
run on RE2 (`policy.linear`): a pattern written with catastrophic backtracking in mind still matches in
linear time, and one that needs backtracking (backreferences, lookaround) is refused at load.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from policy import linear

CACHED_LENGTH = 512  # a request's joined values repeat (the same client, the same form): remember them


class Matcher:
    """Literal keywords (substring tests on normalised, lower-case text) and regex patterns (one
    case-insensitive alternation). `find` takes one text: callers join a request's values to pay once."""

    __slots__ = ("_keywords", "_regex", "_cached")

    def __init__(self, keywords: Iterable[str], patterns: Iterable[str]) -> None:
        self._keywords = tuple(dict.fromkeys(k.lower() for k in keywords if k))
        source = "|".join(f"(?:{p})" for p in patterns if p)
        self._regex = linear.compile(source, ignore_case=True) if source else None
        self._cached = functools.lru_cache(maxsize=2048)(self._find)  # one per matcher: a reload drops it

    def find(self, normalised: str) -> tuple[int, str] | None:
        """(position, fragment) of the earliest keyword or pattern match in normalised text, or None."""
        return self._cached(normalised) if len(normalised) <= CACHED_LENGTH else self._find(normalised)

    def _find(self, normalised: str) -> tuple[int, str] | None:
        hits = [(at, k) for k in self._keywords if (at := normalised.find(k)) >= 0]
        if self._regex is not None and (found := self._regex.search(normalised)):
            hits.append((found.start(), found.group(0)))
        return min(hits) if hits else None


def compile_pattern(pattern: str) -> linear.Regex:
    """Compile a config regex (case-insensitive, RE2); raises ValueError naming the problem."""
    return linear.compile(pattern, ignore_case=True)
