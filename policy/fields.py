"""The values a request carries, found once per request: path, query and form parameters, JSON strings,
and the headers an attacker controls. Each is kept raw and normalised.

Values are joined into one text so that a keyword or pattern costs one search per request, not one per
value; the detectors run only over `suspects`, the values with a character or word a detector needs.

At most `risk.max_scan_bytes` characters of a request are inspected. What could not be inspected (past
that budget, past MAX_FIELDS parameters or MAX_JSON_STRINGS strings, a structured body that does not
parse) is named in `Fields.uninspected`, and the `uninspected` factor makes it count: unread content never
scores as safe.
"""

from __future__ import annotations

import bisect
import functools
import re
from dataclasses import dataclass, field
from typing import NamedTuple

from policy.bodies import BODY, COOKIE, FORM, HEADER, NAME, PATH, QUERY, TEXT, read_body
from policy.detectors import scan
from policy.incoming import CREDENTIAL_HEADERS, Incoming
from policy.linear import bounded
from policy.linear import compile as linear
from policy.normalise import normalise, url_decode
from policy.percent import unquote
from policy.uploads import Upload

MAX_FIELDS = 512  # a request with more parameters than this is abnormal in itself
MAX_SCAN_BYTES = 65536  # default of risk.max_scan_bytes: characters of a request that are inspected
SEPARATOR = "\x01"  # between values in a joined text: not whitespace, matched by no detector
# Headers every client sends with machine-made values: matching them only adds false flags.
ROUTINE_HEADERS = frozenset(
    {
        "host", "accept", "accept-encoding", "accept-language", "accept-charset", "connection",
        "content-length", "content-type", "cache-control", "pragma", "if-none-match", "if-modified-since",
        "upgrade-insecure-requests",
    }
)  # fmt: skip
# At least one of these appears in anything a detector in `policy.detectors` recognises.
_SUSPECT_PATTERN = (
    r"""['"`<>;|&$(){}\\=\x00\r\n]|\.\.|@@|/etc/|/proc/|/bin/|\.ini\b"""
    r"|\b(?:union|select|waitfor|information_schema|xp_cmdshell|sysobjects|insert|delete|drop|into"
    r"|javascript|vbscript|livescript|data|expression|document|cmd)\b"
)
_SUSPECT = bounded(_SUSPECT_PATTERN)  # re: a call costs less, on the short values most are
# RE2 for long ones: finding nothing in 32 KiB takes 0.05 ms, not re's 1.5 ms (its \b is ASCII's: it finds a
# little more, and a value is always searched by the same one).
_SUSPECT_LONG = linear(_SUSPECT_PATTERN)
LONG_VALUE = 1024


def _inspect(raw: str) -> tuple[str, bool]:
    decoded = normalise(raw)
    suspect = (_SUSPECT_LONG if len(decoded) > LONG_VALUE else _SUSPECT).search(decoded)
    return decoded, suspect is not None


_inspect_cached = functools.lru_cache(maxsize=16384)(_inspect)


def inspect(raw: str) -> tuple[str, bool]:
    """(normalised value, whether any detector could fire on it); short values are remembered."""
    return _inspect_cached(raw) if len(raw) <= 512 else _inspect(raw)


class Field(NamedTuple):  # a tuple: built ~15 times a request, so it must be cheap
    kind: str  # what the value is: path, query, header, cookie, form, name, text, filename, body
    where: str  # the variable, as ModSecurity names it: ARGS:id, REQUEST_HEADERS:user-agent, FILES:avatar
    name: str
    raw: str  # as inspected: cut short when the request's scan budget ran out
    decoded: str  # normalised: what detectors match
    size: int  # characters of the whole raw value


@dataclass(frozen=True)
class Fields:
    path: str  # the decoded path
    params: tuple[tuple[str, str, str], ...]  # (source, name, once-decoded value) of query and form fields
    values: tuple[Field, ...]
    suspects: tuple[Field, ...]  # the values a detector could fire on (see _SUSPECT)
    anomaly: str | None  # what is abnormal in the request's shape (too many parameters, JSON too deep)
    uninspected: str | None  # what of the request's content was not inspected, and why
    joined: str  # every normalised value in one text, separated by SEPARATOR: one search serves them all
    # Detector name -> every (value, what it recognised) among the suspect values, in request order.
    findings: dict[str, list[tuple[Field, str]]] = field(compare=False)
    uploads: tuple[Upload, ...] = ()  # files, checked by type (policy.uploads), never scanned as text
    xxe: str | None = None  # a DTD, entity or XInclude in an XML body or file
    raw_body: str | None = None  # the body as text where ModSecurity would give it to CRS (forms, untyped)
    body_items: int = 0  # values[body_items:] are the body's own (JSON, XML, GraphQL, files), not parameters

    def at(self, position: int) -> Field:
        """The value a position of `joined` falls in."""
        return self.locate(position)[0]

    def locate(self, position: int) -> tuple[Field, int]:
        """The value a position of `joined` falls in, and where the next value starts."""
        starts, start = [], 0
        for value in self.values:
            starts.append(start)
            start += len(value.decoded) + len(SEPARATOR)
        index = bisect.bisect_right(starts, position) - 1
        value = self.values[index]
        return value, starts[index] + len(value.decoded) + len(SEPARATOR)

    def search(self, regex: re.Pattern[str]) -> tuple[Field, str] | None:
        """The first value `regex` matches, and the match."""
        found = regex.search(self.joined)
        return (self.at(found.start()), found.group(0)) if found else None


