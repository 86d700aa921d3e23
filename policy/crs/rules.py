"""The OWASP Core Rule Set's request attack rules, read from their ModSecurity `.conf` text.

Only what isogate evaluates is kept: a rule's id, paranoia level (the `TX:EXECUTING_PARANOIA_LEVEL "@lt N"`
markers that skip the rest of a file), anomaly score (its severity), targets, transformations, and its
condition: `@rx` or `@pm`/`@pmFromFile`, with chained conditions on the matched value (`MATCHED_VAR(S)`).
Anything else (libinjection's `@detectSQLi`/`@detectXSS`, chains on other transaction variables, counts)
is skipped with the reason, so the operator can see exactly what is and is not evaluated.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from policy import linear
from policy.crs import injection

FAMILIES = ("930", "931", "932", "933", "934", "941", "942", "943", "944")  # REQUEST-930 .. 944
# CRS 3.3's `tx.*_anomaly_score` values (REQUEST-901 / crs-setup.conf defaults).
SEVERITY_SCORES = {"CRITICAL": 5, "ERROR": 4, "WARNING": 3, "NOTICE": 2}
# What ModSecurity collects, by variable, that isogate provides (XML and FILES are not parsed here).
VARIABLES = frozenset(
    {
        "ARGS", "ARGS_NAMES", "ARGS_GET", "ARGS_GET_NAMES", "ARGS_POST", "ARGS_POST_NAMES",
        "REQUEST_COOKIES", "REQUEST_COOKIES_NAMES", "REQUEST_HEADERS", "REQUEST_HEADERS_NAMES",
        "REQUEST_FILENAME", "REQUEST_BASENAME", "REQUEST_URI", "REQUEST_URI_RAW", "REQUEST_LINE",
        "QUERY_STRING", "REQUEST_BODY", "REQUEST_METHOD",
    }
)  # fmt: skip
IGNORED_VARIABLES = frozenset({"XML", "FILES", "FILES_NAMES", "MULTIPART_PART_HEADERS"})


@dataclass(frozen=True)
class Target:
    """One of a rule's targets: `ARGS`, `REQUEST_HEADERS:User-Agent`, `!REQUEST_COOKIES:/__utm/`."""

    variable: str
    selector: str = ""  # a key (case-insensitive), or a regex between slashes
    excluded: bool = False

    def selects(self, key: str) -> bool:
        if not self.selector:
            return True
        if self.selector.startswith("/") and self.selector.endswith("/") and len(self.selector) > 1:
            return _selector_regex(self.selector[1:-1]).search(key) is not None
        return key.lower() == self.selector.lower()


def _selector_regex(source: str) -> linear.Regex:
    # Selectors are rule text matched against the request's names (keys): RE2, as all request content.
    found = _SELECTORS.get(source)
    if found is None:
        found = _SELECTORS[source] = linear.compile(source, ignore_case=True)
    return found


_SELECTORS: dict[str, linear.Regex] = {}


@dataclass(frozen=True)
class Condition:
    operator: str  # "rx", "pm", "eq" (a count), or libinjection's "detectsqli" and "detectxss"
    argument: str  # the regex, the phrases separated by spaces (pm), or the number (eq)
    transforms: tuple[str, ...]  # lower-case function names, `none` dropped
    negated: bool = False
    phrases: tuple[str, ...] = ()  # pm: the phrases (from the rule or its data file)
    # A chained condition on request values of its own (`SecRule ARGS ...` after `chain`), and whether it
    # counts them (`&REQUEST_HEADERS:Referer "@eq 0"`); no targets: on the value the rule matched.
    targets: tuple[Target, ...] = ()
    count: bool = False


def selects(targets: Iterable[Target], variable: str, key: str) -> bool:
    """Whether the value `key` of `variable` is one of `targets` (an excluded one never is)."""
    chosen = False
    for target in targets:
        if target.variable == variable and target.selects(key):
            if target.excluded:
                return False
            chosen = True
    return chosen


@dataclass(frozen=True)
class Rule:
    id: int
    paranoia: int
    score: int
    targets: tuple[Target, ...]
    condition: Condition
    chain: tuple[Condition, ...] = ()  # further conditions: on the matched value, or their own targets

    def applies_to(self, variable: str, key: str) -> bool:
        """Whether the value `key` of `variable` (ARGS:id, REQUEST_HEADERS:referer) is one of its targets."""
        return selects(self.targets, variable, key)


Link = tuple[str, str, dict[str, list[str]]]  # a SecRule's variables, operator and actions


@dataclass
class Parsed:
    rules: list[Rule] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)  # rule id -> why it is not evaluated
    digest: str = ""  # of the files the rules came from, as their reader computed it


def parse(text: str, read_data: Callable[[str], str], into: Parsed | None = None) -> Parsed:
    """The rules of one CRS file; `read_data(name)` gives a `@pmFromFile` data file's text."""
    parsed = into if into is not None else Parsed()
    paranoia, links = 1, list[Link]()
    for words in _directives(text):
        if words[0] != "SecRule" or len(words) < 4:
            continue
        variables, operator, actions = words[1], words[2], _actions(words[3])
        if variables == "TX:EXECUTING_PARANOIA_LEVEL" and operator.startswith("@lt "):
            paranoia = int(operator.split()[1])
            continue
        links.append((variables, operator, actions))
        if "chain" in actions:  # the next SecRule is this rule's next condition
            continue
        first, links = links, []
        if "id" not in first[0][2]:
            continue
        rule_id = int(first[0][2]["id"][0])
        try:
            parsed.rules.append(_rule(rule_id, paranoia, first, read_data))
        except Unsupported as exc:
            parsed.skipped[rule_id] = str(exc)
    return parsed


