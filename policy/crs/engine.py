"""CRS rules compiled into one Hyperscan database: each value scanned once per distinct transformed text.

Hyperscan (Intel's automaton engine) matches all of a database's expressions in one pass, in time linear in
the text: each rule's `@rx` is an expression, each `@pm` phrase a literal. A value of a variable is
transformed by the pipelines of the rules that target that variable (policy/crs/pipelines.py: only as far
as its characters need), each distinct text is scanned once, and a match counts for a rule only when the
rule's own pipeline produced that text and the value is one of the rule's targets.

Each pipeline's expressions are also a database of their own. A text one pipeline made is scanned with
that pipeline's database (the base64 pipeline's one expression, not the 2,000 of the rule set), and so is
a long text, with each of its pipelines' databases: on hostile 64 KiB (many partial matches) a scan of the
whole rule set took 0.5-1.1 ms a text, its pipelines' databases together 0.01-0.3 ms. A short text made by
several pipelines is scanned once with the whole rule set's, where a scan's fixed cost is what counts
(five scans a text instead of one made ordinary requests ~10% slower to score).

The few expressions Hyperscan cannot compile exactly (too large, a backreference, a possessive quantifier)
run in prefilter mode (a superset of their matches) and are confirmed (policy/crs/checks.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import hyperscan

from policy.crs.checks import Value, confirmation, on_matched, on_request
from policy.crs.injection import OPERATORS
from policy.crs.pipelines import Pipelines, Shared
from policy.crs.rules import Condition, Rule

FLAGS = hyperscan.HS_FLAG_DOTALL | hyperscan.HS_FLAG_SINGLEMATCH  # ModSecurity compiles with PCRE_DOTALL
PHRASE_FLAGS = FLAGS | hyperscan.HS_FLAG_CASELESS  # @pm is case-insensitive
CACHED_LENGTH = 512  # values repeat across requests (user agents, cookies, form choices)
SPLIT_LENGTH = 2048  # a text this long is scanned by each of its pipelines' databases, not the whole set's


def _expressions(condition: Condition, exact: bool) -> list[tuple[bytes, int, Callable[[str], bool] | None]]:
    if condition.operator in OPERATORS:  # libinjection: called on the value, not compiled
        return []
    if condition.operator == "pm":
        return [(_literal(p), PHRASE_FLAGS, None) for p in condition.phrases]
    pattern = condition.argument.encode("utf-8")
    if exact:
        return [(pattern, FLAGS, None)]
    return [(pattern, FLAGS | hyperscan.HS_FLAG_PREFILTER, confirmation(condition.argument))]


def _literal(phrase: str) -> bytes:
    """`phrase` as a Hyperscan expression matching exactly its bytes (every byte but [A-Za-z0-9] escaped)."""
    return b"".join(
        bytes([byte]) if chr(byte).isascii() and chr(byte).isalnum() else b"\\x%02x" % byte
        for byte in phrase.encode("utf-8")
    )


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


@dataclass(frozen=True)
class Compiled:
    """What compiling costs, kept to build the same engine again in milliseconds."""

    database: bytes  # every expression
    prefiltered: frozenset[int]  # ids of the rules whose regex runs as a prefilter
    databases: tuple[tuple[int, bytes], ...]  # (pipeline, the database of its expressions)


class Engine:
    """The rules of `rules` at or under `paranoia`, compiled into one Hyperscan database. `compiled` (from
    an engine of the same rules) skips compiling."""

    def __init__(self, rules: Sequence[Rule], paranoia: int, compiled: Compiled | None = None) -> None:
        self.rules = tuple(rule for rule in rules if rule.paranoia <= paranoia)
        self._pipelines = Pipelines([rule.condition.transforms for rule in self.rules])
        pipelines = self._pipelines.index
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
        # libinjection's rules: (rule index, pipeline index, the call), run on each text of their pipeline
        self._calls = [
            (index, pipelines[rule.condition.transforms], OPERATORS[rule.condition.operator])
            for index, rule in enumerate(self.rules)
            if rule.condition.operator in OPERATORS
        ]
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
        self._scanned = frozenset(pipeline for _, pipeline in self.owners)  # pipelines with expressions
        self._plans: dict[frozenset[int], tuple[tuple[tuple[int, Callable[[str], bool]], ...], bool]] = {}
        if compiled is None:
            by_pipeline: dict[int, list[int]] = {}
            for number, (_, pipeline) in enumerate(self.owners):
                by_pipeline.setdefault(pipeline, []).append(number)
            databases = tuple(
                (pipeline, _dump(_compile([expressions[i] for i in ids], [flags[i] for i in ids], ids)))
                for pipeline, ids in sorted(by_pipeline.items())
            )
            whole = _dump(_compile(expressions, flags, list(range(len(expressions)))))
            compiled = Compiled(whole, prefiltered, databases)
        # Expression ids are the rule set's (`owners`), whichever database reports them.
        self._database = _load(compiled.database)
        self._databases = {pipeline: _load(database) for pipeline, database in compiled.databases}
        self.compiled = compiled
        self.expressions = len(expressions)
        on_match = {i: [c for c in rule.chain if not c.targets] for i, rule in enumerate(self.rules)}
        self._chains = {i: on_matched(links) for i, links in on_match.items() if links}
        self._request_links = {  # chained conditions on request values of their own
            i: [on_request(c) for c in rule.chain if c.targets]
            for i, rule in enumerate(self.rules)
            if any(c.targets for c in rule.chain)
        }
        self._cached = functools.lru_cache(maxsize=8192)(self._match_text)

    def cached(self) -> tuple[int, int, int]:
        """The value cache: (entries held, capacity, lookups that missed since it was made)."""
        info = self._cached.cache_info()
        return info.currsize, info.maxsize or 0, info.misses

    def evaluate(self, values: Sequence[Value], excluded: frozenset[int] = frozenset()) -> list[Rule]:
        """The rules that match any of `values` (each rule at most once), in id order."""
        return [rule for rule, _ in self.matches(values, excluded)]

    def matches(
        self,
        values: Sequence[Value],
        excluded: frozenset[int] = frozenset(),
        skip: Callable[[int, Value], bool] | None = None,
    ) -> list[tuple[Rule, Value]]:
        """The rules that match any of `values`, each with the first value it matched (its evidence), in id
        order. `skip(rule id, value)`: a value that rule does not look at (an exclusion by variable)."""
        matched: dict[int, Value] = {}
        long: dict[tuple[str, frozenset[int]], tuple[int, ...]] = {}  # this request's long values, once each
        shared = Shared()  # and their transformations
        for value in values:
            wanted = self._wanted.get(value.variable)
            text = value.text
            if not text or wanted is None:
                continue
            if not text.isascii() and max(text) > "\xff":  # decoded as UTF-8: its bytes, as ModSecurity sees
                text = text.encode("utf-8", "surrogateescape").decode("latin-1")
            elif value.pieces:
                shared.pieces[text] = value.pieces
            if len(text) <= CACHED_LENGTH:
                found = self._cached(text, wanted)
            else:
                key = (text, wanted)
                if key not in long:
                    long[key] = self._match_text(text, wanted, shared)
                found = long[key]
            for index in found:
                rule = self.rules[index]
                if (
                    index not in matched
                    and rule.id not in excluded
                    and rule.applies_to(value.variable, value.key)
                    and (skip is None or not skip(rule.id, value))
                ):
                    matched[index] = value
        for index in matched.keys() & self._request_links.keys():
            if not all(link(values) for link in self._request_links[index]):
                del matched[index]
        return sorted(((self.rules[i], value) for i, value in matched.items()), key=lambda pair: pair[0].id)

    def _match_text(self, text: str, wanted: frozenset[int], shared: Shared | None = None) -> tuple[int, ...]:
        """The rules whose pipeline (one of `wanted`) makes of `text` what they match (chains included)."""
        found: set[int] = set()
        for transformed, pipelines in self._pipelines.transformed(text, wanted, shared).items():
            calls, scanned = self._libinjection(pipelines)
            for rule, call in calls:
                if rule not in found and call(transformed):
                    found.add(rule)
            if not scanned:
                continue  # only libinjection wants this text
            for expression in self._scan(transformed, pipelines):
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

    def _libinjection(
        self, pipelines: frozenset[int]
    ) -> tuple[tuple[tuple[int, Callable[[str], bool]], ...], bool]:
        """For a text these pipelines made: libinjection's rules to call on it, and whether any expression
        wants it (a few sets of pipelines come back for every value: worked out once each)."""
        plan = self._plans.get(pipelines)
        if plan is None:
            calls = tuple((rule, call) for rule, pipeline, call in self._calls if pipeline in pipelines)
            plan = self._plans[pipelines] = (calls, bool(pipelines & self._scanned))
        return plan

    def _scan(self, text: str, pipelines: frozenset[int]) -> list[int]:
        """The expressions that match `text` (a prefiltered one: perhaps), of `pipelines` or, for a short
        text several pipelines made, of any pipeline (the caller keeps those of `pipelines`)."""
        found: list[int] = []

        def hit(expression: int, start: int, end: int, flags: int, context: object) -> None:
            found.append(expression)

        data = text.encode("latin-1")
        if len(pipelines) == 1:
            database = self._databases.get(next(iter(pipelines)))
            if database is not None:
                database.scan(data, match_event_handler=hit)
        elif len(data) < SPLIT_LENGTH:
            self._database.scan(data, match_event_handler=hit)
        else:
            for pipeline in pipelines:
                database = self._databases.get(pipeline)
                if database is not None:
                    database.scan(data, match_event_handler=hit)
        return found


def _compile(expressions: list[bytes], flags: list[int], ids: list[int]) -> hyperscan.Database:
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    database.compile(expressions=expressions, ids=ids, elements=len(expressions), flags=flags)
    return database


def _dump(database: hyperscan.Database) -> bytes:
    return bytes(hyperscan.dumpb(database))


def _load(data: bytes) -> hyperscan.Database:
    database = hyperscan.loadb(data, hyperscan.HS_MODE_BLOCK)
    database.scratch = hyperscan.Scratch(database)
    return database