@functools.lru_cache(maxsize=16384)  # form values and parameter names repeat across requests
def _unquote_cached(text: str) -> str:
    return unquote(text, plus=True)


def _unquote(text: str) -> str:
    if "%" not in text and "+" not in text:
        return text
    return _unquote_cached(text) if len(text) <= 256 else unquote(text, plus=True)


def _pairs(text: str) -> list[tuple[str, str]]:
    """`parse_qsl(keep_blank_values=True)`, decoding only what is encoded, and at most MAX_FIELDS + 1
    pairs: a query of 100k parameters costs what the inspected ones cost."""
    pairs = []
    for pair in text.split("&", MAX_FIELDS + 1)[: MAX_FIELDS + 1]:
        if pair:
            name, _, value = pair.partition("=")
            pairs.append((_unquote(name), _unquote(value)))
    return pairs


def extract(incoming: Incoming, budget: int = MAX_SCAN_BYTES) -> Fields:
    """Every value worth inspecting: at most MAX_FIELDS parameters, at most `budget` characters in all
    (path, query and headers first, then the body); the rest is named in `uninspected`."""
    path_raw, _, query = incoming.target[:budget].partition("?")
    query = query.partition("#")[0]
    body = read_body(incoming.body, incoming.header("content-type"), budget, _pairs)
    uninspected, anomaly = body.uninspected, body.anomaly
    if len(incoming.target) > budget:
        uninspected = f"target characters past {budget} (risk.max_scan_bytes)"
    query_params = [("query", name, value) for name, value in _pairs(query)]
    params = query_params + [("body", name, value) for name, value in body.params]
    if len(params) > MAX_FIELDS:
        anomaly = f"more than {MAX_FIELDS} parameters"
        uninspected = uninspected or f"parameters past the first {MAX_FIELDS}"
        params = params[:MAX_FIELDS]
    found = [(PATH, "REQUEST_FILENAME", "path", path_raw)]
    found += [(QUERY, f"ARGS:{name}", name, value) for _, name, value in query_params[:MAX_FIELDS]]
    for name, value in incoming.headers:
        if name == "cookie":  # each cookie on its own: an opaque session id is not suspect, a payload is
            cookies = (c.strip().partition("=") for c in value.split(";", MAX_FIELDS)[:MAX_FIELDS])
            found += [(COOKIE, f"REQUEST_COOKIES:{name}", name, value) for name, _, value in cookies]
            if value.count(";") >= MAX_FIELDS:
                uninspected = uninspected or f"cookies past the first {MAX_FIELDS}"
        elif name not in ROUTINE_HEADERS and name not in CREDENTIAL_HEADERS:
            found.append((HEADER, f"REQUEST_HEADERS:{name}", name, value))
    form_kind = FORM if body.raw is not None else TEXT  # urlencoded values reach logs and headers as lines
    found += [(form_kind, f"ARGS:{name}", name, value) for _, name, value in params[len(query_params) :]]
    found += [(NAME, f"ARGS_NAMES:{name}", name, name) for _, name, _ in params if not name.isalnum()]
    body_items = len(found)
    found += body.items
    values: list[Field] = []
    suspects: list[Field] = []
    left = budget
    for kind, where, name, raw in found:
        size = len(raw)
        if size > left:
            uninspected = uninspected or f"{where}: characters past risk.max_scan_bytes ({budget})"
            raw = raw[:left]
        decoded, suspect = inspect(raw)
        item = Field(kind, where, name, raw, decoded, size)
        values.append(item)
        left -= len(raw)
        if suspect:
            suspects.append(item)
    joined = SEPARATOR.join(value.decoded for value in values)
    path = url_decode(path_raw, plus=False)
    return Fields(
        path,
        tuple(params),
        tuple(values),
        tuple(suspects),
        anomaly,
        uninspected,
        joined,
        _findings(suspects),
        tuple(body.uploads),
        body.xxe,
        body.raw,
        min(body_items, len(values)),
    )


_PROSE = frozenset({TEXT, BODY})


def _findings(suspects: list[Field]) -> dict[str, list[tuple[Field, str]]]:
    found: dict[str, list[tuple[Field, str]]] = {}
    for value in suspects:
        for name, match in scan(value.decoded, value.kind in _PROSE):
            found.setdefault(name, []).append((value, match))
    return found