class Unsupported(Exception):
    """A rule isogate does not evaluate, and why."""


def _rule(
    rule_id: int,
    paranoia: int,
    links: list[tuple[str, str, dict[str, list[str]]]],
    read_data: Callable[[str], str],
) -> Rule:
    variables, operator, actions = links[0]
    targets = _targets(variables)
    if not any(t.variable in VARIABLES and not t.excluded for t in targets):
        raise Unsupported(f"targets {variables[:60]} are not request content")
    condition = _condition(operator, actions, read_data)
    if condition.operator not in ("rx", "pm", *injection.OPERATORS):
        raise Unsupported(f"operator @{condition.operator} as a rule's first condition")
    chain = []
    for variables, operator, link_actions in links[1:]:
        link = _condition(operator, link_actions, read_data)
        if variables not in ("MATCHED_VAR", "MATCHED_VARS"):
            own = _targets(variables)
            if not own or any(t.variable not in VARIABLES for t in own):
                raise Unsupported(f"chained on {variables[:40]}, not on request content")
            link = dataclasses.replace(link, targets=tuple(own), count=variables.startswith("&"))
        elif link.operator == "eq":
            raise Unsupported("a count of the matched value")
        chain.append(link)
    severity = actions.get("severity", ["CRITICAL"])[-1].upper()
    return Rule(
        id=rule_id,
        paranoia=paranoia,
        score=SEVERITY_SCORES.get(severity, 5),
        targets=tuple(targets),
        condition=condition,
        chain=tuple(chain),
    )


def _condition(operator: str, actions: dict[str, list[str]], read_data: Callable[[str], str]) -> Condition:
    negated = operator.startswith("!")
    name, _, argument = operator.lstrip("!").partition(" ")
    if not name.startswith("@"):  # no operator named: @rx is ModSecurity's default
        name, argument = "@rx", operator.lstrip("!")
    transforms: list[str] = []
    for function in actions.get("t", []):
        function = function.lower()
        transforms = [] if function == "none" else [*transforms, function]
    if name == "@rx":
        return Condition("rx", argument, tuple(transforms), negated)
    if name in ("@pm", "@pmFromFile", "@pmf"):
        if name == "@pm":
            phrases = argument.split()
        else:
            phrases = [p for f in argument.split() for p in _data_lines(read_data(f))]
        return Condition("pm", argument, tuple(transforms), negated, tuple(dict.fromkeys(phrases)))
    if name == "@eq" and argument.strip().isdigit():
        return Condition("eq", argument.strip(), tuple(transforms), negated)
    if name in ("@detectSQLi", "@detectXSS"):
        if not injection.available:
            raise Unsupported(f"{name} needs libinjection: apt-get install libmodsecurity3")
        return Condition(name[1:].lower(), "", tuple(transforms), negated)
    raise Unsupported(f"operator {name} is not evaluated")


def _data_lines(text: str) -> Iterator[str]:
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            yield line


def _targets(text: str) -> list[Target]:
    targets = []
    for part in text.split("|"):
        excluded = part.startswith("!")
        part = part.lstrip("!&")
        variable, _, selector = part.partition(":")
        if variable in IGNORED_VARIABLES:
            continue
        targets.append(Target(variable.upper(), selector.strip("'"), excluded))
    return targets


def _directives(text: str) -> Iterator[list[str]]:
    """Each directive's words (quotes removed, `\\"` unescaped), continuation lines joined."""
    lines: list[str] = []
    for raw in text.splitlines():
        stripped = raw.strip()
        if not lines and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            lines.append(stripped[:-1])
            continue
        lines.append(stripped)
        yield _words(" ".join(lines))
        lines = []
    if lines:
        yield _words(" ".join(lines))


def _words(text: str) -> list[str]:
    words, i, n = [], 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
        elif text[i] == '"':
            word, i = [], i + 1
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n and text[i + 1] == '"':
                    i += 1
                word.append(text[i])
                i += 1
            words.append("".join(word))
            i += 1
        else:
            j = i
            while j < n and not text[j].isspace():
                j += 1
            words.append(text[i:j])
            i = j
    return words


def _actions(text: str) -> dict[str, list[str]]:
    """`id:1,t:none,t:lowercase,msg:'a, b',chain` -> {"id": ["1"], "t": ["none", "lowercase"], ...}."""
    found: dict[str, list[str]] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " ,":
            i += 1
        j = i
        while j < n and text[j] not in ":,":
            j += 1
        name = text[i:j].strip()
        value = ""
        if j < n and text[j] == ":":
            j += 1
            if j < n and text[j] == "'":
                end = text.find("'", j + 1)
                end = n if end < 0 else end
                value, j = text[j + 1 : end], end + 1
            else:
                end = text.find(",", j)
                end = n if end < 0 else end
                value, j = text[j:end].strip(), end
        if name:
            found.setdefault(name, []).append(value)
        i = j
    return found
