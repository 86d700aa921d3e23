"""CRS rules compiled into Hyperscan databases: every value scanned once per distinct transformed text.

Hyperscan (Intel's automaton engine) matches all of a database's expressions in one pass, in time linear in
the text. The rules up to the paranoia level are grouped by the variables they target (ARGS and cookies
share one database, headers, the path and the body have their own), each rule's `@rx` an expression and
each `@pm` phrase a literal. A value is transformed by each pipeline the rules use (prefixes shared, a
value no transformation changes transformed not at all), and each distinct text is scanned once; a match
counts only for the rules whose pipeline produced that text.

The few expressions Hyperscan cannot compile exactly (too large, a backreference, a possessive quantifier)
run in prefilter mode (a superset of their matches) and are confirmed on the text with `regex`, capped in
input (CONFIRM_BYTES) and time (CONFIRM_S): a confirmation that runs out counts as no match.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import hyperscan
import regex

from policy import linear
from policy.crs.rules import Condition, Rule, selects
from policy.crs.transforms import FUNCTIONS

FLAGS = hyperscan.HS_FLAG_DOTALL | hyperscan.HS_FLAG_SINGLEMATCH  # ModSecurity compiles with PCRE_DOTALL
PHRASE_FLAGS = FLAGS | hyperscan.HS_FLAG_CASELESS  # @pm is case-insensitive
CONFIRM_BYTES = 8192
CONFIRM_S = 0.005
CACHED_LENGTH = 512  # values repeat across requests (user agents, cookies, form choices)


class Value(NamedTuple):  # a tuple: a request has dozens
    """A request's value as CRS names it: `ARGS` `id`, `REQUEST_HEADERS` `user-agent`, `REQUEST_FILENAME`."""

    variable: str
    key: str
    text: str


def _expressions(condition: Condition, exact: bool) -> list[tuple[bytes, int, Callable[[str], bool] | None]]:
    if condition.operator == "pm":
        return [(re.escape(p).encode("utf-8"), PHRASE_FLAGS, None) for p in condition.phrases]
    pattern = condition.argument.encode("utf-8")
    if exact:
        return [(pattern, FLAGS, None)]
    return [(pattern, FLAGS | hyperscan.HS_FLAG_PREFILTER, _confirmation(condition.argument))]


def compiles_exactly(condition: Condition) -> bool:
    """Whether Hyperscan compiles the rule's regex as it is (else: a prefilter, confirmed)."""
    if condition.operator != "rx":
        return True
    try:
        hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK).compile(
            expressions=[condition.argument.encode("utf-8")], flags=[FLAGS]
        )
    except hyperscan.error:
        return False
    return True


def _confirmation(pattern: str) -> Callable[[str], bool]:
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


@dataclass(frozen=True)
class Compiled:
    """What compiling costs, kept to build the same engine again in milliseconds."""

    database: bytes
    prefiltered: frozenset[int]  # ids of the rules whose regex runs as a prefilter


