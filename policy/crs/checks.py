"""Conditions evaluated in Python, on the few values that need them: confirmations of the patterns Hyperscan
runs as prefilters, and rules' chained conditions (on the matched value, or on other request values)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import regex

from policy import linear
from policy.crs.rules import Condition, selects
from policy.crs.transforms import pipeline

CONFIRM_BYTES = 8192
CONFIRM_S = 0.005


class Value:
    """A request's value as CRS names it: `ARGS` `id`, `REQUEST_HEADERS` `user-agent`, `REQUEST_FILENAME`.
    A plain class: a request has dozens, and compiled it is a native one (a NamedTuple's constructor and a
    frozen dataclass's are Python code)."""

    __slots__ = ("variable", "key", "text", "prose", "pieces")

    def __init__(
        self, variable: str, key: str, text: str, prose: bool = False, pieces: tuple[str, ...] = ()
    ) -> None:
        self.variable, self.key, self.text = variable, key, text
        self.prose = prose  # free text: a JSON string, an XML text, a multipart text field
        self.pieces = pieces  # `text` joined from other values' texts (the request line holds the target)

    def __repr__(self) -> str:
        return f"Value({self.variable!r}, {self.key!r}, {self.text!r})"


def confirmation(pattern: str) -> Callable[[str], bool]:
    """RE2 (linear time) when it takes the pattern; else `regex`, capped in input and time."""
    try:
        linear_pattern = linear.compile(pattern, dot_all=True)
    except ValueError:  # a backreference or a possessive quantifier
        return functools.partial(_confirm_bounded, regex.compile(pattern, regex.DOTALL))
    return functools.partial(_searches, linear_pattern)


def _confirm_bounded(compiled: regex.Pattern[str], text: str) -> bool:
    try:
        return compiled.search(text[:CONFIRM_BYTES], timeout=CONFIRM_S) is not None
    except TimeoutError:
        return False


def on_matched(conditions: Sequence[Condition]) -> Callable[[str], bool]:
    """A rule's chained conditions, all on the matched value (each with its own transformations)."""
    checks: list[Callable[[str], bool]] = []
    for condition in conditions:
        transform = pipeline(condition.transforms)
        if condition.operator == "pm":
            phrases = tuple(p.lower() for p in condition.phrases)
            test: Callable[[str], bool] = functools.partial(_has_phrase, phrases)
        else:
            test = functools.partial(_searches, linear.compile(condition.argument))
        checks.append(functools.partial(_check, transform, test, condition.negated))

    def all_hold(text: str) -> bool:
        return all(check(text) for check in checks)

    return all_hold


def on_request(condition: Condition) -> Callable[[Sequence[Value]], bool]:
    """A chained condition on the request's values of its own targets: any of them satisfies it, or (a
    count, `&TARGET "@eq N"`) their number is N."""
    targets = condition.targets
    if condition.count:
        wanted = int(condition.argument)

        def counts(values: Sequence[Value]) -> bool:
            found = sum(1 for v in values if selects(targets, v.variable, v.key))
            return (found == wanted) != condition.negated

        return counts
    check = on_matched([dataclasses.replace(condition, targets=())])

    def any_value(values: Sequence[Value]) -> bool:
        return any(check(v.text) for v in values if selects(targets, v.variable, v.key))

    return any_value


def _has_phrase(phrases: tuple[str, ...], text: str) -> bool:
    lowered = text.lower()
    return any(phrase in lowered for phrase in phrases)


def _searches(compiled: linear.Regex, text: str) -> bool:
    return compiled.search(text) is not None


def _check(transform: Callable[[str], str], test: Callable[[str], bool], negated: bool, text: str) -> bool:
    return test(transform(text)) != negated
