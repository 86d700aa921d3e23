"""Linear-time matching for everything a caller sends. Every regex applied to request content is compiled
here, on RE2: an automaton with no backtracking, so a match costs time linear in the text whatever the
pattern and the input (a backtracking `re` pattern let a 2.4 KB query freeze the event loop for 4 s).

Python's `re` stays for config-only strings (names, sizes); `tests/policy/test_linear_time.py` checks that
no module that sees request content compiles with it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

import re2

if TYPE_CHECKING:
    Regex: TypeAlias = re2._Regexp[str]
else:  # the binding's class cannot be subscripted at run time
    Regex = re2._Regexp


def compile(pattern: str, *, ignore_case: bool = False, dot_all: bool = False) -> Regex:
    """Compile `pattern` for RE2; raises ValueError naming the problem (RE2 refuses backreferences and
    lookaround, the constructs that need backtracking)."""
    options = re2.Options()
    options.log_errors = False  # errors are raised, not printed to stderr
    options.case_sensitive = not ignore_case
    options.dot_nl = dot_all
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        message = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(f"invalid regular expression for RE2 (linear-time engine): {message}") from None


def any_of(*branches: str, ignore_case: bool = False) -> Regex:
    """One regex matching any of `branches` (each written as a plain RE2 pattern, no verbose mode)."""
    return compile("|".join(f"(?:{branch})" for branch in branches), ignore_case=ignore_case)


MAX_BOUNDED_WIDTH = 256


def bounded(pattern: str, *, ignore_case: bool = False) -> re.Pattern[str]:
    """Compile with Python's `re` a pattern whose matches are at most MAX_BOUNDED_WIDTH characters (no
    unbounded repetition). A match attempt at one position then costs at most a constant set by the pattern,
    so a search or substitution is linear in the text. Used for the decoders' small token patterns, where
    `re` substitutes many matches ~20x faster than RE2's binding. Raises ValueError for any other pattern."""
    flags = re.IGNORECASE if ignore_case else 0
    _, widest = re._parser.parse(pattern, flags).getwidth()  # type: ignore[attr-defined]
    if widest > MAX_BOUNDED_WIDTH:
        raise ValueError(f"pattern {pattern[:40]!r} can match unboundedly long text: use linear.compile")
    return re.compile(pattern, flags)


def substitute(regex: re.Pattern[str], text: str, replace: Callable[[str], str]) -> str:
    """`regex.sub(replace, text)` with `replace` given the matched text, and called once per distinct match
    instead of once per match (a Python call a match cost ~0.3 us: 64 KiB of `&#65;` took 6 ms). The text
    is split at the matches and the matches replaced through a dict, both in C. `regex` has one group,
    around the whole match."""
    parts = regex.split(text)
    if len(parts) == 1:
        return text
    tokens = parts[1::2]
    replaced = {token: replace(token) for token in set(tokens)}
    parts[1::2] = map(replaced.__getitem__, tokens)
    return "".join(parts)