class Engine:
    """The rules of `rules` at or under `paranoia`, compiled into one Hyperscan database. `compiled` (from
    an engine of the same rules) skips compiling."""

    def __init__(self, rules: Sequence[Rule], paranoia: int, compiled: Compiled | None = None) -> None:
        self.rules = tuple(rule for rule in rules if rule.paranoia <= paranoia)
        transforms = sorted({rule.condition.transforms for rule in self.rules})
        self._names = transforms
        pipelines = {names: index for index, names in enumerate(transforms)}
        self._lowering = frozenset(
            i for names, i in pipelines.items() if {"lowercase", "cmdline"} & set(names)
        )
        self._uses = [frozenset(names) for names in transforms]  # pipeline -> its functions
        # Per variable: the pipelines of the rules that target it (a header needs only a few).
        self._wanted: dict[str, frozenset[int]] = {}
        for rule in self.rules:
            for target in rule.targets:
                if not target.excluded:
                    wanted = self._wanted.get(target.variable, frozenset())
                    self._wanted[target.variable] = wanted | {pipelines[rule.condition.transforms]}
        linked = {t.variable for rule in self.rules for c in rule.chain for t in c.targets if not t.excluded}
        self.variables = frozenset(self._wanted) | linked  # what the rules look at
        if compiled is None:
            prefiltered = frozenset(r.id for r in self.rules if not compiles_exactly(r.condition))
        else:
            prefiltered = compiled.prefiltered
        self.owners: list[tuple[int, int]] = []  # expression id -> (rule index, pipeline index)
        self._confirm: dict[int, Callable[[str], bool]] = {}
        expressions, flags = [], []
        for index, rule in enumerate(self.rules):
            pipeline = pipelines[rule.condition.transforms]
            for expression, flag, confirm in _expressions(rule.condition, rule.id not in prefiltered):
                if confirm is not None:
                    self._confirm[len(self.owners)] = confirm
                self.owners.append((index, pipeline))
                expressions.append(expression)
                flags.append(flag)
        if compiled is None:
            self._database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
            self._database.compile(
                expressions=expressions,
                ids=list(range(len(expressions))),
                elements=len(expressions),
                flags=flags,
            )
            compiled = Compiled(bytes(hyperscan.dumpb(self._database)), prefiltered)
        else:
            self._database = hyperscan.loadb(compiled.database, hyperscan.HS_MODE_BLOCK)
            self._database.scratch = hyperscan.Scratch(self._database)
        self.compiled = compiled
        self.expressions = len(expressions)
        on_match = {i: [c for c in rule.chain if not c.targets] for i, rule in enumerate(self.rules)}
        self._chains = {i: _chain(links) for i, links in on_match.items() if links}
        self._request_links = {  # chained conditions on request values of their own
            i: [_request_link(c) for c in rule.chain if c.targets]
            for i, rule in enumerate(self.rules)
            if any(c.targets for c in rule.chain)
        }
        self._cached = functools.lru_cache(maxsize=8192)(self._match_text)
        self._plans: dict[
            tuple[frozenset[int], frozenset[str]], tuple[tuple[int, ...], frozenset[int], frozenset[int]]
        ] = {}

    def evaluate(self, values: Sequence[Value], excluded: frozenset[int] = frozenset()) -> list[Rule]:
        """The rules that match any of `values` (each rule at most once), in id order."""
        matched: set[int] = set()
        long: dict[tuple[str, frozenset[int]], tuple[int, ...]] = {}  # this request's long values, once each
        done: dict[str, dict[tuple[str, ...], str]] = {}  # and their transformations, shared
        for value in values:
            wanted = self._wanted.get(value.variable)
            text = value.text
            if not text or wanted is None:
                continue
            if not text.isascii() and max(text) > "\xff":  # decoded as UTF-8: its bytes, as ModSecurity sees
                text = text.encode("utf-8", "surrogateescape").decode("latin-1")
            if len(text) <= CACHED_LENGTH:
                found = self._cached(text, wanted)
            else:
                key = (text, wanted)
                if key not in long:
                    long[key] = self._match_text(text, wanted, done.setdefault(text, {}))
                found = long[key]
            for index in found:
                rule = self.rules[index]
                if (
                    index not in matched
                    and rule.id not in excluded
                    and rule.applies_to(value.variable, value.key)
                ):
                    matched.add(index)
        for index in matched & self._request_links.keys():
            if not all(link(values) for link in self._request_links[index]):
                matched.discard(index)
        return sorted((self.rules[i] for i in matched), key=lambda rule: rule.id)

    def _match_text(
        self, text: str, wanted: frozenset[int], done: dict[tuple[str, ...], str] | None = None
    ) -> tuple[int, ...]:
        """The rules whose pipeline (one of `wanted`) makes of `text` what they match (chains included)."""
        found: set[int] = set()
        for transformed, pipelines in self._transformed(text, wanted, {} if done is None else done).items():
            for expression in self._scan(transformed):
                rule, pipeline = self.owners[expression]
                if pipeline not in pipelines or rule in found:
                    continue
                confirm = self._confirm.get(expression)
                if confirm is not None and not confirm(transformed):
                    continue
                chain = self._chains.get(rule)
                if chain is None or chain(text):
                    found.add(rule)
        return tuple(sorted(found))

    def _scan(self, text: str) -> list[int]:
        """The expressions that match `text` (a prefiltered one: perhaps)."""
        found: list[int] = []

        def hit(expression: int, start: int, end: int, flags: int, context: object) -> None:
            found.append(expression)

        self._database.scan(text.encode("latin-1"), match_event_handler=hit)
        return found

    def _transformed(
        self, text: str, wanted: frozenset[int], done: dict[tuple[str, ...], str]
    ) -> dict[str, frozenset[int]]:
        """Each distinct text the `wanted` pipelines make of `text`, with the pipelines that make it. Only
        pipelines with a function that can act on `text` run; the others leave it (lower-cased or not)."""
        run, lowering, unchanged = self._plan(wanted, _effective(text))
        out: dict[str, frozenset[int]] = {}
        if unchanged:
            out[text] = unchanged
        if lowering:
            lower = text.lower()
            out[lower] = out.get(lower, frozenset()) | lowering
        for pipeline in run:
            result = self._apply(pipeline, text, done)
            out[result] = out.get(result, frozenset()) | {pipeline}
        return out

    def _plan(
        self, wanted: frozenset[int], effective: frozenset[str]
    ) -> tuple[tuple[int, ...], frozenset[int], frozenset[int]]:
        """(pipelines to run, pipelines that only lower-case, pipelines that change nothing)."""
        key = (wanted, effective)
        plan = self._plans.get(key)
        if plan is None:
            run = tuple(p for p in sorted(wanted) if effective & self._uses[p])
            rest = wanted - set(run)
            plan = (run, rest & self._lowering, rest - self._lowering)
            if len(self._plans) < 4096:  # few distinct keys: (variable, characters present)
                self._plans[key] = plan
        return plan

    def _apply(self, pipeline: int, text: str, done: dict[tuple[str, ...], str]) -> str:
        """`text` through one pipeline. Functions that cannot act on the text as it is then are skipped, and
        each result is kept under the functions that made it: pipelines that differ only by such functions
        (`utf8toUnicode` on ASCII, say) share the work."""
        applied: tuple[str, ...] = ()
        for name in self._names[pipeline]:
            if not _acts(name, text):
                continue
            applied += (name,)
            result = done.get(applied)
            if result is None:
                result = done[applied] = FUNCTIONS[name](text)
            text = result
        return text


