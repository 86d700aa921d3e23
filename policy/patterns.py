"""Suspicious-content matching: normalise text the way an attacker would encode it, then search once.

Keywords and patterns are config data; this module only compiles and applies them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote_plus

MAX_DECODE_ROUNDS = 3  # double and triple URL-encoding are common evasions; more rounds buy nothing


def normalise(text: str) -> str:
    """URL-decode (with `+` as space) until stable or MAX_DECODE_ROUNDS, then lower-case."""
    for _ in range(MAX_DECODE_ROUNDS):
        if "%" not in text and "+" not in text:
            break
        decoded = unquote_plus(text)
        if decoded == text:
            break
        text = decoded
    return text.lower()


class Matcher:
    """One compiled alternation of literal keywords and regex patterns, matched case-insensitively."""

    __slots__ = ("_regex",)

    def __init__(self, keywords: Iterable[str], patterns: Iterable[str]) -> None:
        alternatives = [re.escape(k.lower()) for k in keywords if k] + [p for p in patterns if p]
        source = "|".join(f"(?:{a})" for a in alternatives)
        self._regex = re.compile(source, re.IGNORECASE) if source else None

    def search(self, text: str) -> str | None:
        """The first suspicious fragment in `text` after normalising, or None."""
        if self._regex is None or not text:
            return None
        found = self._regex.search(normalise(text))
        return found.group(0)[:40] if found else None


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a config regex; raises ValueError with the regex error's message."""
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None
