"""Suspicious-content matching: the configured keywords (substring tests) and patterns (one regex), over
normalised text.

Keywords and patterns are config data; this module only compiles and applies them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


class Matcher:
    """Literal keywords (substring tests on normalised, lower-case text) and regex patterns (one
    case-insensitive alternation). `find` takes one text: callers join a request's values to pay once."""

    __slots__ = ("_keywords", "_regex")

    def __init__(self, keywords: Iterable[str], patterns: Iterable[str]) -> None:
        self._keywords = tuple(dict.fromkeys(k.lower() for k in keywords if k))
        source = "|".join(f"(?:{p})" for p in patterns if p)
        self._regex = re.compile(source, re.IGNORECASE) if source else None

    def find(self, normalised: str) -> tuple[int, str] | None:
        """(position, fragment) of the earliest keyword or pattern match in normalised text, or None."""
        hits = [(at, k) for k in self._keywords if (at := normalised.find(k)) >= 0]
        if self._regex is not None and (found := self._regex.search(normalised)):
            hits.append((found.start(), found.group(0)))
        return min(hits) if hits else None


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a config regex; raises ValueError with the regex error's message."""
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None