# The functions a character can make act (beyond lowercase): a pipeline none of whose functions can act on
# a text leaves it as it is (lower-cased if the pipeline lower-cases), so it need not run.
_PATH_FUNCTIONS = {"normalisepath", "normalizepath", "normalisepathwin", "normalizepathwin"}
_ACTS_ON = {
    "%": {"urldecode", "urldecodeuni"},
    "+": {"urldecode", "urldecodeuni"},
    "&": {"htmlentitydecode"},
    "\\": {"jsdecode", "cssdecode", "cmdline"} | _PATH_FUNCTIONS,
    "\x00": {"removenulls"},
    '"': {"cmdline"},
    "'": {"cmdline"},
    "^": {"cmdline"},
    ",": {"cmdline"},
    ";": {"cmdline"},
    **{space: {"removewhitespace", "compresswhitespace", "cmdline"} for space in "\t\n\r\x0b\x0c\xa0"},
}
_ALWAYS = frozenset({"base64decode"})  # acts on any text


_TRIGGERS = {name: "".join(c for c, names in _ACTS_ON.items() if name in names) for name in FUNCTIONS}


def _acts(name: str, text: str) -> bool:
    """Whether function `name` can change `text` (lowercase, cmdLine and base64 are always run)."""
    if name in ("lowercase", "cmdline", "base64decode"):
        return True
    if name == "removewhitespace":
        return " " in text or any(c in text for c in _TRIGGERS[name])
    if name == "compresswhitespace":
        return "  " in text or any(c in text for c in _TRIGGERS[name])
    if name == "utf8tounicode":
        return not text.isascii()
    if name == "replacecomments":
        return "/*" in text
    if name in _PATH_FUNCTIONS:
        return "/" in text or "." in text or "\\" in text
    return any(c in text for c in _TRIGGERS[name])


def _effective(text: str) -> frozenset[str]:
    """The transformation functions besides lowercase that can change `text`."""
    acting = set(_ALWAYS)
    for char, functions in _ACTS_ON.items():
        if char in text:
            acting |= functions
    if " " in text:
        acting.add("removewhitespace")
        if "  " in text:
            acting |= {"compresswhitespace", "cmdline"}
        if " /" in text or " (" in text:
            acting.add("cmdline")
    if "/" in text or "." in text:
        if "//" in text or "/." in text or "./" in text or text in (".", ".."):
            acting |= _PATH_FUNCTIONS
        if "/*" in text:
            acting.add("replacecomments")
    if not text.isascii():
        acting.add("utf8tounicode")
    return frozenset(acting)


def _chain(conditions: Sequence[Condition]) -> Callable[[str], bool]:
    """A rule's chained conditions, all on the matched value (each with its own transformations)."""
    checks: list[Callable[[str], bool]] = []
    for condition in conditions:
        transform = [FUNCTIONS[name] for name in condition.transforms]
        if condition.operator == "pm":
            phrases = tuple(p.lower() for p in condition.phrases)
            test: Callable[[str], bool] = functools.partial(_has_phrase, phrases)
        else:
            test = functools.partial(_searches, linear.compile(condition.argument))
        checks.append(functools.partial(_check, transform, test, condition.negated))

    def all_hold(text: str) -> bool:
        return all(check(text) for check in checks)

    return all_hold


def _request_link(condition: Condition) -> Callable[[Sequence[Value]], bool]:
    """A chained condition on the request's values of its own targets: any of them satisfies it, or (a
    count, `&TARGET "@eq N"`) their number is N."""
    targets = condition.targets
    if condition.count:
        wanted = int(condition.argument)

        def counts(values: Sequence[Value]) -> bool:
            found = sum(1 for v in values if selects(targets, v.variable, v.key))
            return (found == wanted) != condition.negated

        return counts
    check = _chain([dataclasses.replace(condition, targets=())])

    def any_value(values: Sequence[Value]) -> bool:
        return any(check(v.text) for v in values if selects(targets, v.variable, v.key))

    return any_value


def _has_phrase(phrases: tuple[str, ...], text: str) -> bool:
    lowered = text.lower()
    return any(phrase in lowered for phrase in phrases)


def _searches(compiled: linear.Regex, text: str) -> bool:
    return compiled.search(text) is not None


def _check(
    transform: list[Callable[[str], str]], test: Callable[[str], bool], negated: bool, text: str
) -> bool:
    for function in transform:
        text = function(text)
    return test(text) != negated
